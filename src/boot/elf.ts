/**
 * Load an uncompressed Linux kernel, the vmlinux ELF that a bzImage carries compressed, so that
 * the guest skips decompressing itself. Only what that needs: ELF64, little-endian, x86-64,
 * ET_EXEC, whose PT_LOAD segments go to their physical addresses (System V gABI, "Program
 * Header"; the kernel's linker script sets p_paddr to where each segment runs before paging is
 * set up, from CONFIG_PHYSICAL_START: 16 MiB on Debian).
 *
 * The entry point is e_entry, which the kernel links as phys_startup_64: the physical address
 * of startup_64, entered by the 64-bit boot protocol like a bzImage's +0x200 (as Firecracker
 * does). The Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY) in PT_NOTE is a 32-bit entry and not used.
 *
 * The file is as untrusted as any guest input: every offset and size in it is checked against
 * the file and the RAM before any byte is copied.
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";

/** "\x7fELF". */
export const ELF_MAGIC = Object.freeze([0x7f, 0x45, 0x4c, 0x46]);
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EV_CURRENT = 1;
const ET_EXEC = 2;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
/** Segment flag: executable. */
export const PF_X = 0x1;
/** e_phnum's escape for "more than 0xfffe, see section header 0": no kernel needs it. */
const PN_XNUM = 0xffff;

// Elf64_Ehdr offsets.
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
const E_TYPE = 16; // Elf64_Half e_type
const E_MACHINE = 18; // Elf64_Half e_machine
const E_ENTRY = 24; // Elf64_Addr e_entry
const E_PHOFF = 32; // Elf64_Off e_phoff
const E_PHENTSIZE = 54; // Elf64_Half e_phentsize
const E_PHNUM = 56; // Elf64_Half e_phnum
const E_SHOFF = 40; // Elf64_Off e_shoff
const E_SHENTSIZE = 58; // Elf64_Half e_shentsize
const E_SHNUM = 60; // Elf64_Half e_shnum
export const ELF64_EHDR_SIZE = 64;

// Elf64_Phdr offsets.
const P_TYPE = 0; // Elf64_Word p_type
const P_FLAGS = 4; // Elf64_Word p_flags
const P_OFFSET = 8; // Elf64_Off p_offset
const P_VADDR = 16; // Elf64_Addr p_vaddr
const P_PADDR = 24; // Elf64_Addr p_paddr
const P_FILESZ = 32; // Elf64_Xword p_filesz
const P_MEMSZ = 40; // Elf64_Xword p_memsz
export const ELF64_PHDR_SIZE = 56;

// Elf64_Shdr offsets, and the two values the loader looks for.
const SH_TYPE = 4; // Elf64_Word sh_type
const SH_FLAGS = 8; // Elf64_Xword sh_flags
const SH_ADDR = 16; // Elf64_Addr sh_addr
const SH_SIZE = 32; // Elf64_Xword sh_size
export const ELF64_SHDR_SIZE = 64;
export const SHT_NOBITS = 8;
export const SHF_ALLOC = 0x2;
/** A section header table larger than this is not read (Debian's vmlinux has 40 sections). */
const MAX_SECTION_TABLE_BYTES = 1024 * 1024;

/** One PT_LOAD segment, every number checked to be a safe integer inside the file. */
export interface ElfSegment {
  /** Index among all program headers, for messages. */
  index: number;
  fileOffset: number;
  fileSize: number;
  gpa: number;
  /** p_vaddr: a kernel's is in the top 2 GiB, past what a number holds exactly. */
  vaddr: bigint;
  memSize: number;
  flags: number;
}

/** What the loader needs to know about a vmlinux. */
export interface ElfKernel {
  /** Guest-physical address of the 64-bit entry point (startup_64). */
  entryGpa: number;
  /** PT_LOAD segments in ascending gpa order, none overlapping another. */
  segments: ElfSegment[];
  /** Lowest gpa any segment occupies. */
  start: number;
  /** First byte above every segment (its p_paddr + p_memsz). */
  end: number;
  /** Where the section header table is, if the file has a usable one (see writeElfSegments). */
  sectionTable?: { offset: number; entrySize: number; count: number };
}

