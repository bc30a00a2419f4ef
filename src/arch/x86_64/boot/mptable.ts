/**
 * The Intel MultiProcessor Specification 1.4 tables that tell the kernel how many CPUs there
 * are and how ISA interrupts reach the IOAPIC. Without ACPI, this is how Linux finds the APs.
 *
 * The floating pointer structure (MP spec §4.1) goes at the start of the BIOS area (0xf0000), one
 * of the places the spec says to look and that Linux scans; the configuration table (§4.2)
 * follows it directly. Both live in the E820-reserved BIOS range, whose 64 KiB hold the table
 * for 255 CPUs (the EBDA's last KiB would hold only about 40).
 *
 * @module
 */

import type { GuestMemory } from "../../../memory/guest_memory.ts";
import { HIGH_MEMORY_START, MPTABLE_START } from "../memory_map.ts";
// The MP spec checksums its structures the way ACPI does: all bytes sum to 0 mod 256.
import { checksum } from "../../../acpi/sdt.ts";

export const MPTABLE_GPA = MPTABLE_START;
const MPTABLE_END = HIGH_MEMORY_START;
export const LAPIC_GPA = 0xfee0_0000;
export const IOAPIC_GPA = 0xfec0_0000;
/** KVM's in-kernel IOAPIC reports version 0x11 (82093AA); its LAPIC reports 0x14. */
export const IOAPIC_VERSION = 0x11;
export const LAPIC_VERSION = 0x14;
/** ISA IRQs 0..15, each wired to the IOAPIC pin of the same number (KVM's default routing). */
export const ISA_IRQS = 16;
/** APIC ids are 8 bits and 0xff is the broadcast id. */
export const MAX_APIC_CPUS = 255;

const FLOATING_POINTER_SIZE = 16; // §4.1, one 16-byte paragraph
const HEADER_SIZE = 44; // §4.2, Table 4-2
const PROCESSOR_ENTRY_SIZE = 20; // §4.3.1
const ENTRY_SIZE = 8; // bus, IOAPIC, I/O interrupt and local interrupt entries, §4.3.2-4.3.5
const SPEC_REV_1_4 = 4;

// Entry types (§4.3, Table 4-3).
const ENTRY_PROCESSOR = 0;
const ENTRY_BUS = 1;
const ENTRY_IOAPIC = 2;
const ENTRY_IO_INTERRUPT = 3;
const ENTRY_LOCAL_INTERRUPT = 4;

// Interrupt types (§4.3.4, Table 4-9).
const INT_VECTORED = 0;
const INT_NMI = 1;
const INT_EXTINT = 3;

const CPU_ENABLED = 0x1; // processor entry CPU flags: EN
const CPU_BOOTSTRAP = 0x2; // processor entry CPU flags: BP
const IOAPIC_ENABLED = 0x1;
/** Family 6 in the CPUID signature format; Linux only prints it. */
const CPU_SIGNATURE = 0x600;
/** CPUID.1:EDX FPU and APIC, the two features the spec's examples list. */
const CPU_FEATURES = 0x201;
/** Polarity and trigger "conform to the bus" (§4.3.4): ISA is edge-triggered, active high. */
const FLAGS_CONFORM = 0;
const ALL_LAPICS = 0xff;
/** Linux looks PCI INTx entries up by MP bus id == PCI bus number, so bus 0 must be the PCI
 * bus (when there is one) and ISA takes the next id. */
const PCI_BUS_ID = 0;
/** §4.3.4 Table 4-10: polarity active low (3), trigger level (3 << 2). */
const FLAGS_PCI = 0x3 | (0x3 << 2);

/** A PCI function's INTx pin wired to an IOAPIC pin. */
export interface PciIrqRoute {
  /** Device number on bus 0. */
  slot: number;
  /** 1 = INTA# .. 4 = INTD#. */
  pin: number;
  ioapicPin: number;
}

