/**
 * Load a Linux kernel Image on denovmm's arm64 machine (Documentation/arch/arm64/booting.rst):
 * the Image, the initrd and the device tree in RAM, and the boot vCPU's entry state (PC at the
 * Image's first byte, x0 = the device tree's address; x1-x3 zero, the MMU off and interrupts
 * masked are what KVM's vCPU reset gives already).
 *
 * Guest-physical placement (RAM from RAM_START = 2 GiB):
 *
 * ```
 * RAM_START + text_offset      the Image (its base, RAM_START, is 2 MiB aligned), then the
 *                              rest of image_size (bss, early page tables) left free
 * …                            free
 * below the DTB, or at the     initrd, page-aligned, as high as it may go
 * top of RAM above it
 * top 2 MiB of the first       the DTB, at the start of a 2 MiB block of its own
 * 512 MiB (or of RAM)
 * ```
 *
 * Why there: booting.rst maps the DTB with 2 MiB blocks, so it gets a block of its own; kernels
 * before v4.2 also want it within 512 MiB of the Image's base, which costs nothing to honour.
 * The initrd must lie in a 1 GiB aligned window of at most 32 GiB that also covers the Image.
 * Both stay high, leaving the RAM after the Image free, as booting.rst asks for a kernel whose
 * image_size is 0 (it does not say how much it needs).
 *
 * @module
 */
import type { ElfLoadPiece, FileSource } from "../../../boot/elf.ts";
import { bytesSource } from "../../../boot/elf.ts";
import type { GuestMemory } from "../../../memory/guest_memory.ts";
import { describeBytes, type GuestRange } from "../../../memory/regions.ts";
import type { KernelFile, PciIntxRoute, PlacedKernel } from "../../platform.ts";
import { buildDeviceTree } from "../device_tree.ts";
import { gsiSpi } from "../interrupts.ts";
import { type Arm64Layout, MAX_CPUS, RAM_START } from "../memory_map.ts";
import { type Arm64Image, parseArm64Image } from "./image.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** booting.rst: the Image goes text_offset bytes past a 2 MiB aligned base. */
export const KERNEL_BASE_ALIGN = 2 * MiB;
/** arch/arm64/include/asm/boot.h: MAX_FDT_SIZE, and the block the DTB is mapped with. */
export const MAX_DTB_BYTES = 2 * MiB;
/** Pre-v4.2 kernels: the DTB within this much of the Image's base. */
const DTB_WINDOW_BYTES = 512 * MiB;
/** booting.rst: the initrd and the Image in one 1 GiB aligned window of up to 32 GiB. */
const INITRD_WINDOW_ALIGN = 1 * GiB;
const INITRD_WINDOW_BYTES = 32 * GiB;
/** arch/arm64/include/uapi/asm/setup.h: COMMAND_LINE_SIZE, the NUL included. */
export const COMMAND_LINE_SIZE = 2048;
const PAGE_SIZE = 4 * KiB;

/** A parsed Image and where its bytes are. */
export interface Arm64Kernel {
  image: Arm64Image;
  source: FileSource;
}

/**
 * Check a kernel file without knowing the machine: it must be an uncompressed arm64 Image.
 * Throws Arm64ImageError with a line for the user.
 *
 * @example
 * ```ts
 * parseKernel(await Deno.readFile(".cache/arm64/guest/Image")).image.textOffset; // 0
 * ```
 */
export function parseKernel(file: KernelFile): Arm64Kernel {
  if (file instanceof Uint8Array) {
    return { image: parseArm64Image(file), source: bytesSource(file) };
  }
  return { image: parseArm64Image(file.head, file.source.length), source: file.source };
}

/** An Image checked against this machine's RAM, and where it and the DTB go. */
export interface Arm64PlacedKernel extends PlacedKernel {
  /** Where the Image's first byte goes: the boot vCPU's PC. */
  kernelGpa: number;
  /** First byte past what the kernel uses (its image_size, or the file if it says nothing). */
  end: number;
  /** The DTB's address, at the start of a 2 MiB block of its own. */
  dtbGpa: number;
  /** The Image's bytes, one copy of the whole file (see PlacedKernel.copies). */
  copies: ElfLoadPiece[];
  source: FileSource;
}

/** A kernel, initrd, command line or vCPU count that does not fit this machine. */
export class LinuxLoadError extends Error {
  override name = "LinuxLoadError";
}

/**
 * Where the Image and the DTB go in `layout`'s RAM, after checking that they fit there. Needs
 * only the memory layout, so a kernel too large for `-m` is reported before /dev/kvm is opened.
 */
export function placeKernel(kernel: Arm64Kernel, layout: Arm64Layout): Arm64PlacedKernel {
  const base = RAM_START; // 2 GiB: 2 MiB aligned, and the start of RAM as flags bit 3 = 0 wants
  const kernelGpa = base + kernel.image.textOffset;
  const end = kernelGpa + Math.max(kernel.image.imageSize, kernel.image.fileBytes);
  const dtbGpa = alignDown(Math.min(layout.ramEnd, base + DTB_WINDOW_BYTES), MAX_DTB_BYTES) -
    MAX_DTB_BYTES;
  if (dtbGpa < end) {
    const what = kernel.image.imageSize > 0 ? "image_size" : "file size";
    throw new LinuxLoadError(
      `kernel needs ${describeMiB(end - base)} of RAM (its ${what}) and 2 MiB more for the ` +
        `device tree; the machine has ${describeBytes(layout.ramBytes)}; use a larger -m`,
    );
  }
  return {
    kernelGpa,
    end,
    dtbGpa,
    copies: [{ fileOffset: 0, gpa: kernelGpa, length: kernel.image.fileBytes }],
    source: kernel.source,
  };
}

