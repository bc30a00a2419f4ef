import { deepEqual, equal, ok, throws } from "../../../assert.ts";
import {
  type KernelFile,
  kernelFootprintEnd,
  LinuxLoadError,
  loadLinux,
  parseKernel,
  placeKernel,
} from "../../../../src/arch/x86_64/boot/linux.ts";
import { BootImageError, parseBzImage } from "../../../../src/arch/x86_64/boot/bzimage.ts";
import { ElfError, parseElf } from "../../../../src/boot/elf.ts";
import { GuestMemory } from "../../../../src/memory/guest_memory.ts";
import { type MemoryLayout, memoryLayout } from "../../../../src/arch/x86_64/memory_map.ts";
import {
  hasTestVmlinux,
  readTestVmlinux,
  SYNTHETIC_ELF_SEGMENTS,
  syntheticBzImage,
  syntheticElf,
  testKernel,
} from "../../../boot/test_kernel.ts";

const MiB = 1024 * 1024;

function machine(ramBytes: number) {
  const layout = memoryLayout(ramBytes);
  return { layout, mem: new GuestMemory(new ArrayBuffer(ramBytes), layout) };
}

/** A kernel file parsed and placed in `layout`, as the machine does before loadLinux. */
function placeIn(file: KernelFile, layout: MemoryLayout) {
  return placeKernel(parseKernel(file), layout);
}

function fakeInitrd(sizeBytes: number): Uint8Array {
  const initrd = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i += 4096) initrd[i] = (i / 4096) & 0xff;
  initrd[sizeBytes - 1] = 0x5a;
  return initrd;
}

/** Where the zero page says the initrd is. */
function initrdFromZeroPage(mem: GuestMemory) {
  return { gpa: mem.readU32(0x7000 + 0x218), size: mem.readU32(0x7000 + 0x21c) };
}

Deno.test({
  name: "linux: the real kernel with a 10 MiB initrd on 256 MiB puts everything inside RAM",
  ignore: testKernel === undefined,
  fn() {
    const { layout, mem } = machine(256 * MiB);
    const initrd = fakeInitrd(10 * MiB);
    const cmdline = "console=ttyS0 reboot=k panic=1";
    const state = loadLinux(mem, layout, placeIn(testKernel!, layout), initrd, cmdline, 2);
    const image = parseBzImage(testKernel!);

    equal(state.regs.rip, 0x100200);
    equal(state.regs.rsi, 0x7000);
    deepEqual(mem.slice(0x100000, image.protectedMode.length), image.protectedMode);
    equal(new TextDecoder().decode(mem.read(0x20000, cmdline.length)), cmdline);
    equal(mem.readU8(0x20000 + cmdline.length), 0);
    equal(mem.readU32(0x7000 + 0x228), 0x20000);
    equal(mem.readU32(0x7000 + 0x202), 0x5372_6448); // the header copy, "HdrS"

    const placed = initrdFromZeroPage(mem);
    equal(placed.size, 10 * MiB);
    equal(placed.gpa % 4096, 0);
    ok(placed.gpa + placed.size <= 256 * MiB);
    ok(placed.gpa + placed.size > 256 * MiB - 4096, "as high as possible");
    // Clear of where the decompressor works: [pref_address, + init_size).
    ok(placed.gpa >= image.prefAddress + image.initSize);
    deepEqual(mem.slice(placed.gpa, placed.size), initrd);

    equal(mem.readU32(0xf0000), 0x5f50_4d5f); // "_MP_"
    equal(mem.readU64(0x9000), 0xa003n); // page tables in place
    equal(mem.readU64(0x500 + 0x10), 0x00af_9b00_0000_ffffn); // __BOOT_CS
  },
});

Deno.test({
  name: "linux: the real kernel refuses an initrd that does not fit, naming sizes and -m",
  ignore: testKernel === undefined,
  fn() {
    const { layout, mem } = machine(256 * MiB);
    throws(
      () => loadLinux(mem, layout, placeIn(testKernel!, layout), fakeInitrd(200 * MiB), "", 1),
      (e: Error) =>
        e instanceof LinuxLoadError &&
        /^initrd of 200 MiB does not fit in RAM below 256 MiB .*; use a larger -m$/.test(
          e.message,
        ),
    );
    // Everything is checked before anything is written.
    equal(mem.readU32(0x100000), 0);
    equal(mem.readU32(0x7000 + 0x202), 0);
  },
});

Deno.test({
  name: "linux: the real kernel refuses a 32 MiB machine and says how much RAM it needs",
  ignore: testKernel === undefined,
  fn() {
    const { layout, mem } = machine(32 * MiB);
    throws(
      () => loadLinux(mem, layout, placeIn(testKernel!, layout), undefined, "", 1),
      /^LinuxLoadError: kernel needs [0-9.]+ MiB of RAM to decompress .* has 32 MiB below 3 GiB; use a larger -m$/,
    );
  },
});

