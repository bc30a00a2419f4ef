/**
 * Reads a kernel module's .modinfo section (what `modinfo` and `strings X.ko |
 * grep ^depends=` show) straight from the ELF file, so the build needs no kmod.
 */

export interface Modinfo {
  /** Modules that must be loaded first (`depends=`, comma-separated in the file). */
  depends: string[];
  /** Every `key=value` string of the section, in file order. */
  fields: [string, string][];
}

/** Parses the .modinfo section of an uncompressed ELF64 little-endian .ko file. */
export async function readModinfo(path: string): Promise<Modinfo> {
  return parseModinfo(await Deno.readFile(path), path);
}

/**
 * Parses the .modinfo section of an uncompressed ELF64 little-endian module held in memory
 * (a .ko.xz after decompression); `path` only names it in errors.
 */
export function parseModinfo(bytes: Uint8Array, path: string): Modinfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // ELF64 header: e_ident "\x7fELF", class 2 (64-bit), data 1 (little-endian).
  if (view.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new Error(`${path}: not an ELF64 little-endian file`);
  }
  const shoff = Number(view.getBigUint64(0x28, true)); // e_shoff
  const shentsize = view.getUint16(0x3a, true); // e_shentsize
  const shnum = view.getUint16(0x3c, true); // e_shnum
  const shstrndx = view.getUint16(0x3e, true); // e_shstrndx
  const section = (i: number) => {
    const at = shoff + i * shentsize; // Elf64_Shdr
    return {
      name: view.getUint32(at, true), // sh_name: offset into .shstrtab
      offset: Number(view.getBigUint64(at + 0x18, true)), // sh_offset
      size: Number(view.getBigUint64(at + 0x20, true)), // sh_size
    };
  };
  const strtab = section(shstrndx);
  const decoder = new TextDecoder();
  const cstring = (at: number) => decoder.decode(bytes.subarray(at, bytes.indexOf(0, at)));

  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (cstring(strtab.offset + s.name) !== ".modinfo") continue;
    const fields = decoder.decode(bytes.subarray(s.offset, s.offset + s.size))
      .split("\0").filter((f) => f.includes("="))
      .map((f) => [f.slice(0, f.indexOf("=")), f.slice(f.indexOf("=") + 1)] as [string, string]);
    const depends = fields.find(([k]) => k === "depends")?.[1] ?? "";
    return { depends: depends.split(",").filter(Boolean), fields };
  }
  throw new Error(`${path}: no .modinfo section`);
}
