// Run dtc (device-tree-compiler) on a blob, as the tests' independent reader of what fdt.ts
// writes, and read its DTS back into nodes and properties.

const INSTALL_HINT = "dtc is missing: apt-get install device-tree-compiler " +
  "(bash scripts/setup.sh installs it)";

/** Checks dtc has but leaves off by default, which our tree must pass all the same. */
const EXTRA_CHECKS = ["-Wunique_unit_address_if_enabled"];

/**
 * Run dtc on `input` (through a temporary file) and return its output, failing on any error
 * or warning: interrupt_map, pci_bridge, unit_address_vs_reg, avoid_default_addr_size and the
 * rest all point at a real mistake in a tree this small and regular.
 */
function dtc(from: "dtb" | "dts", to: "dtb" | "dts", input: Uint8Array): Uint8Array {
  const tmp = Deno.makeTempFileSync({ suffix: `.${from}` });
  try {
    Deno.writeFileSync(tmp, input);
    const out = new Deno.Command("dtc", {
      args: ["-I", from, "-O", to, ...EXTRA_CHECKS, tmp],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0 || stderr.trim() !== "") {
      throw new Error(`dtc -I ${from} -O ${to}: status ${out.code}\n${stderr}`);
    }
    return out.stdout;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(INSTALL_HINT);
    throw e;
  } finally {
    Deno.removeSync(tmp);
  }
}

/** The blob as DTS (`dtc -I dtb -O dts`), with no error or warning. */
export function decompile(dtb: Uint8Array): string {
  return new TextDecoder().decode(dtc("dtb", "dts", dtb));
}

/** dtc's own blob for `dtb`, through DTS and back, with no error or warning on either way. */
export function roundTrip(dtb: Uint8Array): Uint8Array {
  return dtc("dts", "dtb", dtc("dtb", "dts", dtb));
}

/** A DTS as dtc writes it: node path → property name → raw value text ("" for no value). */
export type Dts = Map<string, Map<string, string>>;

/** Read dtc's DTS output (one node or property a line) into {@link Dts}. */
export function parseDts(text: string): Dts {
  const nodes: Dts = new Map();
  const stack: string[] = [];
  const path = () => stack.length <= 1 ? "/" : "/" + stack.slice(1).join("/");
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line === "/dts-v1/;" || line.startsWith("/memreserve/")) continue;
    const open = /^(\/|[^\s=]+) \{$/.exec(line);
    if (open) {
      stack.push(open[1]);
      nodes.set(path(), new Map());
      continue;
    }
    if (line === "};") {
      stack.pop();
      continue;
    }
    const prop = /^([^\s=]+)(?: = (.*))?;$/.exec(line);
    if (!prop) throw new Error(`unexpected DTS line: ${line}`);
    nodes.get(path())!.set(prop[1], prop[2] ?? "");
  }
  return nodes;
}

/** A property's cells: `<0x01 0x02>` → [1, 2]. */
export function cells(value: string | undefined): number[] {
  const m = /^<(.*)>$/.exec(value ?? "");
  if (!m) throw new Error(`not a cell list: ${value}`);
  return m[1].trim() === "" ? [] : m[1].trim().split(/\s+/).map((c) => Number(c));
}

/** A property's strings: `"a\0b"` or `"a", "b"` → ["a", "b"]. */
export function strings(value: string | undefined): string[] {
  if (value === undefined || !value.startsWith('"')) throw new Error(`not strings: ${value}`);
  return value.split(/", "|\\0/).map((s) => s.replace(/^"|"$/g, ""));
}

/** A property of a node, failing if either is missing. */
export function prop(dts: Dts, node: string, name: string): string {
  const n = dts.get(node);
  if (n === undefined) throw new Error(`no node ${node} in [${[...dts.keys()].join(", ")}]`);
  const v = n.get(name);
  if (v === undefined) throw new Error(`no property ${name} in ${node}`);
  return v;
}