/** A file that is not an ELF kernel we can boot. The message is one line for the user. */
export class ElfError extends Error {
  override name = "ElfError";
}

/**
 * A file's bytes read on demand: a vmlinux is tens of MiB of which the loader needs the headers,
 * then each segment once, straight into guest RAM. Reading the whole file into a buffer first
 * would cost its size again in the VMM's memory and a copy.
 */
export interface FileSource {
  /** The file's length in bytes. */
  readonly length: number;
  /** Fill `into` with the file's bytes from `offset` (inside the file; checked by the caller). */
  readInto(offset: number, into: Uint8Array): void;
}

/** A file already in memory, as a FileSource. */
export function bytesSource(file: Uint8Array): FileSource {
  return {
    length: file.length,
    readInto: (offset, into) => into.set(file.subarray(offset, offset + into.length)),
  };
}

/** Whether `file` starts with the ELF magic (and should be parsed as one rather than a bzImage). */
export function isElf(file: Uint8Array): boolean {
  return file.length >= ELF_MAGIC.length && ELF_MAGIC.every((b, i) => file[i] === b);
}

/**
 * Check and dissect a vmlinux: everything that can be checked without knowing the RAM.
 *
 * @example
 * ```ts
 * const kernel = parseElf(await Deno.readFile(".cache/guest/vmlinux"));
 * kernel.entryGpa; // 0x1000000
 * ```
 */
export function parseElf(file: Uint8Array, fileLength = file.length): ElfKernel {
  if (!isElf(file)) throw new ElfError("not an ELF file (no \\x7fELF magic)");
  if (file.length < ELF64_EHDR_SIZE) {
    throw new ElfError(
      `ELF truncated: header needs ${ELF64_EHDR_SIZE} bytes, file has ${file.length}`,
    );
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file[EI_CLASS] !== ELFCLASS64) throw new ElfError("ELF kernel is not 64-bit (ELFCLASS64)");
  if (file[EI_DATA] !== ELFDATA2LSB) throw new ElfError("ELF kernel is not little-endian");
  if (file[EI_VERSION] !== EV_CURRENT) {
    throw new ElfError(`ELF version ${file[EI_VERSION]} is not 1 (EV_CURRENT)`);
  }
  const machine = view.getUint16(E_MACHINE, true);
  if (machine !== EM_X86_64) {
    throw new ElfError(`ELF kernel is not for x86-64 (e_machine ${machine}, expected 62)`);
  }
  const type = view.getUint16(E_TYPE, true);
  if (type !== ET_EXEC) {
    throw new ElfError(`ELF kernel is not an executable (e_type ${type}, expected 2 ET_EXEC)`);
  }

  const phoff = u64(view, E_PHOFF, "e_phoff");
  const phentsize = view.getUint16(E_PHENTSIZE, true);
  const phnum = view.getUint16(E_PHNUM, true);
  if (phnum === 0 || phnum === PN_XNUM) {
    throw new ElfError(`ELF kernel has ${phnum === 0 ? "no" : "too many"} program headers`);
  }
  // A larger entry is allowed by the gABI (later fields); a smaller one cannot hold ours.
  if (phentsize < ELF64_PHDR_SIZE) {
    throw new ElfError(`ELF program header size ${phentsize} is below ${ELF64_PHDR_SIZE}`);
  }
  const phEnd = phoff + phnum * phentsize; // see u64: compares correctly with the length
  if (phEnd > fileLength) {
    throw new ElfError(
      `ELF truncated: ${phnum} program headers end at byte ${phEnd}, file has ${fileLength}`,
    );
  }
  // `file` may be only the file's head (the loader reads segments later, from the file).
  if (phEnd > file.length) {
    throw new ElfError(
      `ELF program headers end at byte ${phEnd}, past the first ${file.length} bytes read`,
    );
  }

  const segments: ElfSegment[] = [];
  for (let index = 0; index < phnum; index++) {
    const at = phoff + index * phentsize;
    if (view.getUint32(at + P_TYPE, true) !== PT_LOAD) continue;
    const segment = {
      index,
      fileOffset: u64(view, at + P_OFFSET, `segment ${index} p_offset`),
      fileSize: u64(view, at + P_FILESZ, `segment ${index} p_filesz`),
      gpa: u64(view, at + P_PADDR, `segment ${index} p_paddr`),
      vaddr: view.getBigUint64(at + P_VADDR, true),
      memSize: u64(view, at + P_MEMSZ, `segment ${index} p_memsz`),
      flags: view.getUint32(at + P_FLAGS, true),
    };
    checkSegment(segment, fileLength);
    segments.push(segment);
  }
  if (segments.length === 0) throw new ElfError("ELF kernel has no PT_LOAD segment");

  segments.sort((a, b) => a.gpa - b.gpa);
  for (let i = 1; i < segments.length; i++) {
    const [prev, next] = [segments[i - 1], segments[i]];
    if (prev.gpa + prev.memSize > next.gpa) {
      throw new ElfError(
        `ELF segments ${prev.index} and ${next.index} overlap at ${hex(next.gpa)}`,
      );
    }
  }

  const entryGpa = u64(view, E_ENTRY, "e_entry");
  const entrySegment = segments.find((s) =>
    entryGpa >= s.gpa && entryGpa < s.gpa + s.fileSize && (s.flags & PF_X) !== 0
  );
  if (!entrySegment) {
    throw new ElfError(`ELF entry point ${hex(entryGpa)} is not in an executable loaded segment`);
  }

  const last = segments[segments.length - 1];
  return {
    entryGpa,
    segments,
    start: segments[0].gpa,
    end: last.gpa + last.memSize,
    sectionTable: sectionTable(view, fileLength),
  };
}

