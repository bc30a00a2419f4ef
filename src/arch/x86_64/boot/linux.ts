/**
 * Load a Linux kernel for the 64-bit boot protocol (Documentation/x86/boot.rst): everything the
 * kernel finds in guest memory when its first instruction runs, and the vCPU state to start it.
 * The kernel is a bzImage, or the uncompressed vmlinux ELF (elf.ts), which skips the guest's
 * decompression of itself; either way the vCPU enters a 64-bit startup_64 with %rsi = zero page.
 *
 * Guest-physical placement:
 *   0x000500..0x0005a7  GDT, IDT, TSS (long_mode.ts)
 *   0x007000..0x007fff  zero page (struct boot_params)
 *   0x008ff0            boot stack, growing down
 *   0x009000..0x00efff  identity-mapped page tables
 *   0x020000            command line, NUL-terminated
 *   0x09fc00..0x09ffff  MP table (EBDA, E820-reserved)
 *   0x100000            bzImage: protected-mode kernel; 64-bit entry at +0x200
 *   0x1000000           vmlinux: PT_LOAD segments at their p_paddr; entry at e_entry
 *   high in low RAM     initrd, page-aligned, as high as the kernel allows
 *
 * @module
 */

import type { GuestMemory } from "../../../memory/guest_memory.ts";
import type { KernelFile } from "../../platform.ts";
import { describeBytes } from "../../../memory/regions.ts";
import { EBDA_START, HIGH_MEMORY_START, type MemoryLayout } from "../memory_map.ts";
import { buildBootParams, NO_HEADER_CMDLINE_SIZE } from "./boot_params.ts";
import { type BzImage, parseBzImage } from "./bzimage.ts";
import {
  bytesSource,
  checkElfPlacement,
  type ElfKernel,
  type ElfLoadPiece,
  elfLoadPieces,
  type FileSource,
  isElf,
  parseElf,
  writeElfSegments,
  zeroElfTails,
} from "../../../boot/elf.ts";
import { checkCpuCount, type PciIrqRoute, writeMpTable } from "./mptable.ts";
import { longModeEntry, type VcpuEntryState, writeLongModeTables } from "./long_mode.ts";

export const ZERO_PAGE_GPA = 0x7000;
export const CMDLINE_GPA = 0x2_0000;
/** 1 MiB, where boot loaders traditionally put the protected-mode kernel. */
export const KERNEL_GPA = HIGH_MEMORY_START;
/** boot.rst, 64-bit boot protocol: the entry is at the protected-mode kernel's start + 0x200. */
export const KERNEL_64BIT_ENTRY_OFFSET = 0x200;
/**
 * A vmlinux has no header to say how high its initrd may go: use what every x86-64 bzImage
 * declares (arch/x86/boot/header.S, initrd_addr_max), so both kinds place it alike.
 */
export const ELF_INITRD_ADDR_MAX = 0x7fff_ffff;
const PAGE_SIZE = 0x1000;
const MiB = 0x10_0000;

/**
 * A kernel file of either kind, as {@link parseKernel} found it: parsed once, before the machine
 * exists, and handed down from there (placed by {@link placeKernel}, loaded by loadLinux). A
 * vmlinux keeps where its bytes are, for the copies of its segments into RAM.
 */
export type KernelImage =
  | { kind: "bzImage"; image: BzImage }
  | { kind: "elf"; image: ElfKernel; source: FileSource };

/**
 * Check a kernel file without knowing the machine: an ELF vmlinux if it starts with "\x7fELF",
 * else it must be a bzImage. Throws BootImageError or ElfError with a line for the user.
 *
 * @example
 * ```ts
 * parseKernel(await Deno.readFile(".cache/guest/vmlinux")).kind; // "elf"
 * ```
 */
export function parseKernel(file: KernelFile): KernelImage {
  if (!(file instanceof Uint8Array)) {
    if (isElf(file.head)) {
      return { kind: "elf", image: parseElf(file.head, file.source.length), source: file.source };
    }
    file = wholeFile(file.source);
  }
  return isElf(file)
    ? { kind: "elf", image: parseElf(file), source: bytesSource(file) }
    : { kind: "bzImage", image: parseBzImage(file) };
}

export type { KernelFile };

function wholeFile(source: FileSource): Uint8Array {
  const bytes = new Uint8Array(source.length);
  source.readInto(0, bytes);
  return bytes;
}

