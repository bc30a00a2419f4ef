/**
 * Debian packages of another architecture without touching the host's dpkg: the suite's
 * Packages index fetched from deb.debian.org, each .deb checked against the SHA256 the index
 * gives, then unpacked with `dpkg -x` (which does not care about the architecture).
 */
import { decompress, exists, run, sha256 } from "./build_util.ts";

const MIRROR = "http://deb.debian.org/debian";

/** One package's stanza: its fields, e.g. Package, Version, Depends, Filename, SHA256. */
export type Stanza = Record<string, string>;

/** A suite's index: package name to its stanzas (an index may list a package twice). */
export class PackageIndex {
  constructor(
    readonly suite: string,
    readonly arch: string,
    readonly byName: Map<string, Stanza[]>,
  ) {}

  /** The stanza of `name`, the newest version when the index has several; throws if none. */
  async get(name: string): Promise<Stanza> {
    const all = this.byName.get(name);
    if (!all?.length) throw new Error(`${this.suite}/${this.arch}: no package ${name}`);
    let best = all[0];
    for (const s of all.slice(1)) {
      const newer = await new Deno.Command("dpkg", {
        args: ["--compare-versions", s.Version, "gt", best.Version],
      }).output();
      if (newer.success) best = s;
    }
    return best;
  }

  has(name: string): boolean {
    return (this.byName.get(name)?.length ?? 0) > 0;
  }

  /**
   * `names` and everything they depend on (Depends and Pre-Depends, recursively; of
   * alternatives the first, a virtual package by its first provider), less `skip`. Versions are
   * not compared: one suite's index is consistent with itself.
   */
  async closure(names: string[], skip: Set<string>): Promise<Stanza[]> {
    const providers = new Map<string, string>();
    for (const [name, stanzas] of this.byName) {
      for (const p of (stanzas[0].Provides ?? "").split(",")) {
        const virtual = p.trim().split(/\s/)[0];
        if (virtual && !providers.has(virtual)) providers.set(virtual, name);
      }
    }
    const found = new Map<string, Stanza>();
    const todo = [...names];
    while (todo.length) {
      const wanted = todo.pop()!;
      const name = this.has(wanted) ? wanted : providers.get(wanted);
      if (!name) throw new Error(`${this.suite}/${this.arch}: nothing is or provides ${wanted}`);
      if (found.has(name) || skip.has(name)) continue;
      const stanza = await this.get(name);
      found.set(name, stanza);
      for (const dep of `${stanza["Pre-Depends"] ?? ""},${stanza.Depends ?? ""}`.split(",")) {
        const first = dep.split("|")[0].trim().split(/[\s:]/)[0];
        if (first) todo.push(first);
      }
    }
    return [...found.values()];
  }

  /** The package a meta-package depends on first (linux-image-arm64 -> linux-image-6.1.0-NN-arm64). */
  async dependency(meta: string): Promise<string> {
    const depends = (await this.get(meta)).Depends ?? "";
    const first = depends.split(",")[0]?.trim().split(/\s/)[0];
    if (!first) throw new Error(`${this.suite}/${this.arch}: ${meta} depends on nothing`);
    return first;
  }
}

/** Parses a Packages file (RFC 822 stanzas, continuation lines start with a space). */
export function parsePackages(text: string): Map<string, Stanza[]> {
  const byName = new Map<string, Stanza[]>();
  for (const block of text.split(/\n\n+/)) {
    const stanza: Stanza = {};
    let key = "";
    for (const line of block.split("\n")) {
      if (line.startsWith(" ") && key) stanza[key] += "\n" + line.trim();
      else if (line.includes(":")) {
        key = line.slice(0, line.indexOf(":"));
        stanza[key] = line.slice(key.length + 1).trim();
      }
    }
    if (!stanza.Package) continue;
    byName.set(stanza.Package, [...(byName.get(stanza.Package) ?? []), stanza]);
  }
  return byName;
}

/** GETs `url`; throws with the status on anything but 200. */
async function download(url: string): Promise<Uint8Array<ArrayBuffer>> {
  const response = await fetch(url);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`GET ${url}: ${response.status} ${response.statusText}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * The index of `suite`'s main component for `arch`, kept in `dir` and fetched again once it is
 * a day old (a point release moves the kernel's ABI and drops the old .debs from the mirror).
 */
export async function packageIndex(
  suite: string,
  arch: string,
  dir: string,
): Promise<PackageIndex> {
  const path = `${dir}/${suite}-${arch}.Packages.xz`;
  const age = await Deno.stat(path).then(
    (s) => Date.now() - (s.mtime?.getTime() ?? 0),
    () => Infinity,
  );
  if (age > 86_400_000) {
    const url = `${MIRROR}/dists/${suite}/main/binary-${arch}/Packages.xz`;
    console.log(`debian: fetching ${url}`);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(`${path}.tmp`, await download(url));
    await Deno.rename(`${path}.tmp`, path);
  }
  const text = new TextDecoder().decode(await decompress("xz", await Deno.readFile(path), path));
  return new PackageIndex(suite, arch, parsePackages(text));
}

/**
 * The .deb of `stanza` in `dir` (downloaded unless a copy with the index's SHA256 is there
 * already); throws if what the mirror sends does not match the index.
 */
export async function fetchDeb(stanza: Stanza, dir: string): Promise<string> {
  const path = `${dir}/${stanza.Filename.replace(/^.*\//, "")}`;
  if (await exists(path) && await sha256(await Deno.readFile(path)) === stanza.SHA256) return path;
  const url = `${MIRROR}/${stanza.Filename}`;
  const bytes = await download(url);
  const got = await sha256(bytes);
  if (got !== stanza.SHA256) {
    throw new Error(`${url}: SHA256 ${got}, the index says ${stanza.SHA256}`);
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${path}.tmp`, bytes);
  await Deno.rename(`${path}.tmp`, path);
  console.log(
    `debian: ${stanza.Package} ${stanza.Version} (${(bytes.length / 1e6).toFixed(1)} MB)`,
  );
  return path;
}

/** `dpkg -x` of `deb` into `into` (created if missing). */
export async function unpackDeb(deb: string, into: string): Promise<void> {
  await Deno.mkdir(into, { recursive: true });
  await run("dpkg", ["-x", deb, into]);
}
