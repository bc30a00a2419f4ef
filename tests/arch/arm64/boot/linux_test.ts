import { deepEqual, equal, match, ok, throws } from "../../../assert.ts";
import {
  type Arm64BootInput,
  COMMAND_LINE_SIZE,
  LinuxLoadError,
  loadLinux,
  MAX_DTB_BYTES,
  parseKernel,
  placeKernel,
} from "../../../../src/arch/arm64/boot/linux.ts";
import { type Arm64Layout, memoryLayout } from "../../../../src/arch/arm64/memory_map.ts";
import { bytesSource } from "../../../../src/boot/elf.ts";
import { GuestMemory } from "../../../../src/memory/guest_memory.ts";
import type { KernelFile } from "../../../../src/arch/platform.ts";
import { cells, decompile, type Dts, parseDts, prop, strings } from "../dtc.ts";
import { syntheticArm64Image, testArm64Image } from "./test_image.ts";

const MiB = 1024 * 1024;
const RAM_START = 0x8000_0000;

function machine(ramBytes: number) {
  const layout = memoryLayout(ramBytes);
  return { layout, mem: new GuestMemory(new ArrayBuffer(ramBytes), layout) };
}

function boot(extra: Partial<Arm64BootInput> = {}): Arm64BootInput {
  return {
    cmdline: "console=ttyS0 earlycon",
    cpus: 2,
    pciIntx: [],
    mmio64: { gpa: 0, size: 0 },
    ...extra,
  };
}

function fakeInitrd(sizeBytes: number): Uint8Array {
  const initrd = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i += 4096) initrd[i] = (i / 4096) & 0xff;
  initrd[sizeBytes - 1] = 0x5a;
  return initrd;
}

/** The DTB at `gpa`, as long as its header says, read back by dtc. */
function dtbAt(mem: GuestMemory, gpa: number): Dts {
  equal(mem.readU32(gpa), 0xedfe0dd0, "FDT magic (big-endian d00dfeed)");
  const totalSize = new DataView(mem.read(gpa + 4, 4).buffer).getUint32(0, false);
  ok(totalSize <= MAX_DTB_BYTES);
  return parseDts(decompile(mem.read(gpa, totalSize)));
}

function load(file: KernelFile, layout: Arm64Layout, mem: GuestMemory, input: Arm64BootInput) {
  const placed = placeKernel(parseKernel(file), layout);
  return { placed, entry: loadLinux(mem, layout, placed, input) };
}

Deno.test("arm64 linux: 256 MiB, 2 vCPUs, a 10 MiB initrd: everything where booting.rst says", () => {
  const { layout, mem } = machine(256 * MiB);
  const image = syntheticArm64Image({ imageSize: 24n * BigInt(MiB) });
  const initrd = fakeInitrd(10 * MiB);
  const { placed, entry } = load(image, layout, mem, boot({ initrd }));

  equal(entry.pc, RAM_START, "text_offset 0 from the 2 MiB aligned start of RAM");
  deepEqual(mem.slice(RAM_START, image.length), image);
  equal(placed.end, RAM_START + 24 * MiB);
  equal(entry.x0, RAM_START + 254 * MiB, "the DTB in the last 2 MiB block of RAM");
  equal(entry.x0 % (2 * MiB), 0);

  const dts = dtbAt(mem, entry.x0);
  deepEqual(strings(prop(dts, "/chosen", "bootargs")), ["console=ttyS0 earlycon"]);
  const [sHi, sLo] = cells(prop(dts, "/chosen", "linux,initrd-start"));
  const [eHi, eLo] = cells(prop(dts, "/chosen", "linux,initrd-end"));
  const start = sHi * 2 ** 32 + sLo;
  equal(eHi * 2 ** 32 + eLo - start, 10 * MiB);
  equal(start % 4096, 0);
  ok(start >= placed.end, "clear of the kernel's image_size");
  ok(start + 10 * MiB <= entry.x0, "below the DTB");
  ok(start + 10 * MiB > entry.x0 - 4096, "as high as it goes");
  deepEqual(mem.slice(start, 10 * MiB), initrd);
  equal([...dts.keys()].filter((k) => k.startsWith("/cpus/")).length, 2);
  deepEqual(cells(prop(dts, "/memory@80000000", "reg")), [0, RAM_START, 0, 256 * MiB]);
});

Deno.test("arm64 linux: on 1 GiB the DTB stays in the first 512 MiB and the initrd goes on top", () => {
  const { layout, mem } = machine(1024 * MiB);
  const initrd = fakeInitrd(3 * MiB + 5);
  const { entry } = load(syntheticArm64Image(), layout, mem, boot({ initrd }));
  equal(entry.x0, RAM_START + 510 * MiB);
  const dts = dtbAt(mem, entry.x0);
  const start = cells(prop(dts, "/chosen", "linux,initrd-start"))[1];
  equal(start, Math.floor((layout.ramEnd - initrd.length) / 4096) * 4096);
  deepEqual(mem.slice(start, initrd.length), initrd);
});

