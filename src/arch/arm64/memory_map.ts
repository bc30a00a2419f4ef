/**
 * denovmm's arm64 machine: where everything sits in guest-physical space. Devices and PCI
 * below 2 GiB, RAM from 2 GiB up in one piece (no hole: nothing of an arm64 machine has to sit
 * at a fixed low address), large BARs above RAM. The guest learns all of it from the device
 * tree (./device_tree.ts); nothing here is an address Linux assumes.
 *
 * ```
 * 0x0800_0000  GICv3 distributor       64 KiB
 * 0x0802_0000  GICv3 ITS               128 KiB (control frame + translation frame)
 * 0x0804_0000  GICv3 redistributors    128 KiB per vCPU (up to 0x0a04_0000 for 256)
 * 0x0b00_0000  8250 UART (ttyS0)       4 KiB
 * 0x0b01_0000  PCI I/O space           64 KiB (port N at 0x0b01_0000 + N)
 * 0x1000_0000  PCI ECAM, bus 0         1 MiB
 * 0x4000_0000  PCI 32-bit BAR window   1 GiB
 * 0x8000_0000  RAM
 * above RAM    PCI 64-bit BAR window   (1 GiB aligned, up to the IPA size)
 * ```
 *
 * @module
 */
import {
  checkRamBytes,
  type GuestRange,
  MemoryLayoutError,
  type RamLayout,
  type RamRegion,
} from "../../memory/regions.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const GIC_DIST: GuestRange = Object.freeze({ gpa: 0x0800_0000, size: 64 * KiB });
export const GIC_ITS: GuestRange = Object.freeze({ gpa: 0x0802_0000, size: 128 * KiB });
/** One redistributor (RD_base + SGI_base frames) per vCPU. */
export const GIC_REDIST_START = 0x0804_0000;
export const GIC_REDIST_BYTES_PER_CPU = 128 * KiB;
/** The redistributors of `cpus` vCPUs, one after the other. */
export function gicRedistributors(cpus: number): GuestRange {
  return { gpa: GIC_REDIST_START, size: cpus * GIC_REDIST_BYTES_PER_CPU };
}
export const MAX_CPUS = 256;

export const UART: GuestRange = Object.freeze({ gpa: 0x0b00_0000, size: 4 * KiB });
/** PCI I/O space as the CPU sees it: port N of the PCI bus at this address + N. */
export const PCI_IO_CPU_START = 0x0b01_0000;
export const PCI_IO_CPU_SIZE = 64 * KiB;
export const PCI_ECAM: GuestRange = Object.freeze({ gpa: 0x1000_0000, size: 1 * MiB });
export const PCI_MMIO32: GuestRange = Object.freeze({ gpa: 0x4000_0000, size: 1 * GiB });
/** I/O BARs go in ports 0x1000-0xffff of the PCI bus (below: the debug-exit port 0x501). */
export const PCI_IO: GuestRange = Object.freeze({ gpa: 0x1000, size: 0x10000 - 0x1000 });

export const RAM_START = 0x8000_0000;
/** Where 64-bit BARs start: the first GiB boundary past RAM. */
export const PCI_MMIO64_ALIGN_BYTES = 1 * GiB;

/** arm64 guest RAM: one region from {@link RAM_START}. */
export interface Arm64Layout extends RamLayout {
  /** First address past RAM. */
  ramEnd: number;
}

/**
 * RAM goes to KVM in whole host pages, and arm64 hosts run 4, 16 or 64 KiB pages: a size in
 * whole 64 KiB fits them all.
 */
export const ARM64_RAM_ALIGN_BYTES = 64 * KiB;

export function memoryLayout(ramBytes: number): Arm64Layout {
  checkRamBytes(ramBytes);
  if (ramBytes % ARM64_RAM_ALIGN_BYTES !== 0) {
    throw new MemoryLayoutError(
      `guest RAM of ${ramBytes} bytes is not a multiple of 64 KiB (an arm64 host's largest page)`,
    );
  }
  const regions: RamRegion[] = [Object.freeze({ gpa: RAM_START, size: ramBytes, hostOffset: 0 })];
  return Object.freeze({ ramBytes, regions: Object.freeze(regions), ramEnd: RAM_START + ramBytes });
}

/**
 * The 64-bit BAR window: from the first GiB boundary past RAM to the top of the guest's
 * physical address space (`ipaBits`, KVM's IPA size), at most as large as the space below it.
 */
export function pciMmio64Window(layout: Arm64Layout, ipaBits: number): GuestRange {
  const top = 2 ** Math.min(Math.max(Math.floor(ipaBits), 32), 52);
  const start = Math.ceil(layout.ramEnd / PCI_MMIO64_ALIGN_BYTES) * PCI_MMIO64_ALIGN_BYTES;
  if (start >= top) return { gpa: start, size: 0 };
  return { gpa: start, size: Math.min(top - start, start) };
}

/** RAM that does not fit the guest's physical address space: a line for the user. */
export function checkIpaFits(layout: Arm64Layout, ipaBits: number): void {
  if (layout.ramEnd > 2 ** ipaBits) {
    throw new MemoryLayoutError(
      `guest RAM ends at 0x${
        layout.ramEnd.toString(16)
      }, past this host's ${ipaBits}-bit guest physical address space`,
    );
  }
}