/** What the guest finds beside the kernel: platform.ts's BootInput, `copiesMade` optional. */
export interface Arm64BootInput {
  initrd?: Uint8Array | FileSource;
  cmdline: string;
  cpus: number;
  /** Where each PCI function's INTx goes (a GSI: KVM routes GSI n to SPI n). */
  pciIntx: readonly PciIntxRoute[];
  /** The 64-bit PCI window (size 0: none). */
  mmio64: GuestRange;
  /** The caller has already made the kernel's {@link Arm64PlacedKernel.copies}. */
  copiesMade?: boolean;
  /** Fixed seeds for /chosen (tests); fresh random ones when absent. */
  rngSeed?: Uint8Array;
  kaslrSeed?: bigint;
}

/** The boot vCPU's first state: booting.rst's PC and x0 (the rest is KVM's reset state). */
export interface Arm64Entry {
  pc: number;
  /** The DTB's guest-physical address. */
  x0: number;
}

/**
 * Put the Image, the initrd and the device tree in `mem` and return the boot vCPU's entry.
 * Checks everything before writing anything.
 *
 * @example
 * ```ts
 * const layout = memoryLayout(256 * MiB);
 * const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
 * const placed = placeKernel(parseKernel(image), layout);
 * const entry = loadLinux(mem, layout, placed, {
 *   cmdline: "console=ttyS0", cpus: 1, pciIntx: [], mmio64: { gpa: 0, size: 0 },
 * });
 * entry.pc; // 0x8000_0000 for a kernel whose text_offset is 0
 * ```
 */
export function loadLinux(
  mem: GuestMemory,
  layout: Arm64Layout,
  placed: Arm64PlacedKernel,
  boot: Arm64BootInput,
): Arm64Entry {
  if (!(Number.isInteger(boot.cpus) && boot.cpus >= 1 && boot.cpus <= MAX_CPUS)) {
    throw new LinuxLoadError(`${boot.cpus} vCPUs: the arm64 machine has 1 to ${MAX_CPUS}`);
  }
  checkCmdline(boot.cmdline);
  const initrd = boot.initrd && boot.initrd.length > 0
    ? placeInitrd(boot.initrd.length, placed, layout)
    : undefined;
  const dtb = buildDeviceTree({
    ramRegions: layout.regions,
    cpus: boot.cpus,
    cmdline: boot.cmdline,
    initrd,
    pciIntx: boot.pciIntx.map((r) => ({ slot: r.slot, pin: r.pin, spi: gsiSpi(r.gsi) })),
    mmio64: boot.mmio64,
    rngSeed: boot.rngSeed,
    kaslrSeed: boot.kaslrSeed,
  });
  if (dtb.length > MAX_DTB_BYTES) {
    // Not reachable with MAX_CPUS vCPUs (about 30 KiB), but the kernel would refuse it.
    throw new LinuxLoadError(`device tree of ${dtb.length} bytes is over arm64's 2 MiB`);
  }

  if (boot.copiesMade !== true) {
    for (const c of placed.copies) placed.source.readInto(c.fileOffset, mem.slice(c.gpa, c.length));
  }
  if (boot.initrd && initrd) {
    const into = mem.slice(initrd.gpa, initrd.size);
    if (boot.initrd instanceof Uint8Array) into.set(boot.initrd);
    else boot.initrd.readInto(0, into);
  }
  mem.write(placed.dtbGpa, dtb);
  return { pc: placed.kernelGpa, x0: placed.dtbGpa };
}

/** /chosen/bootargs: what the kernel copies into its COMMAND_LINE_SIZE buffer. */
function checkCmdline(cmdline: string): void {
  const bytes = new TextEncoder().encode(cmdline);
  if (bytes.includes(0)) throw new LinuxLoadError("kernel command line contains a NUL byte");
  if (bytes.length > COMMAND_LINE_SIZE - 1) {
    throw new LinuxLoadError(
      `kernel command line is ${bytes.length} bytes; arm64 Linux takes at most ` +
        `${COMMAND_LINE_SIZE - 1}`,
    );
  }
}

/**
 * The initrd as high as it may go: at the top of RAM (or of the 32 GiB window over the Image)
 * when it fits above the DTB's block, else right below the DTB; page-aligned so the kernel can
 * free it page by page, and never over the kernel's image_size.
 */
function placeInitrd(size: number, placed: Arm64PlacedKernel, layout: Arm64Layout): GuestRange {
  const windowTop = alignDown(placed.kernelGpa, INITRD_WINDOW_ALIGN) + INITRD_WINDOW_BYTES;
  const top = Math.min(layout.ramEnd, windowTop);
  const high = alignDown(top - size, PAGE_SIZE);
  if (high >= placed.dtbGpa + MAX_DTB_BYTES) return { gpa: high, size };
  const low = alignDown(placed.dtbGpa - size, PAGE_SIZE);
  if (low >= placed.end) return { gpa: low, size };
  throw new LinuxLoadError(
    `initrd of ${describeMiB(size)} does not fit in RAM beside the kernel (which uses ` +
      `${describeMiB(placed.end - RAM_START)} from the start of RAM) and the device tree; ` +
      `use a larger -m`,
  );
}

function alignDown(n: number, align: number): number {
  return Math.floor(n / align) * align;
}

/** "10 MiB", or "10.3 MiB" when not whole, for messages about sizes. */
function describeMiB(n: number): string {
  const mib = n / MiB;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}