/** A CPU count the MP table cannot describe. */
export class MpTableError extends Error {
  override name = "MpTableError";
}

/** Bytes of floating pointer plus configuration table for `cpus` processors. */
export function mptableSize(cpus: number, pciIrqs = 0): number {
  const pciEntries = pciIrqs > 0 ? 1 + pciIrqs : 0; // the PCI bus, then one entry per INTx
  const entries = cpus * PROCESSOR_ENTRY_SIZE + (1 + 1 + ISA_IRQS + 2 + pciEntries) * ENTRY_SIZE;
  return FLOATING_POINTER_SIZE + HEADER_SIZE + entries;
}

/** The most CPUs whose table still ends below 1 MiB. */
export const MAX_MPTABLE_CPUS = Math.floor(
  (MPTABLE_END - MPTABLE_GPA - mptableSize(0)) / PROCESSOR_ENTRY_SIZE,
);

/** The IOAPIC takes the first id after the CPUs; 0xff is broadcast, so 255 CPUs leave it 0xfe
 * (64-bit Linux only needs IOAPIC ids unique among IOAPICs). The MADT says the same. */
export function ioapicIdFor(cpus: number): number {
  return Math.min(cpus, ALL_LAPICS - 1);
}

/** Throw unless `cpus` processors fit in the MP table. */
export function checkCpuCount(cpus: number): void {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_APIC_CPUS) {
    throw new MpTableError(`${cpus} vCPUs: need a whole number from 1 to ${MAX_APIC_CPUS}`);
  }
  if (MPTABLE_GPA + mptableSize(cpus) > MPTABLE_END) {
    throw new MpTableError(
      `${cpus} vCPUs do not fit in the MP table below 0x${MPTABLE_END.toString(16)} ` +
        `(at most ${MAX_MPTABLE_CPUS})`,
    );
  }
}

/**
 * The MP floating pointer and configuration table for `cpus` CPUs with APIC ids 0..cpus-1 (the
 * BSP is 0), one ISA bus and one IOAPIC with id `cpus` (at most 0xfe); meant for {@link MPTABLE_GPA}.
 *
 * @example
 * ```ts
 * mem.write(MPTABLE_GPA, mpTable(4));
 * ```
 */