Deno.test("linux: the decompression area starts at pref_address for a kernel loaded at 1 MiB", () => {
  const image = { initSize: 50 * MiB, kernelAlignment: 2 * MiB, relocatable: true };
  equal(kernelFootprintEnd({ ...image, prefAddress: 16 * MiB }, 14 * MiB), 66 * MiB);
  // A relocatable kernel built for 1 MiB decompresses right where it was loaded.
  equal(kernelFootprintEnd({ ...image, prefAddress: 1 * MiB }, 14 * MiB), 52 * MiB);
  // The loaded image itself counts when it is larger than init_size (never for real kernels).
  equal(kernelFootprintEnd({ ...image, initSize: 0, prefAddress: 1 * MiB }, 14 * MiB), 15 * MiB);
});

Deno.test("linux: a synthetic kernel lands at 1 MiB with entry at +0x200", () => {
  const { layout, mem } = machine(64 * MiB);
  const state = loadLinux(mem, layout, placeIn(syntheticBzImage(), layout), undefined, "quiet", 1);
  equal(state.regs.rip, 0x100200);
  equal(mem.readU8(0x100000 + 0x1ff), 0xff);
  equal(mem.readU8(0x100000 + 0x200), 0x00);
  deepEqual(initrdFromZeroPage(mem), { gpa: 0, size: 0 });
});

Deno.test("linux: the initrd stays below initrd_addr_max", () => {
  const { layout, mem } = machine(256 * MiB);
  const kernel = syntheticBzImage({ initrdAddrMax: 64 * MiB - 1 });
  loadLinux(mem, layout, placeIn(kernel, layout), fakeInitrd(5 * MiB + 100), "", 1);
  const placed = initrdFromZeroPage(mem);
  equal(placed.gpa, 64 * MiB - 5 * MiB - 4096); // 64 MiB - size, page-aligned down
  equal(placed.size, 5 * MiB + 100);
});

Deno.test("linux: the command line may hold cmdline_size bytes, not one more", () => {
  const { layout, mem } = machine(64 * MiB);
  const kernel = syntheticBzImage({ cmdlineSize: 255 });
  loadLinux(mem, layout, placeIn(kernel, layout), undefined, "x".repeat(255), 1);
  equal(mem.readU8(0x20000 + 254), 0x78);
  equal(mem.readU8(0x20000 + 255), 0);
  throws(
    () => loadLinux(mem, layout, placeIn(kernel, layout), undefined, "x".repeat(256), 1),
    /^LinuxLoadError: kernel command line is 256 bytes; this kernel takes at most 255$/,
  );
  throws(() => loadLinux(mem, layout, placeIn(kernel, layout), undefined, "a\0b", 1), /NUL/);
});

Deno.test("linux: a machine exactly as large as the kernel's footprint has no room for an initrd", () => {
  const { layout, mem } = machine(32 * MiB); // synthetic kernel: 16 MiB from 16 MiB
  loadLinux(mem, layout, placeIn(syntheticBzImage(), layout), undefined, "", 1);
  throws(
    () => loadLinux(mem, layout, placeIn(syntheticBzImage(), layout), fakeInitrd(MiB), "", 1),
    /initrd of 1 MiB does not fit in RAM below 32 MiB \(the kernel uses RAM up to 32 MiB\)/,
  );
});

Deno.test("linux: a CPU count the MP table cannot hold is refused before loading", () => {
  const { layout, mem } = machine(64 * MiB);
  throws(
    () => loadLinux(mem, layout, placeIn(syntheticBzImage(), layout), undefined, "", 256),
    /from 1 to 255/,
  );
  equal(mem.readU32(0x100000), 0);
});

Deno.test("linux: parseKernel takes \\x7fELF for a vmlinux and anything else for a bzImage", () => {
  equal(parseKernel(syntheticElf()).kind, "elf");
  equal(parseKernel(syntheticBzImage()).kind, "bzImage");
  // An ELF is judged as an ELF, never as a bzImage that lacks HdrS.
  throws(() => parseKernel(syntheticElf({ machine: 40 })), ElfError);
  throws(() => parseKernel(new Uint8Array(1024)), BootImageError);
});

