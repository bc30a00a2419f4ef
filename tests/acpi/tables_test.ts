// The fixed-layout tables (src/acpi/tables.ts, sdt.ts) field by field, at the offsets of
// ACPI 6.5 §5.2 and the PCI Firmware Specification's MCFG. The PC's set of them
// (tests/arch/x86_64/acpi/tables_test.ts) is checked against iasl's disassembler.
import { deepEqual, equal, ok } from "../assert.ts";
import { rangeError, sum, text, view } from "./acpi_test_helpers.ts";
import {
  ascii,
  checksum,
  GAS_SIZE,
  OEM_ID,
  SDT_HEADER_SIZE,
  systemDescriptionTable,
} from "../../src/acpi/sdt.ts";
import {
  fadt,
  FADT_SIZE,
  madt,
  type MadtInput,
  mcfg,
  rsdp,
  RSDP_SIZE,
  xsdt,
} from "../../src/acpi/tables.ts";

const PM = { sleepControl: 0x600, sleepStatus: 0x601, reset: 0x602, resetValue: 1 };

/** The header every table but the RSDP starts with, checksum over the whole table included. */
function assertHeader(table: Uint8Array, signature: string, revision: number): void {
  equal(sum(table), 0, `${signature} bytes do not sum to 0`);
  equal(text(table, 0, 4), signature);
  equal(view(table).getUint32(4, true), table.length, `${signature} length`);
  equal(table[8], revision, `${signature} revision`);
  equal(text(table, 10, 6), OEM_ID);
  equal(text(table, 16, 8), `DNVM${signature}`);
  equal(view(table).getUint32(24, true), 1); // OEM revision
  equal(text(table, 28, 4), "DNVM");
}

Deno.test("sdt: checksum is the byte that zeroes the sum", () => {
  equal(checksum(new Uint8Array(0)), 0);
  equal(checksum(Uint8Array.of(1)), 0xff);
  equal(checksum(Uint8Array.of(0x80, 0x80)), 0);
  equal(checksum(Uint8Array.of(0xff, 0xff, 0xff)), 3);
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 0xff);
  const c = checksum(bytes);
  ok(c >= 0 && c <= 0xff);
  equal(sum(Uint8Array.of(...bytes, c)), 0);
});

Deno.test("sdt: ascii pads with spaces and refuses what does not fit", () => {
  const bytes = new Uint8Array(8);
  ascii(bytes, 1, "AB", 4);
  deepEqual([...bytes], [0, 0x41, 0x42, 0x20, 0x20, 0, 0, 0]);
  rangeError(() => ascii(bytes, 0, "TOOLONG", 6), /"TOOLONG" is not up to 6/);
  rangeError(() => ascii(bytes, 0, "caf\u00e9", 6), /printable ASCII/);
  rangeError(() => ascii(bytes, 0, "a\nb", 6), /printable ASCII/);
});

Deno.test("sdt: the header wraps the body and covers it with the checksum", () => {
  const body = Uint8Array.of(1, 2, 3, 0xfe);
  const table = systemDescriptionTable("TEST", 7, body);
  equal(table.length, SDT_HEADER_SIZE + 4);
  assertHeader(table, "TEST", 7);
  equal(view(table).getUint32(32, true), 1); // creator revision
  deepEqual([...table.subarray(SDT_HEADER_SIZE)], [...body]);
  // Changing any body byte has to change the checksum byte.
  const other = systemDescriptionTable("TEST", 7, Uint8Array.of(1, 2, 4, 0xfe));
  equal((other[9] + 1) & 0xff, table[9]);
  for (const bad of ["test", "TES", "TESTS", "TE T", ""]) {
    rangeError(() => systemDescriptionTable(bad, 1, body), /bad table signature/);
  }
});

