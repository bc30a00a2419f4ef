/**
 * The guest-physical memory map of an x86-64 machine with `ramBytes` of RAM.
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

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** Start of the 32-bit MMIO hole: no RAM between here and {@link MMIO_HOLE_END}. */
export const MMIO_HOLE_START = 0xC000_0000;
/** End of the 32-bit MMIO hole; RAM that did not fit below the hole resumes here. */
export const MMIO_HOLE_END = 0x1_0000_0000;

/** Smallest machine we build: a distribution kernel decompresses into more than 16 MiB. */
export const MIN_RAM_BYTES = 32 * MiB;
/** Largest machine we build; keeps every guest address far below 2^53. */
export const MAX_RAM_BYTES = 1 * TiB;
/** RAM is mapped and registered with KVM in whole 4 KiB pages. */
export const RAM_ALIGN_BYTES = 4 * KiB;

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
/** Where the ACPI tables go, RSDP first (src/acpi/x86_tables.ts): 64 KiB up to the MP table. */
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

/** One contiguous piece of guest RAM and where it sits in the host mapping. */
export interface RamRegion {
  /** First guest-physical address of the region. */
  gpa: number;
  /** Length in bytes. */
  size: number;
  /** Offset of `gpa` inside the single host mapping of all guest RAM. */
  hostOffset: number;
}

/** One entry of the BIOS E820 memory map handed to the kernel in the zero page. */
export interface E820Entry {
  gpa: number;
  size: number;
  type: typeof E820_RAM | typeof E820_RESERVED;
}

/** The guest-physical memory map for one RAM size. */
export interface MemoryLayout {
  /** Total guest RAM, which is also the size of the host mapping. */
  ramBytes: number;
  /** RAM regions in ascending gpa order: one below the hole, and one at 4 GiB if needed. */
  regions: readonly RamRegion[];
  /** End (exclusive) of the RAM region below the MMIO hole. */
  lowRamEnd: number;
  /** The E820 map the kernel sees. */
  e820(): E820Entry[];
}

/** A RAM size the layout cannot be built for, or a size string that does not parse. */
export class MemoryLayoutError extends Error {
  override name = "MemoryLayoutError";
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
  if (!Number.isSafeInteger(ramBytes) || ramBytes < MIN_RAM_BYTES || ramBytes > MAX_RAM_BYTES) {
    throw new MemoryLayoutError(
      `guest RAM of ${describeBytes(ramBytes)} is out of range: use 32 MiB to 1 TiB`,
    );
  }
  if (ramBytes % RAM_ALIGN_BYTES !== 0) {
    throw new MemoryLayoutError(
      `guest RAM of ${ramBytes} bytes is not a multiple of 4 KiB`,
    );
  }
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

/** A range of guest-physical space that is not RAM. */
export interface GuestRange {
  gpa: number;
  /** Length in bytes; 0 when there is no room for the range. */
  size: number;
}

/**
 * The 64-bit PCI MMIO window: from the first 1 GiB boundary above the end of RAM (QEMU rounds its
 * `pci-hole64` start the same way) to the top of what the guest can address, 2^`physAddrBits`
 * (CPUID 0x80000008 EAX[7:0], src/vcpu/cpuid.ts), as Cloud Hypervisor's device area does. A
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

const SIZE_UNITS: Record<string, number> = { K: KiB, M: MiB, G: GiB, T: TiB };

/**
 * Parse a memory size the way kvmtool's `-m` does: a whole number with an optional K, M, G or T
 * suffix (case-insensitive, binary units); a bare number means MiB.
 *
 * @example
 * ```ts
 * parseSize("2G"); // 2147483648
 * parseSize("512"); // 536870912 (MiB when there is no suffix)
 * ```
 */
export function parseSize(text: string): number {
  const s = text.trim();
  const m = /^([0-9]+)([KMGT]?)$/i.exec(s);
  if (m === null) {
    let why = "use a whole number with an optional K, M, G or T suffix (MiB if none)";
    if (s.startsWith("-")) why = "a size cannot be negative";
    else if (/^[0-9]*[.,][0-9]*[KMGT]?$/i.test(s)) why = "use a whole number, not a fraction";
    throw new MemoryLayoutError(`invalid size "${text}": ${why}`);
  }
  const unit = m[2] === "" ? MiB : SIZE_UNITS[m[2].toUpperCase()];
  const bytes = Number(m[1]) * unit;
  if (bytes === 0) throw new MemoryLayoutError(`invalid size "${text}": must be greater than 0`);
  if (!Number.isSafeInteger(bytes)) {
    throw new MemoryLayoutError(`invalid size "${text}": too large`);
  }
  return bytes;
}

/** "256 MiB" for whole MiB, else the byte count; used in error messages. */
export function describeBytes(n: number): string {
  if (Number.isSafeInteger(n) && n > 0 && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}
