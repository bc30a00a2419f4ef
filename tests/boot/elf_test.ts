import { deepEqual, equal, ok, throws } from "../assert.ts";
import {
  checkElfPlacement,
  ElfError,
  elfLoadPieces,
  isElf,
  parseElf,
  SHF_ALLOC,
  SHT_NOBITS,
  writeElfSegments,
} from "../../src/boot/elf.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { memoryLayout } from "../../src/arch/x86_64/memory_map.ts";
import {
  hasTestVmlinux,
  readTestVmlinux,
  SYNTHETIC_ELF_SEGMENTS,
  syntheticElf,
  type SyntheticSegment,
} from "./test_kernel.ts";

const MiB = 1024 * 1024;
const [TEXT, DATA] = SYNTHETIC_ELF_SEGMENTS;

/** parseElf must refuse `file` with an ElfError whose message matches `pattern`. */
function refuses(file: Uint8Array, pattern: RegExp): void {
  throws(() => parseElf(file), (e: Error) => {
    ok(e instanceof ElfError, `${e.name}: ${e.message}`);
    ok(pattern.test(e.message), `message ${JSON.stringify(e.message)} does not match ${pattern}`);
    ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

function withSegments(...segments: SyntheticSegment[]): Uint8Array {
  return syntheticElf({ segments });
}

const KERNEL_VADDR = 0xffff_ffff_8000_0000n;
interface SyntheticSection {
  type: number;
  flags: number;
  /** Guest-physical; the section's sh_addr is the kernel's virtual address for it. */
  paddr: number;
  size: number;
}

/**
 * The synthetic ELF with a section header table appended (at `at`, or right after the file),
 * 64-byte entries unless `entrySize` says otherwise.
 */
function withSections(
  sections: SyntheticSection[],
  table: { at?: number; entrySize?: number } = {},
): Uint8Array {
  const base = syntheticElf();
  const entrySize = table.entrySize ?? 64;
  const at = table.at ?? base.length;
  const file = new Uint8Array(Math.max(base.length, at + sections.length * entrySize));
  file.set(base);
  const view = new DataView(file.buffer);
  view.setBigUint64(40, BigInt(at), true); // e_shoff
  view.setUint16(58, entrySize, true); // e_shentsize
  view.setUint16(60, sections.length, true); // e_shnum
  sections.forEach((sec, i) => {
    const e = at + i * entrySize;
    if (e + 64 > file.length) return;
    view.setUint32(e + 4, sec.type, true); // sh_type
    view.setBigUint64(e + 8, BigInt(sec.flags), true); // sh_flags
    view.setBigUint64(e + 16, BigInt(sec.paddr) | KERNEL_VADDR, true); // sh_addr
    view.setBigUint64(e + 32, BigInt(sec.size), true); // sh_size
  });
  return file;
}

/** Loads `file` into fresh RAM; returns the memory and the file bytes read. */
function load(file: Uint8Array, ramBytes = 64 * MiB): { mem: GuestMemory; bytesRead: number } {
  const kernel = parseElf(file);
  const layout = memoryLayout(ramBytes);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  let bytesRead = 0;
  const source = {
    length: file.length,
    readInto: (offset: number, into: Uint8Array) => {
      bytesRead += into.length;
      into.set(file.subarray(offset, offset + into.length));
    },
  };
  writeElfSegments(mem, source, kernel);
  return { mem, bytesRead };
}

Deno.test("elf: a vmlinux-like file parses into its PT_LOAD segments, sorted, and its entry", () => {
  // Data first in the file: the loader must not depend on program header order.
  const kernel = parseElf(withSegments(DATA, TEXT));
  equal(kernel.entryGpa, 0x100_0000);
  deepEqual(kernel.segments.map((s) => [s.index, s.gpa, s.fileSize, s.memSize]), [
    [1, 0x100_0000, 0x1000, 0x1000],
    [0, 0x120_0000, 0x800, 0x3000],
  ]);
  equal(kernel.start, 0x100_0000);
  equal(kernel.end, 0x120_3000);
});

Deno.test("elf: segments land at p_paddr with the .bss tail zeroed and nothing else touched", () => {
  const file = syntheticElf();
  const kernel = parseElf(file);
  equal(kernel.segments.length, 2, "PT_NOTE is not loaded");
  const layout = memoryLayout(64 * MiB);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  mem.slice(0x100_0000, 0x30_0000).fill(0xee); // stale bytes the loader must overwrite or leave
  checkElfPlacement(kernel, MiB, layout.lowRamEnd);
  writeElfSegments(mem, file, kernel);

  deepEqual(mem.read(0x100_0000, 0x1000), file.subarray(0x1000, 0x2000));
  equal(mem.readU8(0x100_00ff), 0xff);
  deepEqual(mem.read(0x120_0000, 0x800), file.subarray(0x2000, 0x2800));
  ok(mem.read(0x120_0800, 0x2800).every((b) => b === 0), "p_filesz..p_memsz is zeroed");
  equal(mem.readU8(0x120_3000), 0xee, "nothing past p_memsz");
  equal(mem.readU8(0x100_1000), 0xee, "nothing between segments");
});

Deno.test("elf: isElf sniffs the magic only", () => {
  ok(isElf(syntheticElf()));
  ok(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])));
  ok(!isElf(new Uint8Array([0x7f, 0x45, 0x4c])));
  ok(!isElf(new TextEncoder().encode("MZ\0\0HdrS")));
});

