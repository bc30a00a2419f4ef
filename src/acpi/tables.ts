/**
 * The fixed-layout ACPI tables of an x86 machine without firmware (ACPI 6.5 §5.2): the RSDP
 * that the kernel finds in the BIOS area, the XSDT it points to, and the tables the XSDT
 * lists: a hardware-reduced FADT, the MADT (interrupt controllers and CPUs) and the MCFG (where
 * PCI Express ECAM config space is). The DSDT, in AML, is built in dsdt.ts.
 *
 * Hardware-reduced ACPI (§4.1) is what Firecracker and Cloud Hypervisor describe too: no PM1
 * event/control blocks, no PM timer, no GPE blocks and no SCI to emulate; sleep and reset
 * go through three byte registers the FADT names (src/devices/acpi_pm.ts serves them).
 *
 * @module
 */

import {
  ascii,
  checksum,
  SDT_HEADER_SIZE,
  systemDescriptionTable,
  writeIoByteRegister,
} from "./sdt.ts";

// --- RSDP (§5.2.5.3) -----------------------------------------------------------------------

export const RSDP_SIZE = 36;
/** The first 20 bytes are the ACPI 1.0 structure its own checksum covers. */
const RSDP_V1_SIZE = 20;
/** Revision 2: ACPI 2.0+, which has the XSDT address. */
const RSDP_REVISION = 2;

/** The root pointer: only the XSDT (the RSDT's 32-bit address stays 0; Linux reads the XSDT). */
export function rsdp(xsdtGpa: number): Uint8Array {
  const bytes = new Uint8Array(RSDP_SIZE);
  const view = new DataView(bytes.buffer);
  ascii(bytes, 0, "RSD PTR ");
  ascii(bytes, 9, "DENOVM", 6);
  view.setUint8(15, RSDP_REVISION);
  view.setUint32(20, RSDP_SIZE, true);
  view.setBigUint64(24, BigInt(xsdtGpa), true);
  bytes[8] = checksum(bytes.subarray(0, RSDP_V1_SIZE));
  bytes[32] = checksum(bytes);
  return bytes;
}

// --- XSDT (§5.2.8) -------------------------------------------------------------------------

/** The extended root table: the 64-bit addresses of every other table but the DSDT and FACS. */
export function xsdt(tableGpas: readonly number[]): Uint8Array {
  const body = new Uint8Array(8 * tableGpas.length);
  const view = new DataView(body.buffer);
  tableGpas.forEach((gpa, i) => view.setBigUint64(8 * i, BigInt(gpa), true));
  return systemDescriptionTable("XSDT", 1, body);
}

// --- FADT (§5.2.9) -------------------------------------------------------------------------

/** sizeof(struct acpi_table_fadt) in ACPI 6.x, hypervisor vendor identity included. */
export const FADT_SIZE = 276;
const FADT_REVISION = 6;
const FADT_MINOR_REVISION = 5;

// Field offsets from the table's start (Table 5.9).
const FADT_X_DSDT = 140;
const FADT_CENTURY = 108;
const FADT_IAPC_BOOT_ARCH = 109;
const FADT_FLAGS = 112;
const FADT_RESET_REG = 116;
const FADT_RESET_VALUE = 128;
const FADT_MINOR_VERSION = 131;
const FADT_SLEEP_CONTROL_REG = 244;
const FADT_SLEEP_STATUS_REG = 256;
const FADT_HYPERVISOR_VENDOR = 268;

// IA-PC boot architecture flags (Table 5.10).
/** There are ISA-style devices (our COM1) the OS cannot enumerate otherwise than by ACPI. */
export const IAPC_LEGACY_DEVICES = 1 << 0;
/** Set if there is an 8042 keyboard controller. Ours only resets the machine (`reboot=k`),
 * and without the flag Linux's i8042 driver does not probe it: nothing to find there. */
export const IAPC_8042 = 1 << 1;
export const IAPC_VGA_NOT_PRESENT = 1 << 2;

// Fixed feature flags (Table 5.11).
/** WBINVD flushes caches correctly: true of every x86 CPU ACPI 2.0+ targets. */
export const FADT_WBINVD = 1 << 0;
/** The power and sleep buttons are not fixed features (there are none). */
export const FADT_PWR_BUTTON = 1 << 4;
export const FADT_SLP_BUTTON = 1 << 5;
/** The RESET_REG is valid: `reboot=a` works. */
export const FADT_RESET_REG_SUP = 1 << 10;
/** No ACPI fixed hardware (§4.1): no PM1 blocks, PM timer, GPEs or SCI. */
export const FADT_HW_REDUCED_ACPI = 1 << 20;