Deno.test("linux: a synthetic vmlinux enters at e_entry with a header-less zero page", () => {
  const { layout, mem } = machine(64 * MiB);
  const file = syntheticElf();
  const state = loadLinux(mem, layout, placeIn(file, layout), fakeInitrd(MiB), "console=ttyS0", 1);
  equal(state.regs.rip, 0x100_0000);
  equal(state.regs.rsi, 0x7000);
  equal(state.cs.l, 1, "long mode, as for a bzImage");
  deepEqual(mem.read(0x100_0000, 0x1000), file.subarray(0x1000, 0x2000));
  equal(mem.readU32(0x7000 + 0x202), 0x5372_6448); // "HdrS"
  equal(mem.readU16(0x7000 + 0x1fe), 0xaa55);
  equal(mem.readU32(0x7000 + 0x228), 0x20000);
  equal(mem.readU8(0x7000 + 0x1f1), 0, "no bzImage header copied");
  const placed = initrdFromZeroPage(mem);
  equal(placed.gpa, 63 * MiB, "as high as possible");
  equal(mem.readU32(0x9000), 0xa003, "page tables in place");
});

Deno.test("linux: placeKernel plans a vmlinux's copies after checking its fit; loadLinux can skip them", () => {
  const { layout, mem } = machine(64 * MiB);
  const file = syntheticElf();
  const copies = placeIn(file, layout).copies!;
  deepEqual(copies.map((c) => c.gpa), [0x100_0000, 0x120_0000]);
  equal(placeIn(syntheticBzImage(), layout).copies, undefined, "a bzImage is copied by loadLinux");
  const [text, data] = SYNTHETIC_ELF_SEGMENTS;
  throws(
    () => placeIn(syntheticElf({ segments: [text, { ...data, paddr: 0x3ff_f000 }] }), layout),
    /^LinuxLoadError: kernel needs 64\.0 MiB of RAM/,
  );
  // The caller wrote the pieces: loadLinux writes the rest (zero page, tables), not the segments.
  const state = loadLinux(mem, layout, placeIn(file, layout), undefined, "", 1, [], {
    elfPiecesWritten: true,
  });
  equal(state.regs.rip, 0x100_0000);
  equal(mem.readU32(0x100_0000), 0, "segment bytes left to the caller");
  equal(mem.readU32(0x7000 + 0x202), 0x5372_6448, "zero page written");
  equal(mem.readU32(0x9000), 0xa003, "page tables in place");
});

Deno.test("linux: a vmlinux refuses a machine smaller than its segments, writing nothing", () => {
  const { layout, mem } = machine(32 * MiB);
  const [text, data] = SYNTHETIC_ELF_SEGMENTS;
  const file = syntheticElf({ segments: [text, { ...data, paddr: 0x1ff_f000 }] });
  throws(
    () => loadLinux(mem, layout, placeIn(file, layout), undefined, "", 1),
    /^LinuxLoadError: kernel needs 32\.0 MiB of RAM \(its segments end there\); the machine has 32 MiB below 3 GiB; use a larger -m$/,
  );
  equal(mem.readU32(0x100_0000), 0);
  equal(mem.readU32(0x7000 + 0x202), 0);
});

Deno.test("linux: a vmlinux's initrd must fit above its last segment", () => {
  const { layout, mem } = machine(32 * MiB);
  const [text, data] = SYNTHETIC_ELF_SEGMENTS;
  const file = syntheticElf({ segments: [text, { ...data, paddr: 0x1e0_0000 }] });
  loadLinux(mem, layout, placeIn(file, layout), fakeInitrd(MiB), "", 1);
  equal(initrdFromZeroPage(mem).gpa, 31 * MiB);
  throws(
    () => loadLinux(mem, layout, placeIn(file, layout), fakeInitrd(2 * MiB), "", 1),
    /initrd of 2 MiB does not fit in RAM below 32 MiB \(the kernel uses RAM up to 30\.0 MiB\)/,
  );
});

Deno.test({
  name: "linux: Debian's vmlinux with a 10 MiB initrd on 256 MiB: segments, entry, initrd above",
  ignore: !hasTestVmlinux,
  fn() {
    const { layout, mem } = machine(256 * MiB);
    const file = readTestVmlinux();
    const kernel = parseElf(file);
    const state = loadLinux(
      mem,
      layout,
      placeIn(file, layout),
      fakeInitrd(10 * MiB),
      "console=ttyS0",
      1,
    );
    equal(state.regs.rip, kernel.entryGpa);
    for (const s of kernel.segments) {
      deepEqual(
        mem.slice(s.gpa, s.fileSize),
        file.subarray(s.fileOffset, s.fileOffset + s.fileSize),
      );
    }
    const placed = initrdFromZeroPage(mem);
    ok(placed.gpa >= kernel.end, "initrd clear of the kernel's end");
    ok(placed.gpa + placed.size <= 256 * MiB);
    throws(
      () =>
        loadLinux(
          machine(64 * MiB).mem,
          memoryLayout(64 * MiB),
          placeIn(file, memoryLayout(64 * MiB)),
          undefined,
          "",
          1,
        ),
      /kernel needs \d+(\.\d)? MiB of RAM \(its segments end there\).*use a larger -m$/,
    );
  },
});
