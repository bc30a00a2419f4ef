/**
 * The guest-physical memory map of an x86-64 PC with `ramBytes` of RAM (what only a PC has: the
 * 3-4 GiB hole, the legacy areas below 1 MiB, the E820 map).
 *
 * RAM fills guest-physical space from 0 up to the 32-bit MMIO hole (where the IOAPIC, the local
 * APIC and PCI BARs live); whatever does not fit below the hole continues at 4 GiB. The host
 * backs all of it with one anonymous mapping of `ramBytes`: the low region at offset 0 and the
 * high region right after it, at offset 3 GiB. Firecracker and kvmtool split RAM the same way.
 * Above RAM lies the 64-bit PCI MMIO window ({@link pciMmio64Window}), for BARs too large for
 * the hole; the E820 map lists RAM only, so it never covers the window.
 *
 * @module
 */

import {
  checkRamBytes,
  type GuestRange,
  type RamLayout,
  type RamRegion,
} from "../../memory/regions.ts";

export type { GuestRange };

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Start of the 32-bit MMIO hole: no RAM between here and {@link MMIO_HOLE_END}. */
export const MMIO_HOLE_START = 0xC000_0000;
/** End of the 32-bit MMIO hole; RAM that did not fit below the hole resumes here. */
export const MMIO_HOLE_END = 0x1_0000_0000;

/** Last KiB of conventional memory: the EBDA, where the MP table goes (MP spec 1.4 §4). */
export const EBDA_START = 0x9_FC00;
/** End of conventional memory; 0xa0000..0xfffff is the legacy VGA/ROM area. */
export const EBDA_END = 0xA_0000;
/**
 * The BIOS area (0xe0000..0xfffff), E820-reserved: the ACPI tables at its start, where the
 * kernel scans for the RSDP (ACPI 6.5 §5.2.5.1), the MP table at 0xf0000; nothing else there
 * for the kernel's MP/SMBIOS scans to misread.
 */
export const BIOS_START = 0xE_0000;
/** Where the ACPI tables go, RSDP first (src/arch/x86_64/acpi/tables.ts): 64 KiB up to the MP table. */
export const ACPI_TABLES_START = BIOS_START;
export const ACPI_TABLES_END = 0xF_0000;
/** Where the MP table goes (MP spec 1.4 §4: the BIOS ROM area is one of the places to look). */
export const MPTABLE_START = 0xF_0000;
/** First byte above the legacy 1 MiB area; the kernel loads here. */
export const HIGH_MEMORY_START = 0x10_0000;

/**
 * PCI Express ECAM (enhanced configuration access) for bus 0: 4 KiB of config space per
 * function, 1 MiB in all, at the top of the 32-bit hole below the IOAPIC (the BAR window ends
 * where it starts). The MCFG table names it; the E820 map and the DSDT reserve it, which Linux
 * requires before it uses the region (arch/x86/pci/mmconfig-shared.c).
 */
export const PCI_ECAM_START = 0xFEB0_0000;
export const PCI_ECAM_SIZE = 1 * MiB;

/** E820 range types (bootparam.h / e820 ABI). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/** One entry of the BIOS E820 memory map handed to the kernel in the zero page. */
export interface E820Entry {
  gpa: number;
  size: number;
  type: typeof E820_RAM | typeof E820_RESERVED;
}

/** The guest-physical memory map for one RAM size. */
export interface MemoryLayout extends RamLayout {
  /** RAM regions in ascending gpa order: one below the hole, and one at 4 GiB if needed. */
  regions: readonly RamRegion[];
  /** End (exclusive) of the RAM region below the MMIO hole. */
  lowRamEnd: number;
  /** The E820 map the kernel sees. */
  e820(): E820Entry[];
}

/**
 * The memory map for `ramBytes` of guest RAM.
 *
 * @example
 * ```ts
 * const layout = memoryLayout(3500 * 1024 * 1024);
 * layout.regions; // [{gpa: 0, size: 3 GiB, ...}, {gpa: 4 GiB, size: 428 MiB, hostOffset: 3 GiB}]
 * ```
 */
export function memoryLayout(ramBytes: number): MemoryLayout {
  checkRamBytes(ramBytes);
  const lowRamEnd = Math.min(ramBytes, MMIO_HOLE_START);
  const regions: RamRegion[] = [{ gpa: 0, size: lowRamEnd, hostOffset: 0 }];
  if (ramBytes > MMIO_HOLE_START) {
    regions.push({ gpa: MMIO_HOLE_END, size: ramBytes - MMIO_HOLE_START, hostOffset: lowRamEnd });
  }
  Object.freeze(regions);
  regions.forEach(Object.freeze);

  return {
    ramBytes,
    regions,
    lowRamEnd,
    e820(): E820Entry[] {
      const entries: E820Entry[] = [
        { gpa: 0, size: EBDA_START, type: E820_RAM },
        { gpa: EBDA_START, size: EBDA_END - EBDA_START, type: E820_RESERVED },
        { gpa: BIOS_START, size: HIGH_MEMORY_START - BIOS_START, type: E820_RESERVED },
        { gpa: HIGH_MEMORY_START, size: lowRamEnd - HIGH_MEMORY_START, type: E820_RAM },
      ];
      entries.push({ gpa: PCI_ECAM_START, size: PCI_ECAM_SIZE, type: E820_RESERVED });
      for (const r of regions.slice(1)) entries.push({ gpa: r.gpa, size: r.size, type: E820_RAM });
      return entries;
    },
  };
}

/** Where the 64-bit PCI MMIO window starts: the first boundary of this size above RAM. */
export const PCI_MMIO64_ALIGN_BYTES = 1 * GiB;
/**
 * The most address bits the window may use: x86-64's architectural MAXPHYADDR, which also keeps
 * every address exact in a JS number (and inside the vCPUs' MMIO bus, 2^52).
 */
export const MAX_PHYS_ADDR_BITS = 52;

/**
 * The 64-bit PCI MMIO window: from the first 1 GiB boundary above the end of RAM (QEMU rounds its
 * `pci-hole64` start the same way) to the top of what the guest can address, 2^`physAddrBits`
 * (CPUID 0x80000008 EAX[7:0], src/arch/x86_64/cpuid.ts), as Cloud Hypervisor's device area does. A
 * guest cannot reach a BAR above its MAXPHYADDR (Linux refuses such a resource, and its page
 * tables cannot map it), and taking all the room up to there leaves space for BARs of hundreds
 * of GiB (GPUs) and lets the guest move a BAR anywhere it can address above RAM. Empty (size 0)
 * when RAM already reaches the top.
 *
 * @example
 * ```ts
 * pciMmio64Window(memoryLayout(3500 * 1024 * 1024), 40); // {gpa: 5 GiB, size: 1 TiB - 5 GiB}
 * ```
 */
export function pciMmio64Window(layout: MemoryLayout, physAddrBits: number): GuestRange {
  const bits = Math.min(Math.max(Math.floor(physAddrBits), 32), MAX_PHYS_ADDR_BITS);
  const top = 2 ** bits;
  const last = layout.regions[layout.regions.length - 1];
  const ramEnd = Math.max(last.gpa + last.size, MMIO_HOLE_END);
  const gpa = Math.ceil(ramEnd / PCI_MMIO64_ALIGN_BYTES) * PCI_MMIO64_ALIGN_BYTES;
  return { gpa, size: Math.max(top - gpa, 0) };
}