/** The I/O ports of the hardware-reduced sleep and reset registers (one byte each). */
export interface AcpiPmPorts {
  sleepControl: number;
  sleepStatus: number;
  reset: number;
  /** What a write to `reset` must carry to reset the machine. */
  resetValue: number;
}

/** A hardware-reduced FADT pointing at the DSDT through X_DSDT (the 32-bit DSDT field stays
 * 0: with both set, they must agree, and the 64-bit one is what ACPI 2.0+ reads). */
export function fadt(dsdtGpa: number, pm: AcpiPmPorts, rtcCenturyIndex = 0): Uint8Array {
  const body = new Uint8Array(FADT_SIZE - SDT_HEADER_SIZE);
  const view = new DataView(body.buffer);
  const at = (offset: number) => offset - SDT_HEADER_SIZE;
  view.setBigUint64(at(FADT_X_DSDT), BigInt(dsdtGpa), true);
  // The CMOS register that holds the century (0: none), so the OS reads a 4-digit year.
  view.setUint8(at(FADT_CENTURY), rtcCenturyIndex);
  view.setUint16(at(FADT_IAPC_BOOT_ARCH), IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT, true);
  view.setUint32(
    at(FADT_FLAGS),
    FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP | FADT_HW_REDUCED_ACPI,
    true,
  );
  writeIoByteRegister(view, at(FADT_RESET_REG), pm.reset);
  view.setUint8(at(FADT_RESET_VALUE), pm.resetValue);
  view.setUint8(at(FADT_MINOR_VERSION), FADT_MINOR_REVISION);
  writeIoByteRegister(view, at(FADT_SLEEP_CONTROL_REG), pm.sleepControl);
  writeIoByteRegister(view, at(FADT_SLEEP_STATUS_REG), pm.sleepStatus);
  ascii(body, at(FADT_HYPERVISOR_VENDOR), "DENOVMM", 8);
  return systemDescriptionTable("FACP", FADT_REVISION, body);
}

// --- MADT (§5.2.12) ------------------------------------------------------------------------

const MADT_REVISION = 5;
/** PCAT_COMPAT: there are dual 8259s too (KVM's in-kernel PIC), which the OS must mask. */
const MADT_PCAT_COMPAT = 1;

// Interrupt controller structure types (Table 5.21) and their lengths.
const MADT_LOCAL_APIC = 0;
const MADT_IOAPIC = 1;
const MADT_INTERRUPT_OVERRIDE = 2;
const MADT_LOCAL_APIC_NMI = 4;
const MADT_LOCAL_X2APIC = 9;
const MADT_LOCAL_X2APIC_NMI = 10;
const LEN_LOCAL_APIC = 8;
const LEN_IOAPIC = 12;
const LEN_INTERRUPT_OVERRIDE = 10;
const LEN_LOCAL_APIC_NMI = 6;
const LEN_LOCAL_X2APIC = 16;
const LEN_LOCAL_X2APIC_NMI = 12;

/** Local APIC flags: Enabled. */
const LAPIC_ENABLED = 1;
/** An xAPIC id is 8 bits and 0xff is broadcast: a CPU with a larger id needs an x2APIC entry. */
export const MAX_XAPIC_ID = 0xfe;
/** Processor UID meaning "every processor" in the NMI structures. */
const ALL_PROCESSORS = 0xff;
const ALL_X2_PROCESSORS = 0xffff_ffff;
/** MPS INTI flags: polarity and trigger conform to the bus (ISA: active high, edge). */
const INTI_CONFORMS = 0;
/** LINT1 is the NMI input of every local APIC (the virtual-wire wiring of MP spec §5.1). */
const NMI_LINT = 1;

export interface MadtInput {
  /** APIC id of each CPU, in processor UID order (UID = index). */
  apicIds: readonly number[];
  lapicGpa: number;
  ioapicId: number;
  ioapicGpa: number;
  /** ISA IRQ -> GSI entries where they are not identity (ACPI's default for ISA IRQs). */
  overrides?: readonly { irq: number; gsi: number; flags?: number }[];
}

/**
 * The MADT: a local APIC per CPU (a local x2APIC for an id above 0xfe or a UID above 0xff), the
 * IOAPIC with GSI base 0, the interrupt source overrides, and LINT1 as NMI on every CPU.
 */