Deno.test("arm64 linux: text_offset 0x80000 (a v4 kernel) enters 512 KiB into RAM", () => {
  const { layout, mem } = machine(64 * MiB);
  const image = syntheticArm64Image({ textOffset: 0x8_0000n });
  const { entry } = load(image, layout, mem, boot());
  equal(entry.pc, RAM_START + 0x8_0000);
  deepEqual(mem.slice(entry.pc, image.length), image);
  dtbAt(mem, entry.x0);
});

Deno.test("arm64 linux: a kernel given as head + source is copied from the source, or not at all", () => {
  const image = syntheticArm64Image();
  const file = { head: image.subarray(0, 64), source: bytesSource(image) };
  const a = machine(64 * MiB);
  const { placed } = load(file, a.layout, a.mem, boot());
  deepEqual(placed.copies, [{ fileOffset: 0, gpa: RAM_START, length: image.length }]);
  deepEqual(a.mem.slice(RAM_START, image.length), image);

  // copiesMade: someone else (src/machine/kernel_copy.ts) has copied it already.
  const b = machine(64 * MiB);
  load(file, b.layout, b.mem, boot({ copiesMade: true }));
  equal(b.mem.slice(RAM_START, image.length).every((x) => x === 0), true);
});

Deno.test("arm64 linux: INTx routes (GSI = SPI) and the 64-bit window reach the device tree", () => {
  const { layout, mem } = machine(64 * MiB);
  const mmio64 = { gpa: 0x1_0000_0000, size: 0x1_0000_0000 };
  const { entry } = load(
    syntheticArm64Image(),
    layout,
    mem,
    boot({ pciIntx: [{ slot: 3, pin: 2, gsi: 6 }], mmio64, cpus: 1 }),
  );
  const dts = dtbAt(mem, entry.x0);
  const map = cells(prop(dts, "/pcie@10000000", "interrupt-map"));
  const e = map.slice((3 * 4 + 1) * 10, (3 * 4 + 2) * 10);
  deepEqual([e[0], e[3], e[8]], [3 << 11, 2, 6]);
  deepEqual(cells(prop(dts, "/pcie@10000000", "ranges")).slice(14), [
    0x0300_0000,
    1,
    0,
    1,
    0,
    1,
    0,
  ]);
});

Deno.test("arm64 linux: what does not fit gets a line for the user", () => {
  const refusal = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      ok(e instanceof LinuxLoadError, `${e}`);
      return e.message;
    }
    throw new Error("loaded");
  };
  const small = machine(32 * MiB);
  const big = syntheticArm64Image({ imageSize: 40n * BigInt(MiB) });
  match(
    refusal(() => placeKernel(parseKernel(big), small.layout)),
    /kernel needs 40 MiB of RAM \(its image_size\) and 2 MiB more for the device tree; the machine has 32 MiB; use a larger -m/,
  );
  // 30 MiB of image_size and the DTB's 2 MiB fill 32 MiB exactly.
  placeKernel(parseKernel(syntheticArm64Image({ imageSize: 30n * BigInt(MiB) })), small.layout);

  const m = machine(64 * MiB);
  const placed = placeKernel(parseKernel(syntheticArm64Image()), m.layout);
  match(
    refusal(() => loadLinux(m.mem, m.layout, placed, boot({ initrd: new Uint8Array(61 * MiB) }))),
    /initrd of 61 MiB does not fit in RAM beside the kernel .*; use a larger -m/,
  );
  const longest = "x".repeat(COMMAND_LINE_SIZE - 1);
  loadLinux(m.mem, m.layout, placed, boot({ cmdline: longest }));
  match(
    refusal(() => loadLinux(m.mem, m.layout, placed, boot({ cmdline: longest + "x" }))),
    /command line is 2048 bytes; arm64 Linux takes at most 2047/,
  );
  match(refusal(() => loadLinux(m.mem, m.layout, placed, boot({ cmdline: "a\0b" }))), /NUL/);
  match(refusal(() => loadLinux(m.mem, m.layout, placed, boot({ cpus: 257 }))), /1 to 256/);
  throws(() => loadLinux(m.mem, m.layout, placed, boot({ cpus: 0 })), LinuxLoadError);
});

Deno.test({
  name: "arm64 linux: the real guest kernel with an initrd on 256 MiB",
  ignore: testArm64Image === undefined,
  fn() {
    const { layout, mem } = machine(256 * MiB);
    const initrd = fakeInitrd(4 * MiB);
    const { placed, entry } = load(testArm64Image!, layout, mem, boot({ initrd }));
    equal(entry.pc % (2 * MiB), 0);
    deepEqual(mem.slice(entry.pc, testArm64Image!.length), testArm64Image!);
    ok(placed.end <= entry.x0);
    dtbAt(mem, entry.x0);
  },
});