/**
 * Either kind of kernel, checked against this machine's RAM (once: by {@link placeKernel}), and
 * how to write it there.
 */
export interface KernelPlacement {
  /** First byte above everything the kernel touches before it reads the E820 map. */
  end: number;
  /** Longest command line, excluding the NUL. */
  cmdlineSize: number;
  /** Highest address the initrd may occupy (inclusive). */
  initrdAddrMax: number;
  /** The bzImage's header for the zero page; absent for a vmlinux, which has none. */
  setupHeader?: Uint8Array;
  entryGpa: number;
  /**
   * A vmlinux's copies from file to RAM (see elfLoadPieces): the bulk of loading, and the part
   * that may run elsewhere (src/machine/kernel_copy.ts). Undefined for a bzImage, read whole and
   * copied by loadLinux.
   */
  copies?: ElfLoadPiece[];
  /** Write the kernel; `piecesWritten`: the caller has already made the {@link copies}. */
  write(mem: GuestMemory, piecesWritten: boolean): void;
}

export interface LoadOptions {
  /**
   * The caller has already made the vmlinux's {@link KernelPlacement.copies} into RAM (on another thread,
   * while the VM was being set up): loadLinux writes everything else. Ignored for a bzImage.
   */
  elfPiecesWritten?: boolean;
  /** The ACPI RSDP's address, for the zero page (the caller writes the tables). */
  acpiRsdpGpa?: number;
}

/**
 * Where a parsed kernel goes in this machine's RAM, after checking that it fits there (the one
 * check of its fit): a bzImage at 1 MiB, a vmlinux where its segments say. Needs only the
 * memory layout, so a kernel too large for `-m` is reported before /dev/kvm is opened.
 */
export function placeKernel(kernel: KernelImage, layout: MemoryLayout): KernelPlacement {
  return kernel.kind === "elf"
    ? placeElf(kernel.image, kernel.source, layout)
    : placeBzImage(kernel.image, layout);
}

/** A kernel, command line, initrd or vCPU count that does not fit this machine. */
export class LinuxLoadError extends Error {
  override name = "LinuxLoadError";
}

/**
 * Place kernel (bzImage or vmlinux), command line, initrd, zero page, MP table and long-mode
 * tables in `mem` and return the state the boot vCPU starts in. Checks everything before writing
 * anything.
 *
 * @example
 * ```ts
 * const layout = memoryLayout(parseSize("256M"));
 * const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
 * const kernel = placeKernel(parseKernel(bytes), layout);
 * const entry = loadLinux(mem, layout, kernel, initrd, "console=ttyS0", 1);
 * entry.regs.rip; // 0x100200
 * ```
 */
export function loadLinux(
  mem: GuestMemory,
  layout: MemoryLayout,
  placement: KernelPlacement,
  initrd: Uint8Array | FileSource | undefined,
  cmdline: string,
  cpus: number,
  pciIrqs: readonly PciIrqRoute[] = [],
  opts: LoadOptions = {},
): VcpuEntryState {
  checkCpuCount(cpus);

  const cmdlineBytes = new TextEncoder().encode(cmdline);
  if (cmdlineBytes.includes(0)) {
    throw new LinuxLoadError("kernel command line contains a NUL byte");
  }
  // boot.rst: cmdline_size excludes the terminating NUL. The line must also end below the EBDA.
  const cmdlineMax = Math.min(placement.cmdlineSize, EBDA_START - CMDLINE_GPA - 1);
  if (cmdlineBytes.length > cmdlineMax) {
    throw new LinuxLoadError(
      `kernel command line is ${cmdlineBytes.length} bytes; this kernel takes at most ${cmdlineMax}`,
    );
  }

  const initrdPlace = initrd && initrd.length > 0
    ? placeInitrd(
      initrd.length,
      placement.end,
      Math.min(placement.initrdAddrMax + 1, layout.lowRamEnd),
    )
    : undefined;

  placement.write(mem, opts.elfPiecesWritten === true);
  mem.write(CMDLINE_GPA, cmdlineBytes);
  mem.writeU8(CMDLINE_GPA + cmdlineBytes.length, 0);
  if (initrd && initrdPlace) {
    const into = mem.slice(initrdPlace.gpa, initrd.length);
    if (initrd instanceof Uint8Array) into.set(initrd);
    else initrd.readInto(0, into);
  }
  mem.write(
    ZERO_PAGE_GPA,
    buildBootParams({
      setupHeader: placement.setupHeader,
      cmdlineGpa: CMDLINE_GPA,
      initrd: initrdPlace,
      e820: layout.e820(),
      acpiRsdpGpa: opts.acpiRsdpGpa,
    }),
  );
  writeMpTable(mem, cpus, pciIrqs);
  writeLongModeTables(mem);
  return longModeEntry({ ripGpa: placement.entryGpa, zeroPageGpa: ZERO_PAGE_GPA });
}