export function madt(m: MadtInput): Uint8Array {
  // A Local APIC entry holds an 8-bit APIC id and an 8-bit UID: past either, an x2APIC entry.
  const isX2 = (apicId: number, uid: number) => apicId > MAX_XAPIC_ID || uid > 0xff;
  const x2 = m.apicIds.some(isX2);
  const overrides = m.overrides ?? [];
  const size = 8 +
    m.apicIds.reduce((n, id, uid) => n + (isX2(id, uid) ? LEN_LOCAL_X2APIC : LEN_LOCAL_APIC), 0) +
    LEN_IOAPIC + overrides.length * LEN_INTERRUPT_OVERRIDE + LEN_LOCAL_APIC_NMI +
    (x2 ? LEN_LOCAL_X2APIC_NMI : 0);
  const body = new Uint8Array(size);
  const view = new DataView(body.buffer);
  view.setUint32(0, m.lapicGpa, true);
  view.setUint32(4, MADT_PCAT_COMPAT, true);
  let at = 8;
  m.apicIds.forEach((apicId, uid) => {
    if (!Number.isInteger(apicId) || apicId < 0 || apicId > 0xffff_fffe) {
      throw new RangeError(`APIC id ${apicId} of CPU ${uid}`);
    }
    if (!isX2(apicId, uid)) {
      view.setUint8(at, MADT_LOCAL_APIC);
      view.setUint8(at + 1, LEN_LOCAL_APIC);
      view.setUint8(at + 2, uid);
      view.setUint8(at + 3, apicId);
      view.setUint32(at + 4, LAPIC_ENABLED, true);
      at += LEN_LOCAL_APIC;
    } else {
      view.setUint8(at, MADT_LOCAL_X2APIC);
      view.setUint8(at + 1, LEN_LOCAL_X2APIC);
      view.setUint32(at + 4, apicId, true);
      view.setUint32(at + 8, LAPIC_ENABLED, true);
      view.setUint32(at + 12, uid, true);
      at += LEN_LOCAL_X2APIC;
    }
  });
  view.setUint8(at, MADT_IOAPIC);
  view.setUint8(at + 1, LEN_IOAPIC);
  view.setUint8(at + 2, m.ioapicId);
  view.setUint32(at + 4, m.ioapicGpa, true);
  view.setUint32(at + 8, 0, true); // GSI base: pin n is GSI n
  at += LEN_IOAPIC;
  for (const o of overrides) {
    view.setUint8(at, MADT_INTERRUPT_OVERRIDE);
    view.setUint8(at + 1, LEN_INTERRUPT_OVERRIDE);
    view.setUint8(at + 2, 0); // bus: ISA
    view.setUint8(at + 3, o.irq);
    view.setUint32(at + 4, o.gsi, true);
    view.setUint16(at + 8, o.flags ?? INTI_CONFORMS, true);
    at += LEN_INTERRUPT_OVERRIDE;
  }
  view.setUint8(at, MADT_LOCAL_APIC_NMI);
  view.setUint8(at + 1, LEN_LOCAL_APIC_NMI);
  view.setUint8(at + 2, ALL_PROCESSORS);
  view.setUint16(at + 3, INTI_CONFORMS, true);
  view.setUint8(at + 5, NMI_LINT);
  at += LEN_LOCAL_APIC_NMI;
  if (x2) {
    view.setUint8(at, MADT_LOCAL_X2APIC_NMI);
    view.setUint8(at + 1, LEN_LOCAL_X2APIC_NMI);
    view.setUint16(at + 2, INTI_CONFORMS, true);
    view.setUint32(at + 4, ALL_X2_PROCESSORS, true);
    view.setUint8(at + 8, NMI_LINT);
    at += LEN_LOCAL_X2APIC_NMI;
  }
  return systemDescriptionTable("APIC", MADT_REVISION, body);
}

// --- MCFG (PCI Firmware Specification 3.2 §4.1.2) -------------------------------------------

/** One ECAM region: config space of `startBus..endBus` of a PCI segment at `gpa`. */
export interface EcamRegion {
  gpa: number;
  segment: number;
  startBus: number;
  endBus: number;
}

/** The MCFG: 8 reserved bytes, then one 16-byte allocation structure per ECAM region. */
export function mcfg(regions: readonly EcamRegion[]): Uint8Array {
  const body = new Uint8Array(8 + 16 * regions.length);
  const view = new DataView(body.buffer);
  regions.forEach((r, i) => {
    const at = 8 + 16 * i;
    view.setBigUint64(at, BigInt(r.gpa), true);
    view.setUint16(at + 8, r.segment, true);
    view.setUint8(at + 10, r.startBus);
    view.setUint8(at + 11, r.endBus);
  });
  return systemDescriptionTable("MCFG", 1, body);
}