/**
 * The section header table's place, if it is one the loader can use. Sections are only a way
 * to copy less (see writeElfSegments), so a table that is absent, odd or past the file is
 * passed over rather than refused: the kernel's own decompressor never looks at it.
 */
function sectionTable(view: DataView, fileLength: number): ElfKernel["sectionTable"] {
  const offset = view.getBigUint64(E_SHOFF, true);
  const entrySize = view.getUint16(E_SHENTSIZE, true);
  const count = view.getUint16(E_SHNUM, true);
  if (offset === 0n || count === 0 || entrySize < ELF64_SHDR_SIZE) return undefined;
  const bytes = entrySize * count;
  if (bytes > MAX_SECTION_TABLE_BYTES || offset + BigInt(bytes) > BigInt(fileLength)) {
    return undefined;
  }
  return { offset: Number(offset), entrySize, count };
}

/**
 * Per segment, the parts of its file image that belong to NOBITS sections (.bss, .brk): sorted,
 * merged [start, end) offsets into the segment. A vmlinux extracted from a bzImage carries its
 * .bss as 17 MiB of zeros inside the last segment's p_filesz; NOBITS says those bytes have no
 * content to load, and fresh guest RAM is zero already.
 */
function nobitsHoles(
  source: FileSource,
  kernel: ElfKernel,
): Map<ElfSegment, Array<[number, number]>> {
  const holes = new Map<ElfSegment, Array<[number, number]>>();
  const table = kernel.sectionTable;
  if (!table) return holes;
  const bytes = new Uint8Array(table.entrySize * table.count);
  source.readInto(table.offset, bytes);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < table.count; i++) {
    const at = i * table.entrySize;
    if (view.getUint32(at + SH_TYPE, true) !== SHT_NOBITS) continue;
    if ((view.getBigUint64(at + SH_FLAGS, true) & BigInt(SHF_ALLOC)) === 0n) continue;
    const addr = view.getBigUint64(at + SH_ADDR, true);
    const size = view.getBigUint64(at + SH_SIZE, true);
    if (size === 0n) continue;
    for (const s of kernel.segments) {
      // All in bigint until the numbers are known to lie inside the segment's file image.
      const from = addr - s.vaddr;
      if (from < 0n || from >= BigInt(s.fileSize)) continue;
      const to = from + size < BigInt(s.fileSize) ? from + size : BigInt(s.fileSize);
      const list = holes.get(s) ?? [];
      list.push([Number(from), Number(to)]);
      holes.set(s, list);
    }
  }
  for (const [s, list] of holes) {
    list.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [from, to] of list) {
      const prev = merged.at(-1);
      if (prev && from <= prev[1]) prev[1] = Math.max(prev[1], to);
      else merged.push([from, to]);
    }
    holes.set(s, merged);
  }
  return holes;
}