Deno.test("rsdp: revision 2, XSDT address, both checksums", () => {
  for (const xsdtGpa of [0xe0030, 0x1_2345_6780, 0]) {
    const r = rsdp(xsdtGpa);
    equal(r.length, RSDP_SIZE);
    equal(RSDP_SIZE, 36);
    equal(text(r, 0, 8), "RSD PTR ");
    equal(text(r, 9, 6), OEM_ID);
    equal(r[15], 2);
    equal(view(r).getUint32(16, true), 0, "RSDT address");
    equal(view(r).getUint32(20, true), 36, "length");
    equal(view(r).getBigUint64(24, true), BigInt(xsdtGpa));
    equal(sum(r.subarray(0, 20)), 0, "ACPI 1.0 checksum");
    equal(sum(r), 0, "extended checksum");
    deepEqual([...r.subarray(33)], [0, 0, 0]);
  }
  // The 1.0 checksum covers only the first 20 bytes: a high XSDT address byte moves only the
  // extended one.
  const a = rsdp(0xe0030);
  const b = rsdp(0x100_000e_0030);
  equal(a[8], b[8]);
  equal((a[32] - 1) & 0xff, b[32]);
});

Deno.test("xsdt: one 64-bit address per table, in order", () => {
  const gpas = [0xe0070, 0xe0190, 0x1_0000_01f0];
  const t = xsdt(gpas);
  assertHeader(t, "XSDT", 1);
  equal(t.length, SDT_HEADER_SIZE + 24);
  deepEqual(
    [0, 1, 2].map((i) => Number(view(t).getBigUint64(SDT_HEADER_SIZE + 8 * i, true))),
    gpas,
  );
  assertHeader(xsdt([]), "XSDT", 1);
  equal(xsdt([]).length, SDT_HEADER_SIZE);
});

/** A Generic Address Structure at `at`: [space, bit width, bit offset, access size, address]. */
function gas(table: Uint8Array, at: number): number[] {
  const v = view(table);
  return [v.getUint8(at), v.getUint8(at + 1), v.getUint8(at + 2), v.getUint8(at + 3)].concat(
    Number(v.getBigUint64(at + 4, true)),
  );
}

Deno.test("fadt: hardware-reduced, X_DSDT, sleep and reset registers", () => {
  const dsdtGpa = 0x1_2345_6780;
  const t = fadt(dsdtGpa, PM);
  const v = view(t);
  assertHeader(t, "FACP", 6);
  equal(t.length, FADT_SIZE);
  equal(FADT_SIZE, 276);
  equal(t[131], 5, "minor revision");
  equal(v.getUint32(36, true), 0, "FIRMWARE_CTRL");
  equal(v.getUint32(40, true), 0, "32-bit DSDT");
  equal(Number(v.getBigUint64(132, true)), 0, "X_FIRMWARE_CTRL");
  equal(Number(v.getBigUint64(140, true)), dsdtGpa, "X_DSDT");
  equal(v.getUint16(46, true), 0, "no SCI");
  equal(v.getUint32(76, true), 0, "no PM timer");
  const flags = v.getUint32(112, true);
  ok(flags & (1 << 20), "HW_REDUCED_ACPI");
  ok(flags & (1 << 10), "RESET_REG_SUP");
  equal(flags & (1 << 8), 0, "TMR_VAL_EXT: there is no PM timer");
  equal(v.getUint16(109, true) & 1, 1, "IA-PC boot arch: legacy devices");
  equal(v.getUint16(109, true) & 2, 0, "IA-PC boot arch: no 8042 to probe");
  equal(GAS_SIZE, 12);
  // SystemIO, 8 bits wide at bit 0, byte access.
  deepEqual(gas(t, 116), [1, 8, 0, 1, 0x602], "RESET_REG");
  equal(t[128], 1, "RESET_VALUE");
  deepEqual(gas(t, 244), [1, 8, 0, 1, 0x600], "SLEEP_CONTROL_REG");
  deepEqual(gas(t, 256), [1, 8, 0, 1, 0x601], "SLEEP_STATUS_REG");
  equal(text(t, 268, 8), "DENOVMM ", "hypervisor vendor identity");
  // The PM1/PM2/timer/GPE blocks, 32- and 64-bit, are all absent.
  ok(t.subarray(56, 96).every((b) => b === 0), "legacy PM blocks");
  ok(t.subarray(148, 244).every((b) => b === 0), "X_ PM blocks");

  const other = fadt(0xe0230, {
    sleepControl: 0x700,
    sleepStatus: 0x710,
    reset: 0xcf9,
    resetValue: 6,
  });
  assertHeader(other, "FACP", 6);
  equal(Number(view(other).getBigUint64(140, true)), 0xe0230);
  deepEqual(gas(other, 116), [1, 8, 0, 1, 0xcf9]);
  equal(other[128], 6);
  deepEqual(gas(other, 244), [1, 8, 0, 1, 0x700]);
  deepEqual(gas(other, 256), [1, 8, 0, 1, 0x710]);
});

