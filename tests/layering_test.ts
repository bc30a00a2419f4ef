// The layers of src/, lowest first: a module imports from its own folder or from a folder of a
// lower layer, never from one above it nor from a sibling of its own layer. ffi/ (outside src/)
// is below all of them. Keeping this a test means a new upward import fails CI instead of
// growing into a cycle (the I/O thread once lived in virtio/ and imported machine/).
import { deepEqual } from "./assert.ts";

/** Layer of each top folder under src/ (files directly in src/ are layer 0). */
export const LAYERS: Record<string, number> = {
  "": 0, // src/log.ts, src/spin_lock.ts: used by every layer
  memory: 1,
  bus: 1,
  console: 1,
  pci: 2,
  devices: 2,
  acpi: 2,
  boot: 2,
  virtio: 3,
  vfio: 3,
  vcpu: 3,
  arch: 4,
  machine: 5,
  cli: 6,
};

const SRC = new URL("../src/", import.meta.url);

function* sources(dir: URL): Generator<URL> {
  for (const e of Deno.readDirSync(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* sources(u);
    else if (e.name.endsWith(".ts")) yield u;
  }
}

/** The top folder under src/ of a module URL; undefined when it is outside src/. */
function topFolder(u: URL): string | undefined {
  if (!u.href.startsWith(SRC.href)) return undefined;
  const rest = u.href.slice(SRC.href.length).split("/");
  return rest.length === 1 ? "" : rest[0];
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/g;

Deno.test("layering: no module under src/ imports from a layer above it or a sibling folder", () => {
  const wrong: string[] = [];
  const unknown = new Set<string>();
  for (const file of sources(SRC)) {
    const from = topFolder(file)!;
    if (!(from in LAYERS)) unknown.add(from);
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(IMPORT)) {
      if (!m[1].startsWith(".")) continue;
      const to = topFolder(new URL(m[1], file));
      if (to === undefined || to === from) continue;
      if (!(to in LAYERS)) unknown.add(to);
      if (LAYERS[to] >= LAYERS[from]) {
        wrong.push(`${file.href.slice(SRC.href.length)} imports ${m[1]}`);
      }
    }
  }
  deepEqual([...unknown], [], "every folder under src/ has a layer in LAYERS");
  deepEqual(wrong, []);
});

Deno.test("layering: every Worker entry file is type-checked by `deno task check`", () => {
  const check: string = JSON.parse(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  ).tasks.check;
  const compile = Deno.readTextFileSync(new URL("../scripts/compile.sh", import.meta.url));
  const entries: string[] = [];
  for (const file of sources(SRC)) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/new Worker\(\s*new URL\("([^"]+)", import\.meta\.url\)/g)) {
      entries.push(new URL(m[1], file).href.slice(new URL("../", import.meta.url).href.length));
    }
  }
  deepEqual(entries.length > 0, true, "the machine starts its threads as Workers");
  deepEqual(
    entries.filter((e) => !check.split(/\s+/).includes(e)),
    [],
    "checked by deno task check",
  );
  // compile.sh bundles each Worker entry and points the main bundle's URL at it.
  const bundled = /^\s*for w in (.*); do$/m.exec(compile)?.[1].split(/\s+/) ?? [];
  deepEqual(entries.filter((e) => !bundled.includes(e)), [], "bundled by compile.sh");
});