/**
 * Check that every segment lies in [lowest, limit): guest RAM above what the loader uses for
 * itself. Separate from parsing because only the machine knows its RAM.
 */
export function checkElfPlacement(kernel: ElfKernel, lowest: number, limit: number): void {
  for (const s of kernel.segments) {
    if (s.gpa < lowest || s.gpa + s.memSize > limit) {
      throw new ElfError(
        `ELF segment ${s.index} at ${hex(s.gpa)}..${hex(s.gpa + s.memSize)} is outside guest ` +
          `RAM the kernel may use, ${hex(lowest)}..${hex(limit)}`,
      );
    }
  }
}

/** One run of file bytes a segment loads: `length` bytes from `fileOffset` to `gpa`. */
export interface ElfLoadPiece {
  fileOffset: number;
  gpa: number;
  length: number;
}

/**
 * What loading copies: each segment's p_filesz bytes, less those NOBITS sections cover (RAM must
 * be zero there already, as a new VM's is: an anonymous mapping). Copying less is most of what
 * loading costs. `kernel` must come from {@link parseElf} of this `file`, placed by
 * {@link checkElfPlacement}; the pieces then lie inside the file and inside the segments.
 */
export function elfLoadPieces(file: Uint8Array | FileSource, kernel: ElfKernel): ElfLoadPiece[] {
  const source = file instanceof Uint8Array ? bytesSource(file) : file;
  const holes = nobitsHoles(source, kernel);
  const pieces: ElfLoadPiece[] = [];
  for (const s of kernel.segments) {
    let at = 0;
    for (const [from, to] of [...holes.get(s) ?? [], [s.fileSize, s.fileSize]]) {
      if (from > at) {
        pieces.push({ fileOffset: s.fileOffset + at, gpa: s.gpa + at, length: from - at });
      }
      at = to;
    }
  }
  return pieces;
}

/** Zero each segment's part past p_filesz up to p_memsz (the .bss part). */
export function zeroElfTails(mem: GuestMemory, kernel: ElfKernel): void {
  for (const s of kernel.segments) mem.slice(s.gpa + s.fileSize, s.memSize - s.fileSize).fill(0);
}

/**
 * Copy each segment's p_filesz bytes to p_paddr (the {@link elfLoadPieces}) and zero the rest up
 * to p_memsz.
 *
 * @example
 * ```ts
 * const kernel = parseElf(file);
 * checkElfPlacement(kernel, 0x100000, layout.lowRamEnd);
 * writeElfSegments(mem, file, kernel);
 * ```
 */
export function writeElfSegments(
  mem: GuestMemory,
  file: Uint8Array | FileSource,
  kernel: ElfKernel,
): void {
  const source = file instanceof Uint8Array ? bytesSource(file) : file;
  for (const p of elfLoadPieces(source, kernel)) {
    source.readInto(p.fileOffset, mem.slice(p.gpa, p.length));
  }
  zeroElfTails(mem, kernel);
}

/** The checks that need only the segment and the file's length. */
function checkSegment(s: ElfSegment, fileLength: number): void {
  if (s.fileSize > s.memSize) {
    throw new ElfError(
      `ELF segment ${s.index}: p_filesz ${s.fileSize} exceeds p_memsz ${s.memSize}`,
    );
  }
  if (s.fileOffset + s.fileSize > fileLength) {
    throw new ElfError(
      `ELF truncated: segment ${s.index} needs bytes up to ${s.fileOffset + s.fileSize}, ` +
        `file has ${fileLength}`,
    );
  }
  if (!Number.isSafeInteger(s.gpa + s.memSize)) {
    throw new ElfError(`ELF segment ${s.index}: p_paddr + p_memsz overflows`);
  }
}

/**
 * A u64 field as a number. Values of 2^53 and above are refused, which also makes every sum of
 * two of them (below 2^54) compare correctly against the file's length and RAM sizes.
 */
function u64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ElfError(`ELF ${what} 0x${value.toString(16)} is too large`);
  }
  return Number(value);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