export function mpTable(cpus: number, pciIrqs: readonly PciIrqRoute[] = []): Uint8Array {
  checkCpuCount(cpus);
  const bytes = new Uint8Array(mptableSize(cpus, pciIrqs.length));
  const view = new DataView(bytes.buffer);
  const ascii = (at: number, text: string) => {
    for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
  };
  const tableStart = FLOATING_POINTER_SIZE;
  const ioapicId = ioapicIdFor(cpus);

  // §4.1 floating pointer: signature, physical address of the table, length in paragraphs.
  ascii(0, "_MP_");
  view.setUint32(4, MPTABLE_GPA + tableStart, true);
  bytes[8] = FLOATING_POINTER_SIZE / 16;
  bytes[9] = SPEC_REV_1_4;
  // Feature bytes 1..5 stay 0: a configuration table is present; IMCR absent (virtual wire).

  // §4.3 entries, in ascending type order as the spec asks.
  let at = tableStart + HEADER_SIZE;
  let count = 0;
  for (let apicId = 0; apicId < cpus; apicId++) {
    bytes[at] = ENTRY_PROCESSOR;
    bytes[at + 1] = apicId;
    bytes[at + 2] = LAPIC_VERSION;
    bytes[at + 3] = CPU_ENABLED | (apicId === 0 ? CPU_BOOTSTRAP : 0);
    view.setUint32(at + 4, CPU_SIGNATURE, true);
    view.setUint32(at + 8, CPU_FEATURES, true);
    at += PROCESSOR_ENTRY_SIZE;
    count++;
  }
  const isaBus = pciIrqs.length > 0 ? PCI_BUS_ID + 1 : 0;
  if (pciIrqs.length > 0) {
    bytes[at] = ENTRY_BUS;
    bytes[at + 1] = PCI_BUS_ID;
    ascii(at + 2, "PCI   "); // §4.3.2: bus type strings are blank-padded to 6 bytes
    at += ENTRY_SIZE;
    count++;
  }
  bytes[at] = ENTRY_BUS;
  bytes[at + 1] = isaBus;
  ascii(at + 2, "ISA   ");
  at += ENTRY_SIZE;
  count++;

  bytes[at] = ENTRY_IOAPIC;
  bytes[at + 1] = ioapicId;
  bytes[at + 2] = IOAPIC_VERSION;
  bytes[at + 3] = IOAPIC_ENABLED;
  view.setUint32(at + 4, IOAPIC_GPA, true);
  at += ENTRY_SIZE;
  count++;

  for (let irq = 0; irq < ISA_IRQS; irq++) {
    interruptEntry(view, at, ENTRY_IO_INTERRUPT, INT_VECTORED, irq, ioapicId, irq, isaBus);
    at += ENTRY_SIZE;
    count++;
  }
  // §4.3.4 and appendix D: a PCI source IRQ is (device << 2) | (INTx - 1); PCI lines are
  // level-triggered and active low.
  for (const r of pciIrqs) {
    interruptEntry(
      view,
      at,
      ENTRY_IO_INTERRUPT,
      INT_VECTORED,
      (r.slot << 2) | (r.pin - 1),
      ioapicId,
      r.ioapicPin,
      PCI_BUS_ID,
      FLAGS_PCI,
    );
    at += ENTRY_SIZE;
    count++;
  }
  // §5.1 virtual wire: the 8259's output reaches LINT0 as ExtINT, NMI arrives on LINT1.
  interruptEntry(view, at, ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, ALL_LAPICS, 0, isaBus);
  interruptEntry(
    view,
    at + ENTRY_SIZE,
    ENTRY_LOCAL_INTERRUPT,
    INT_NMI,
    0,
    ALL_LAPICS,
    1,
    isaBus,
  );
  at += 2 * ENTRY_SIZE;
  count += 2;

  // §4.2 header, written last because it carries the length, count and checksum.
  ascii(tableStart, "PCMP");
  view.setUint16(tableStart + 4, at - tableStart, true); // base table length
  bytes[tableStart + 6] = SPEC_REV_1_4;
  ascii(tableStart + 8, "DENOVMM "); // OEM ID, 8 bytes
  ascii(tableStart + 16, "DENOVMM     "); // product ID, 12 bytes
  view.setUint16(tableStart + 34, count, true); // entry count
  view.setUint32(tableStart + 36, LAPIC_GPA, true); // address of local APIC
  bytes[tableStart + 7] = checksum(bytes.subarray(tableStart, at));
  bytes[10] = checksum(bytes.subarray(0, FLOATING_POINTER_SIZE));
  return bytes;
}

/** Write {@link mpTable} at {@link MPTABLE_GPA}. */
export function writeMpTable(
  mem: GuestMemory,
  cpus: number,
  pciIrqs: readonly PciIrqRoute[] = [],
): void {
  mem.write(MPTABLE_GPA, mpTable(cpus, pciIrqs));
}

/** §4.3.4 / §4.3.5: the two interrupt entry formats share one layout. */
function interruptEntry(
  view: DataView,
  at: number,
  entryType: number,
  interruptType: number,
  sourceIrq: number,
  destinationId: number,
  destinationPin: number,
  sourceBus: number,
  flags = FLAGS_CONFORM,
): void {
  view.setUint8(at, entryType);
  view.setUint8(at + 1, interruptType);
  view.setUint16(at + 2, flags, true);
  view.setUint8(at + 4, sourceBus);
  view.setUint8(at + 5, sourceIrq);
  view.setUint8(at + 6, destinationId);
  view.setUint8(at + 7, destinationPin);
}