Deno.test("elf: a header that is not ELF64 little-endian x86-64 ET_EXEC is refused, naming why", () => {
  const mutated = (offset: number, value: number) => {
    const file = syntheticElf();
    file[offset] = value;
    return file;
  };
  refuses(mutated(0, 0x7e), /^not an ELF file/);
  refuses(mutated(4, 1), /not 64-bit/); // ELFCLASS32
  refuses(mutated(5, 2), /not little-endian/); // ELFDATA2MSB
  refuses(mutated(6, 0), /ELF version 0/);
  refuses(syntheticElf({ machine: 183 }), /not for x86-64 \(e_machine 183, expected 62\)/);
  refuses(syntheticElf({ machine: 3 }), /e_machine 3\b/); // EM_386
  refuses(syntheticElf({ type: 3 }), /not an executable \(e_type 3/); // ET_DYN
  refuses(syntheticElf().subarray(0, 40), /^ELF truncated: header needs 64 bytes, file has 40$/);
});

Deno.test("elf: program headers that are missing, too small or past the file are refused", () => {
  refuses(syntheticElf({ segments: [] }), /no program headers/);
  refuses(syntheticElf({ phnum: 0xffff }), /too many program headers/);
  refuses(syntheticElf({ phentsize: 32 }), /program header size 32 is below 56/);
  // Three headers declared, the file ends inside the second.
  refuses(
    syntheticElf({ length: 64 + 56 + 20 }),
    /^ELF truncated: 3 program headers end at byte 232, file has 140$/,
  );
  // e_phoff far past the end (and past 2^53 once multiplied out).
  const file = syntheticElf();
  new DataView(file.buffer).setBigUint64(32, 0x1f_ffff_ffff_ffffn, true);
  refuses(file, /ELF truncated: 3 program headers end at byte/);
  new DataView(file.buffer).setBigUint64(32, 1n << 63n, true);
  refuses(file, /e_phoff 0x8000000000000000 is too large/);
  refuses(withSegments({ ...TEXT, type: 4 }), /no PT_LOAD segment/);
});

Deno.test("elf: every segment size and offset from the file is checked", () => {
  refuses(
    withSegments({ ...TEXT, filesz: 0x2000, memsz: 0x1000 }),
    /segment 0: p_filesz 8192 exceeds p_memsz 4096/,
  );
  refuses(
    syntheticElf({ segments: [TEXT, DATA], length: 0x2400 }),
    /^ELF truncated: segment 1 needs bytes up to 10240, file has 9216$/,
  );
  refuses(withSegments({ ...TEXT, offset: 0x7fff_ffff_ffff_f000n }), /p_offset .* too large/);
  refuses(withSegments({ ...TEXT, offset: 0x1f_ffff_ffff_f000n }), /segment 0 needs bytes up to/);
  refuses(withSegments({ ...TEXT, filesz: 1n << 62n, memsz: 1n << 62n }), /p_filesz .* too large/);
  refuses(withSegments({ ...TEXT, memsz: 0xffff_ffff_ffff_ffffn }), /p_memsz .* too large/);
  refuses(withSegments({ ...TEXT, paddr: 1n << 60n }), /p_paddr .* too large/);
  refuses(
    withSegments({ ...TEXT, paddr: 0x1f_ffff_ffff_f000n, memsz: 0x1f_ffff_ffff_f000n }),
    /segment 0: p_paddr \+ p_memsz overflows/,
  );
});

Deno.test("elf: overlapping segments and an entry outside loaded code are refused", () => {
  refuses(
    withSegments(TEXT, { ...DATA, paddr: 0x100_0800 }),
    /segments 0 and 1 overlap at 0x1000800/,
  );
  // Touching is not overlapping.
  parseElf(withSegments(TEXT, { ...DATA, paddr: 0x100_1000 }));
  refuses(
    syntheticElf({ entry: 0x90_0000 }),
    /entry point 0x900000 is not in an executable loaded segment/,
  );
  refuses(syntheticElf({ entry: 0x120_0000 }), /entry point 0x1200000/); // data, not executable
  refuses(syntheticElf({ entry: 0x100_1000 }), /entry point 0x1001000/); // one past the text
});

Deno.test("elf: placement refuses segments below the loader's first MiB or past RAM", () => {
  const layout = memoryLayout(32 * MiB);
  const low = parseElf(
    syntheticElf({ segments: [{ ...TEXT, paddr: 0x9_0000 }, DATA], entry: 0x9_0000 }),
  );
  throws(
    () => checkElfPlacement(low, MiB, layout.lowRamEnd),
    /^ElfError: ELF segment 0 at 0x90000..0x91000 is outside guest RAM the kernel may use, 0x100000..0x2000000$/,
  );
  const high = parseElf(withSegments(TEXT, { ...DATA, paddr: 0x1ff_f000 }));
  throws(() => checkElfPlacement(high, MiB, layout.lowRamEnd), /segment 1 at 0x1fff000..0x2002000/);
  checkElfPlacement(parseElf(syntheticElf()), MiB, layout.lowRamEnd);
});

Deno.test({
  name: "elf: Debian's vmlinux starts at 16 MiB and enters in its first segment",
  ignore: !hasTestVmlinux,
  fn() {
    const kernel = parseElf(readTestVmlinux());
    equal(kernel.start, 0x100_0000); // LOAD_PHYSICAL_ADDR
    equal(kernel.segments[0].gpa, kernel.start);
    // phys_startup_64: the first byte of .text on Linux 6.1 (Debian 12); 6.12 (Debian 13) puts
    // other .head.text code before it (entry 0x1000c43 there).
    const first = kernel.segments[0];
    ok(
      kernel.entryGpa >= first.gpa && kernel.entryGpa < first.gpa + first.fileSize,
      `entry 0x${kernel.entryGpa.toString(16)}`,
    );
    ok(kernel.segments.length >= 3, `${kernel.segments.length} segments`);
    ok(kernel.end > 32 * MiB && kernel.end < 256 * MiB, `ends at 0x${kernel.end.toString(16)}`);
  },
});

Deno.test("elf: from the file's head and a reader, segments are read straight into RAM", () => {
  const file = syntheticElf();
  const reads: Array<[number, number]> = [];
  const source = {
    length: file.length,
    readInto: (offset: number, into: Uint8Array) => {
      reads.push([offset, into.length]);
      into.set(file.subarray(offset, offset + into.length));
    },
  };
  const kernel = parseElf(file.subarray(0, 0x200), file.length);
  const layout = memoryLayout(64 * MiB);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  writeElfSegments(mem, source, kernel);
  deepEqual(reads, [[0x1000, 0x1000], [0x2000, 0x800]], "each segment's file bytes, once");
  deepEqual(mem.read(0x120_0000, 0x800), file.subarray(0x2000, 0x2800));
  // Sizes are checked against the whole file's length, not the head's.
  throws(() => parseElf(file.subarray(0, 0x200), 0x2400), /ELF truncated: segment \d+ needs/);
  // Program headers past the head read cannot be parsed from it.
  throws(() => parseElf(file.subarray(0, 0x60), file.length), /past the first 96 bytes read/);
});

Deno.test("elf: file bytes under NOBITS sections are not copied: fresh RAM is zero there", () => {
  const ALLOC = SHF_ALLOC;
  const file = withSections([
    { type: SHT_NOBITS, flags: ALLOC, paddr: 0x120_0200, size: 0x100 }, // inside DATA's image
    { type: SHT_NOBITS, flags: ALLOC, paddr: 0x120_0280, size: 0x100 }, // overlaps the first
    { type: SHT_NOBITS, flags: ALLOC, paddr: 0x120_0700, size: 0x2000 }, // runs past p_filesz
    { type: SHT_NOBITS, flags: 0, paddr: 0x100_0100, size: 0x100 }, // not loaded: ignored
    { type: 1, flags: ALLOC, paddr: 0x100_0400, size: 0x100 }, // PROGBITS: copied
  ]);
  const { mem, bytesRead } = load(file);
  const tableBytes = 5 * 64;
  // DATA's 0x800 bytes less [0x200, 0x380) and [0x700, 0x800); TEXT whole; the table once.
  equal(bytesRead, 0x1000 + 0x800 - 0x180 - 0x100 + tableBytes);
  deepEqual(mem.read(0x100_0000, 0x1000), file.subarray(0x1000, 0x2000));
  deepEqual(mem.read(0x120_0000, 0x200), file.subarray(0x2000, 0x2200));
  ok(mem.read(0x120_0200, 0x180).every((b) => b === 0), "NOBITS bytes left zero");
  deepEqual(mem.read(0x120_0380, 0x380), file.subarray(0x2380, 0x2700));
  ok(mem.read(0x120_0700, 0x100).every((b) => b === 0), "NOBITS to the end of p_filesz");
  ok(file.subarray(0x2200, 0x2380).some((b) => b !== 0), "the file has bytes there to skip");
});

Deno.test("elf: the load pieces are the file image less the NOBITS holes, in segment order", () => {
  const file = withSections([
    { type: SHT_NOBITS, flags: SHF_ALLOC, paddr: 0x120_0200, size: 0x100 },
    { type: SHT_NOBITS, flags: SHF_ALLOC, paddr: 0x120_0700, size: 0x2000 },
  ]);
  const pieces = elfLoadPieces(file, parseElf(file));
  deepEqual(pieces, [
    { fileOffset: 0x1000, gpa: 0x100_0000, length: 0x1000 }, // TEXT whole
    { fileOffset: 0x2000, gpa: 0x120_0000, length: 0x200 }, // DATA up to the first hole
    { fileOffset: 0x2300, gpa: 0x120_0300, length: 0x400 }, // between the holes
  ]);
  // Without a section table every segment is one piece: its whole p_filesz.
  deepEqual(elfLoadPieces(syntheticElf(), parseElf(syntheticElf())), [
    { fileOffset: 0x1000, gpa: TEXT.paddr, length: 0x1000 },
    { fileOffset: 0x2000, gpa: DATA.paddr, length: 0x800 },
  ]);
});

Deno.test("elf: a section header table that cannot be used is passed over, and all is copied", () => {
  const bss = [{ type: SHT_NOBITS, flags: SHF_ALLOC, paddr: 0x120_0200, size: 0x100 }];
  const whole = 0x1000 + 0x800;
  for (
    const [why, file] of [
      ["entries smaller than Elf64_Shdr", withSections(bss, { entrySize: 32 })],
      [
        "a table past the end of the file",
        (() => {
          const f = withSections(bss);
          return f.subarray(0, f.length - 1);
        })(),
      ],
      [
        "e_shoff far past the file",
        (() => {
          const f = withSections(bss);
          new DataView(f.buffer).setBigUint64(40, 0xffff_ffff_ffff_ff00n, true);
          return f;
        })(),
      ],
    ] as const
  ) {
    const { mem, bytesRead } = load(file);
    equal(bytesRead, whole, why);
    deepEqual(mem.read(0x120_0000, 0x800), file.subarray(0x2000, 0x2800), why);
  }
});

Deno.test({
  name: "elf: Debian's vmlinux loads without reading its .bss, which stays zero",
  ignore: !hasTestVmlinux,
  fn() {
    const file = readTestVmlinux();
    const kernel = parseElf(file);
    const { mem, bytesRead } = load(file, 256 * MiB);
    const image = kernel.segments.reduce((n, s) => n + s.fileSize, 0);
    // .bss alone is 17 MiB on Debian 12's kernel (6.1), 5 MiB on 13's (6.12); the section
    // table is a few KiB.
    ok(image - bytesRead > 4 * MiB, `read ${bytesRead} of ${image} bytes`);
    for (const s of kernel.segments) {
      const got = mem.read(s.gpa, s.fileSize);
      const want = file.subarray(s.fileOffset, s.fileOffset + s.fileSize);
      // Where a byte differs, the file had a non-zero byte and RAM a zero: never the reverse.
      let differ = 0;
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== want[i]) {
          differ++;
          ok(got[i] === 0, `segment ${s.index} byte ${i}`);
        }
      }
      ok(differ === 0, `segment ${s.index}: ${differ} bytes of a NOBITS section were not zero`);
    }
  },
});
