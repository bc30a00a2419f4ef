/**
 * Kernel modules for an initramfs, from an unpacked Debian kernel package: which file holds a
 * module, its plain ELF bytes, and a load order with every module after its dependencies.
 */
import { decompress, exists } from "./build_util.ts";
import { parseModinfo } from "./modinfo.ts";

/**
 * Where an unpacked kernel package under `root` keeps its modules: lib/modules/RELEASE on
 * Debian 12, usr/lib/modules/RELEASE on Debian 13 (merged /usr).
 */
export async function modulesDir(root: string, release: string): Promise<string> {
  for (const dir of [`${root}/lib/modules/${release}`, `${root}/usr/lib/modules/${release}`]) {
    if (await exists(`${dir}/modules.builtin`)) return dir;
  }
  throw new Error(`no modules.builtin for ${release} under ${root}/{,usr/}lib/modules`);
}

/** A module file's compression, by suffix: Debian 12 ships plain .ko, Debian 13 .ko.xz. */
const MODULE_SUFFIX = /\.ko(\.xz|\.zst|\.gz)?$/;

/** Maps module name (with `_`, as modinfo spells it) to its .ko, .ko.xz, .ko.zst or .ko.gz path. */
function indexModules(dir: string, index = new Map<string, string>()): Map<string, string> {
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) indexModules(path, index);
    else if (MODULE_SUFFIX.test(e.name)) {
      index.set(e.name.replace(MODULE_SUFFIX, "").replaceAll("-", "_"), path);
    }
  }
  return index;
}

/**
 * A module's plain ELF bytes. busybox's insmod loads only uncompressed modules, and
 * parseModinfo reads the ELF, so a compressed one goes through its decompressor here.
 */
async function readModule(path: string): Promise<Uint8Array<ArrayBuffer>> {
  const suffix = MODULE_SUFFIX.exec(path)?.[1];
  if (!suffix) return await Deno.readFile(path);
  const tool = { ".xz": "xz", ".zst": "zstd", ".gz": "gzip" }[suffix]!;
  return await decompress(tool, await Deno.readFile(path), path);
}

/** A module for the initramfs: its file name as insmod will see it (uncompressed) and bytes. */
export interface Module {
  name: string;
  data: Uint8Array<ArrayBuffer>;
}

/**
 * Resolves `wanted` with their `depends=` (from each .ko's .modinfo) into a load order: every
 * module after all it depends on. Built-in modules are skipped. `modDir` is what modulesDir
 * returned.
 */
export async function moduleOrder(modDir: string, wanted: string[]): Promise<Module[]> {
  const index = indexModules(`${modDir}/kernel`);
  const builtin = new Set(
    (await Deno.readTextFile(`${modDir}/modules.builtin`)).split("\n")
      .map((l) => l.replace(/^.*\//, "").replace(/\.ko$/, "").replaceAll("-", "_")),
  );
  const order: string[] = [];
  const bytes = new Map<string, Uint8Array<ArrayBuffer>>();
  const visiting = new Set<string>();
  const visit = async (name: string) => {
    if (order.includes(name) || builtin.has(name)) return;
    const path = index.get(name);
    if (!path) throw new Error(`module ${name} is neither in ${modDir} nor built in`);
    if (visiting.has(name)) throw new Error(`module dependency cycle at ${name}`);
    visiting.add(name);
    const elf = await readModule(path);
    bytes.set(name, elf);
    for (const dep of parseModinfo(elf, path).depends) await visit(dep.replaceAll("-", "_"));
    order.push(name);
  };
  for (const name of wanted) await visit(name);
  // The file name as insmod will see it: the module's own file name, uncompressed.
  return order.map((n) => ({
    name: index.get(n)!.replace(/^.*\//, "").replace(MODULE_SUFFIX, ".ko"),
    data: bytes.get(n)!,
  }));
}