interface Subtable {
  type: number;
  at: number;
  bytes: Uint8Array;
}

/** The MADT's interrupt controller structures, each exactly as long as it says. */
function madtEntries(t: Uint8Array): Subtable[] {
  const entries: Subtable[] = [];
  let at = SDT_HEADER_SIZE + 8;
  while (at < t.length) {
    const length = t[at + 1];
    ok(length >= 2 && at + length <= t.length, `MADT entry at ${at} has length ${length}`);
    entries.push({ type: t[at], at, bytes: t.subarray(at, at + length) });
    at += length;
  }
  equal(at, t.length, "the last MADT entry ends where the table does");
  return entries;
}

const MADT_BASE: Omit<MadtInput, "apicIds"> = {
  lapicGpa: 0xfee0_0000,
  ioapicId: 3,
  ioapicGpa: 0xfec0_0000,
  overrides: [{ irq: 0, gsi: 0 }],
};

Deno.test("madt: a Local APIC per CPU, the IOAPIC, the override and the LINT1 NMI", () => {
  for (const cpus of [1, 3, 8, 255]) {
    const t = madt({ ...MADT_BASE, apicIds: Array.from({ length: cpus }, (_, i) => i) });
    assertHeader(t, "APIC", 5);
    const v = view(t);
    equal(v.getUint32(36, true), 0xfee0_0000, "local APIC address");
    equal(v.getUint32(40, true), 1, "PCAT_COMPAT");
    const entries = madtEntries(t);
    const lapics = entries.filter((e) => e.type === 0);
    equal(lapics.length, cpus);
    lapics.forEach((e, i) => {
      // type, length, UID, APIC id, flags = enabled
      deepEqual([...e.bytes], [0, 8, i, i, 1, 0, 0, 0], `CPU ${i}`);
    });
    deepEqual(entries.map((e) => e.type), [...Array(cpus).fill(0), 1, 2, 4]);
    const [ioapic, override, nmi] = entries.slice(cpus).map((e) => e.bytes);
    deepEqual([...ioapic], [1, 12, 3, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
    // ISA (bus 0) IRQ 0 to GSI 0, conforming polarity and trigger.
    deepEqual([...override], [2, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Every processor (0xff), conforming flags, LINT1.
    deepEqual([...nmi], [4, 6, 0xff, 0, 0, 1]);
    ok(!entries.some((e) => e.type === 9 || e.type === 10), "no x2APIC entries");
  }
});

Deno.test("madt: an APIC id above 0xfe takes a Local x2APIC entry and an x2APIC NMI", () => {
  const t = madt({ ...MADT_BASE, apicIds: [0, 1, 300], overrides: [] });
  assertHeader(t, "APIC", 5);
  const entries = madtEntries(t);
  deepEqual(entries.map((e) => e.type), [0, 0, 9, 1, 4, 10]);
  deepEqual([...entries[0].bytes], [0, 8, 0, 0, 1, 0, 0, 0]);
  deepEqual([...entries[1].bytes], [0, 8, 1, 1, 1, 0, 0, 0]);
  const x2 = entries[2].bytes;
  equal(x2.length, 16);
  equal(view(x2).getUint16(2, true), 0, "reserved");
  equal(view(x2).getUint32(4, true), 300, "x2APIC id");
  equal(view(x2).getUint32(8, true), 1, "enabled");
  equal(view(x2).getUint32(12, true), 2, "UID");
  // The xAPIC NMI still covers the xAPIC entries; the x2APIC one every x2APIC processor.
  deepEqual([...entries[4].bytes], [4, 6, 0xff, 0, 0, 1]);
  const x2nmi = entries[5].bytes;
  equal(x2nmi.length, 12);
  equal(view(x2nmi).getUint16(2, true), 0, "flags");
  equal(view(x2nmi).getUint32(4, true), 0xffff_ffff, "all processors");
  equal(x2nmi[8], 1, "LINT1");
  deepEqual([...x2nmi.subarray(9)], [0, 0, 0]);

  // 0xff is the broadcast id, so it is the first that needs an x2APIC entry.
  deepEqual(madtEntries(madt({ ...MADT_BASE, apicIds: [0xfe] })).map((e) => e.type), [0, 1, 2, 4]);
  deepEqual(
    madtEntries(madt({ ...MADT_BASE, apicIds: [0xff] })).map((e) => e.type),
    [9, 1, 2, 4, 10],
  );
});

Deno.test("madt: a UID above 0xff takes an x2APIC entry too, sized as it is written", () => {
  // 257 CPUs whose last has a small APIC id: its UID does not fit a Local APIC entry.
  const apicIds = [300, 301, ...Array.from({ length: 255 }, (_, i) => i)];
  const t = madt({ ...MADT_BASE, ioapicId: 0xfe, apicIds });
  assertHeader(t, "APIC", 5);
  const entries = madtEntries(t);
  const cpus = entries.filter((e) => e.type === 0 || e.type === 9);
  equal(cpus.length, 257);
  cpus.forEach((e, uid) => {
    const x2 = e.type === 9;
    equal(x2, uid < 2 || uid === 256, `UID ${uid}`);
    equal(x2 ? view(e.bytes).getUint32(12, true) : e.bytes[2], uid);
    equal(x2 ? view(e.bytes).getUint32(4, true) : e.bytes[3], apicIds[uid]);
  });
  equal(entries.filter((e) => e.type === 10).length, 1);
});

Deno.test("madt: refuses APIC ids that are not 32-bit ids", () => {
  for (const bad of [-1, 1.5, NaN, 0xffff_ffff, 2 ** 32]) {
    rangeError(() => madt({ ...MADT_BASE, apicIds: [0, bad] }), /APIC id .* of CPU 1/);
  }
});

Deno.test("mcfg: one 16-byte allocation per ECAM region", () => {
  const t = mcfg([{ gpa: 0xfeb0_0000, segment: 0, startBus: 0, endBus: 0 }]);
  assertHeader(t, "MCFG", 1);
  equal(t.length, SDT_HEADER_SIZE + 8 + 16);
  ok(t.subarray(36, 44).every((b) => b === 0), "reserved");
  const v = view(t);
  equal(Number(v.getBigUint64(44, true)), 0xfeb0_0000);
  equal(v.getUint16(52, true), 0, "segment");
  equal(t[54], 0, "start bus");
  equal(t[55], 0, "end bus");
  deepEqual([...t.subarray(56, 60)], [0, 0, 0, 0]);

  const two = mcfg([
    { gpa: 0xfeb0_0000, segment: 0, startBus: 0, endBus: 0 },
    { gpa: 0x80_0000_0000, segment: 1, startBus: 0x10, endBus: 0xff },
  ]);
  assertHeader(two, "MCFG", 1);
  equal(two.length, SDT_HEADER_SIZE + 8 + 32);
  equal(Number(view(two).getBigUint64(60, true)), 0x80_0000_0000);
  equal(view(two).getUint16(68, true), 1);
  deepEqual([two[70], two[71]], [0x10, 0xff]);
});