/** A bzImage at 1 MiB, with room above it for its decompressor; entry at +0x200. */
function placeBzImage(image: BzImage, layout: MemoryLayout): KernelPlacement {
  const end = kernelFootprintEnd(image, image.protectedMode.length);
  if (end > layout.lowRamEnd) {
    throw new LinuxLoadError(
      `kernel needs ${describeMiB(end)} of RAM to decompress (init_size ` +
        `${describeMiB(image.initSize)}); the machine has ${describeBytes(layout.lowRamEnd)} ` +
        `below 3 GiB; use a larger -m`,
    );
  }
  return {
    end,
    cmdlineSize: image.cmdlineSize,
    initrdAddrMax: image.initrdAddrMax,
    setupHeader: image.setupHeader,
    entryGpa: KERNEL_GPA + KERNEL_64BIT_ENTRY_OFFSET,
    write: (mem) => mem.write(KERNEL_GPA, image.protectedMode),
  };
}

/**
 * A vmlinux where its segments say, all in low RAM above the loader's own first MiB; nothing
 * runs before the kernel proper, so its end is its highest segment's end. Entry at e_entry.
 */
function placeElf(image: ElfKernel, file: FileSource, layout: MemoryLayout): KernelPlacement {
  checkElfFits(image, layout);
  return {
    end: image.end,
    cmdlineSize: NO_HEADER_CMDLINE_SIZE,
    initrdAddrMax: ELF_INITRD_ADDR_MAX,
    entryGpa: image.entryGpa,
    copies: elfLoadPieces(file, image),
    write: (mem, piecesWritten) =>
      piecesWritten ? zeroElfTails(mem, image) : writeElfSegments(mem, file, image),
  };
}

function checkElfFits(image: ElfKernel, layout: MemoryLayout): void {
  if (image.end > layout.lowRamEnd) {
    throw new LinuxLoadError(
      `kernel needs ${describeMiB(image.end)} of RAM (its segments end there); the machine has ` +
        `${describeBytes(layout.lowRamEnd)} below 3 GiB; use a larger -m`,
    );
  }
  checkElfPlacement(image, KERNEL_GPA, layout.lowRamEnd);
}

/**
 * First byte above everything the kernel touches before it reads the E820 map. The loaded image
 * occupies [1 MiB, 1 MiB + its length); the decompressor then works in [base, base + init_size)
 * where base is the load address rounded up to kernel_alignment, raised to pref_address if that
 * is higher (pref_address is LOAD_PHYSICAL_ADDR; see arch/x86/boot/compressed/head_64.S), or
 * pref_address itself for a non-relocatable kernel. The initrd must stay clear of all of it.
 */
export function kernelFootprintEnd(
  image: { initSize: number; kernelAlignment: number; relocatable: boolean; prefAddress: number },
  imageLength: number,
): number {
  let base = image.prefAddress;
  if (image.relocatable) {
    const align = image.kernelAlignment > 0 ? image.kernelAlignment : 1;
    base = Math.max(Math.ceil(KERNEL_GPA / align) * align, image.prefAddress);
  }
  return Math.max(KERNEL_GPA + imageLength, base + image.initSize);
}

/**
 * boot.rst suggests the initrd as high as possible below initrd_addr_max; page-aligned so the
 * kernel can free it page by page. It must also sit above the kernel's decompression area.
 */
function placeInitrd(size: number, lowest: number, limit: number): { gpa: number; size: number } {
  const gpa = Math.floor((limit - size) / PAGE_SIZE) * PAGE_SIZE;
  if (gpa < lowest) {
    throw new LinuxLoadError(
      `initrd of ${describeMiB(size)} does not fit in RAM below ${describeMiB(limit)} ` +
        `(the kernel uses RAM up to ${describeMiB(lowest)}); use a larger -m`,
    );
  }
  return { gpa, size };
}

/** "10 MiB", or "10.3 MiB" when not whole, for messages about sizes and addresses. */
function describeMiB(n: number): string {
  const mib = n / MiB;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}
