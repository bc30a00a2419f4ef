/**
 * Load a Linux bzImage for the 64-bit boot protocol (Documentation/x86/boot.rst): everything the
 * kernel finds in guest memory when its first instruction runs, and the vCPU state to start it.
 *
 * Guest-physical placement:
 *   0x000500..0x0005a7  GDT, IDT, TSS (x86_64.ts)
 *   0x007000..0x007fff  zero page (struct boot_params)
 *   0x008ff0            boot stack, growing down
 *   0x009000..0x00efff  identity-mapped page tables
 *   0x020000            command line, NUL-terminated
 *   0x09fc00..0x09ffff  MP table (EBDA, E820-reserved)
 *   0x100000            protected-mode kernel; 64-bit entry at +0x200
 *   high in low RAM     initrd, page-aligned, as high as the kernel allows
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  describeBytes,
  EBDA_START,
  HIGH_MEMORY_START,
  type MemoryLayout,
} from "../memory/layout.ts";
import { buildBootParams } from "./boot_params.ts";
import { parseBzImage } from "./bzimage.ts";
import { checkCpuCount, type PciIrqRoute, writeMpTable } from "./mptable.ts";
import { longModeEntry, type VcpuEntryState, writeLongModeTables } from "./x86_64.ts";

export const ZERO_PAGE_GPA = 0x7000;
export const CMDLINE_GPA = 0x2_0000;
/** 1 MiB, where boot loaders traditionally put the protected-mode kernel. */
export const KERNEL_GPA = HIGH_MEMORY_START;
/** boot.rst, 64-bit boot protocol: the entry is at the protected-mode kernel's start + 0x200. */
export const KERNEL_64BIT_ENTRY_OFFSET = 0x200;
const PAGE_SIZE = 0x1000;
const MiB = 0x10_0000;

/** A kernel, command line, initrd or vCPU count that does not fit this machine. */
export class LinuxLoadError extends Error {
  override name = "LinuxLoadError";
}

/**
 * Place kernel, command line, initrd, zero page, MP table and long-mode tables in `mem` and return
 * the state the boot vCPU starts in. Checks everything before writing anything.
 *
 * @example
 * ```ts
 * const layout = memoryLayout(parseSize("256M"));
 * const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
 * const entry = loadLinux(mem, layout, kernel, initrd, "console=ttyS0", 1);
 * entry.regs.rip; // 0x100200
 * ```
 */
export function loadLinux(
  mem: GuestMemory,
  layout: MemoryLayout,
  kernel: Uint8Array,
  initrd: Uint8Array | undefined,
  cmdline: string,
  cpus: number,
  pciIrqs: readonly PciIrqRoute[] = [],
): VcpuEntryState {
  const image = parseBzImage(kernel);
  checkCpuCount(cpus);

  const kernelEnd = kernelFootprintEnd(image, image.protectedMode.length);
  if (kernelEnd > layout.lowRamEnd) {
    throw new LinuxLoadError(
      `kernel needs ${describeMiB(kernelEnd)} of RAM to decompress (init_size ` +
        `${describeMiB(image.initSize)}); the machine has ${describeBytes(layout.lowRamEnd)} ` +
        `below 3 GiB; use a larger -m`,
    );
  }

  const cmdlineBytes = new TextEncoder().encode(cmdline);
  if (cmdlineBytes.includes(0)) {
    throw new LinuxLoadError("kernel command line contains a NUL byte");
  }
  // boot.rst: cmdline_size excludes the terminating NUL. The line must also end below the EBDA.
  const cmdlineMax = Math.min(image.cmdlineSize, EBDA_START - CMDLINE_GPA - 1);
  if (cmdlineBytes.length > cmdlineMax) {
    throw new LinuxLoadError(
      `kernel command line is ${cmdlineBytes.length} bytes; this kernel takes at most ${cmdlineMax}`,
    );
  }

  const initrdPlace = initrd && initrd.length > 0
    ? placeInitrd(initrd.length, kernelEnd, Math.min(image.initrdAddrMax + 1, layout.lowRamEnd))
    : undefined;

  mem.write(KERNEL_GPA, image.protectedMode);
  mem.write(CMDLINE_GPA, cmdlineBytes);
  mem.writeU8(CMDLINE_GPA + cmdlineBytes.length, 0);
  if (initrd && initrdPlace) mem.write(initrdPlace.gpa, initrd);
  mem.write(
    ZERO_PAGE_GPA,
    buildBootParams({
      setupHeader: image.setupHeader,
      cmdlineGpa: CMDLINE_GPA,
      initrd: initrdPlace,
      e820: layout.e820(),
    }),
  );
  writeMpTable(mem, cpus, pciIrqs);
  writeLongModeTables(mem);
  return longModeEntry({
    ripGpa: KERNEL_GPA + KERNEL_64BIT_ENTRY_OFFSET,
    zeroPageGpa: ZERO_PAGE_GPA,
  });
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
