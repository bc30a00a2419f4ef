/**
 * All of the x86 machine's ACPI tables, laid out from ACPI_TABLES_START (0xe0000, the start of
 * the BIOS area Linux scans for the RSDP on a 16-byte boundary): RSDP, XSDT, FADT, MADT, MCFG,
 * DSDT, each 16-byte aligned, in E820-reserved memory. Built once, from the machine's
 * description, before the guest runs.
 *
 * @module
 */

import { dsdt, type DsdtInput } from "../../../acpi/dsdt.ts";
import { type AcpiPmPorts, fadt, madt, mcfg, rsdp, xsdt } from "../../../acpi/tables.ts";

export const TABLE_ALIGN = 16;

export interface X86AcpiInput extends DsdtInput {
  /** APIC id of each vCPU (processor UID = index). */
  apicIds: readonly number[];
  lapicGpa: number;
  ioapicId: number;
  ioapicGpa: number;
  /** ISA IRQ -> GSI overrides (see the MADT). */
  overrides: readonly { irq: number; gsi: number }[];
  pmPorts: AcpiPmPorts;
  /** The CMOS register holding the century, for the FADT. */
  rtcCenturyIndex: number;
}

export interface AcpiBlob {
  /** Where `bytes` goes; also the RSDP's address. */
  gpa: number;
  bytes: Uint8Array;
  /** Each table's address, by signature (for tests and dumps). */
  tables: Record<string, number>;
}

/** The tables as one block for guest memory at `gpa` (16-byte aligned); at most `limit` bytes. */
export function x86AcpiTables(input: X86AcpiInput, gpa: number, limit: number): AcpiBlob {
  if (gpa % TABLE_ALIGN !== 0) {
    throw new RangeError(`ACPI tables at unaligned 0x${gpa.toString(16)}`);
  }
  // Addresses go into the RSDP, XSDT and FADT, never their sizes: they are laid out with
  // stand-ins, built once the others' addresses are known; the rest are built once.
  const pointing = (at: Record<string, number>) => ({
    RSDP: rsdp(at.XSDT),
    XSDT: xsdt([at.FACP, at.APIC, at.MCFG]),
    FACP: fadt(at.DSDT, input.pmPorts, input.rtcCenturyIndex),
  });
  const fixed = {
    APIC: madt(input),
    MCFG: mcfg([{ gpa: input.ecam.gpa, segment: 0, startBus: 0, endBus: 0 }]),
    DSDT: dsdt(input),
  };
  const at: Record<string, number> = {};
  let next = gpa;
  const standIns = { XSDT: 0, FACP: 0, APIC: 0, MCFG: 0, DSDT: 0 };
  for (const [sig, table] of Object.entries({ ...pointing(standIns), ...fixed })) {
    at[sig] = next;
    next += Math.ceil(table.length / TABLE_ALIGN) * TABLE_ALIGN;
  }
  if (next - gpa > limit) {
    throw new RangeError(`ACPI tables take ${next - gpa} bytes; there is room for ${limit}`);
  }
  const bytes = new Uint8Array(next - gpa);
  for (const [sig, table] of Object.entries({ ...pointing(at), ...fixed })) {
    bytes.set(table, at[sig] - gpa);
  }
  return { gpa, bytes, tables: at };
}
