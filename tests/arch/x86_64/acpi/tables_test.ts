// The whole set of x86 tables as denovmm's machine states it (machineAcpi), laid out by
// x86AcpiTables: the pointers between tables, then ACPICA's iasl reading each table back, and
// iasl compiling an RSDP of its own to compare with ours (its disassembler cannot read RSDPs).
import { deepEqual, equal, ok } from "../../../assert.ts";
import {
  assertClean,
  hex,
  iasl,
  rangeError,
  sum,
  text,
  view,
} from "../../../acpi/acpi_test_helpers.ts";
import { madt } from "../../../../src/acpi/tables.ts";
import { type AcpiBlob, x86AcpiTables } from "../../../../src/arch/x86_64/acpi/tables.ts";
import { machineAcpi, writeAcpiTables } from "../../../../src/arch/x86_64/acpi/description.ts";
import { intxPin } from "../../../../src/arch/x86_64/interrupts.ts";
import {
  PCI_IO_END,
  PCI_IO_START,
  PCI_MMIO_END,
  PCI_MMIO_START,
} from "../../../../src/arch/x86_64/pci.ts";
import type { GuestMemory } from "../../../../src/memory/guest_memory.ts";
import { ACPI_TABLES_END, ACPI_TABLES_START } from "../../../../src/arch/x86_64/memory_map.ts";

const BIOS_AREA = 0xe0000;
const LIMIT = 0x10000;
const MMIO64 = { gpa: 0x1_4000_0000, size: 2 ** 40 - 0x1_4000_0000 };
const NO_MMIO64 = { gpa: 0, size: 0 };
const CPU_COUNTS = [1, 3, 8, 255];
/** Where Linux scans for the RSDP, and what ACPI asks of every table: 16-byte boundaries. */
const ALIGN = 16;
const SIGNATURES = ["RSDP", "XSDT", "FACP", "APIC", "MCFG", "DSDT"];

/** `n` as iasl prints it: upper-case hex, zero-padded to `digits`. */
function h(n: number, digits: number): string {
  return n.toString(16).toUpperCase().padStart(digits, "0");
}

/** The table at guest address `gpa`, as long as its header says (36 bytes for the RSDP). */
function tableAt(blob: AcpiBlob, gpa: number, signature: string): Uint8Array {
  const at = gpa - blob.gpa;
  ok(
    at >= 0 && at + 8 <= blob.bytes.length,
    `${signature} at 0x${gpa.toString(16)} is outside the blob`,
  );
  const length = signature === "RSDP" ? 36 : view(blob.bytes).getUint32(at + 4, true);
  ok(at + length <= blob.bytes.length, `${signature} runs past the end of the blob`);
  const table = blob.bytes.subarray(at, at + length);
  equal(
    text(table, 0, signature === "RSDP" ? 8 : 4),
    signature === "RSDP" ? "RSD PTR " : signature,
  );
  return table;
}

/**
 * Follows the pointers the way an OS does, from the RSDP at the blob's start; checks each
 * table's checksum and that every table is found where `blob.tables` says.
 */
function walk(blob: AcpiBlob): Record<string, Uint8Array> {
  const rsdp = tableAt(blob, blob.gpa, "RSDP");
  equal(sum(rsdp.subarray(0, 20)), 0, "RSDP 1.0 checksum");
  equal(sum(rsdp), 0, "RSDP extended checksum");
  equal(rsdp[15], 2, "RSDP revision");
  equal(view(rsdp).getUint32(16, true), 0, "RSDT address");
  const xsdtGpa = Number(view(rsdp).getBigUint64(24, true));
  const found: Record<string, Uint8Array> = { RSDP: rsdp, XSDT: tableAt(blob, xsdtGpa, "XSDT") };
  const addresses: Record<string, number> = { RSDP: blob.gpa, XSDT: xsdtGpa };
  const xsdt = found.XSDT;
  equal((xsdt.length - 36) % 8, 0);
  for (let at = 36; at < xsdt.length; at += 8) {
    const gpa = Number(view(xsdt).getBigUint64(at, true));
    const signature = text(blob.bytes, gpa - blob.gpa, 4);
    ok(!(signature in found), `XSDT lists ${signature} twice`);
    found[signature] = tableAt(blob, gpa, signature);
    addresses[signature] = gpa;
  }
  deepEqual(Object.keys(found).sort(), ["APIC", "FACP", "MCFG", "RSDP", "XSDT"]);
  const fadt = found.FACP;
  equal(view(fadt).getUint32(40, true), 0, "FADT 32-bit DSDT");
  addresses.DSDT = Number(view(fadt).getBigUint64(140, true));
  found.DSDT = tableAt(blob, addresses.DSDT, "DSDT");
  deepEqual(addresses, blob.tables);
  for (const [signature, table] of Object.entries(found)) {
    equal(sum(table), 0, `${signature} checksum`);
    if (signature === "RSDP") continue;
    equal(view(table).getUint32(4, true), table.length);
    equal(text(table, 10, 6), "DENOVM", `${signature} OEM ID`);
  }
  return found;
}

/** Each table 16-byte aligned, none overlapping, the blob no longer than they need. */
function assertLayout(blob: AcpiBlob, tables: Record<string, Uint8Array>): void {
  const spans = Object.entries(tables)
    .map(([signature, t]) => ({ signature, at: blob.tables[signature] - blob.gpa, end: 0, t }))
    .map((s) => ({ ...s, end: s.at + s.t.length }))
    .sort((a, b) => a.at - b.at);
  equal(spans[0].at, 0, "the RSDP is the blob's first table");
  for (const s of spans) equal(s.at % ALIGN, 0, `${s.signature} at 0x${s.at.toString(16)}`);
  for (let i = 1; i < spans.length; i++) {
    ok(
      spans[i - 1].end <= spans[i].at,
      `${spans[i - 1].signature} overlaps ${spans[i].signature}`,
    );
  }
  const last = spans[spans.length - 1];
  equal(blob.bytes.length, Math.ceil(last.end / ALIGN) * ALIGN);
}

Deno.test("x86 tables: the RSDP leads to every table, each checksummed, aligned, apart", () => {
  for (const cpus of CPU_COUNTS) {
    for (const mmio64 of [MMIO64, NO_MMIO64]) {
      const what = `${cpus} CPUs, ${mmio64.size ? "a" : "no"} 64-bit window`;
      const blob = x86AcpiTables(machineAcpi(cpus, mmio64), BIOS_AREA, LIMIT);
      equal(blob.gpa, BIOS_AREA);
      ok(blob.bytes.length <= 0x10000, `${what}: ${blob.bytes.length} bytes`);
      deepEqual(Object.keys(blob.tables).sort(), [...SIGNATURES].sort());
      const tables = walk(blob);
      assertLayout(blob, tables);
      // MADT: one enabled Local APIC per CPU, UIDs and ids 0..n-1.
      const apic = tables.APIC;
      let at = 44;
      const lapics: number[][] = [];
      while (at < apic.length) {
        ok(apic[at + 1] >= 2, `MADT entry at ${at} has length ${apic[at + 1]}`);
        if (apic[at] === 0) lapics.push([...apic.subarray(at, at + 8)]);
        if (apic[at] === 1) {
          equal(apic[at + 2], Math.min(cpus, 0xfe), `${what}: IOAPIC id`);
          equal(view(apic).getUint32(at + 4, true), 0xfec0_0000);
          equal(view(apic).getUint32(at + 8, true), 0, "GSI base");
        }
        at += apic[at + 1];
      }
      equal(at, apic.length);
      deepEqual(lapics, Array.from({ length: cpus }, (_, i) => [0, 8, i, i, 1, 0, 0, 0]), what);
    }
  }
});

Deno.test("x86 tables: addresses follow the blob's address", () => {
  const input = machineAcpi(3, MMIO64);
  const a = x86AcpiTables(input, BIOS_AREA, LIMIT);
  const b = x86AcpiTables(input, 0x1_0000_0010, LIMIT);
  equal(b.bytes.length, a.bytes.length);
  for (const signature of SIGNATURES) {
    equal(b.tables[signature] - b.gpa, a.tables[signature] - a.gpa, signature);
  }
  walk(b);
});

Deno.test("x86 tables: refuse an unaligned address or too little room", () => {
  const input = machineAcpi(3, MMIO64);
  for (const gpa of [BIOS_AREA + 1, BIOS_AREA + 8, BIOS_AREA + 15]) {
    rangeError(() => x86AcpiTables(input, gpa, LIMIT), /unaligned 0x/);
  }
  const size = x86AcpiTables(input, BIOS_AREA, LIMIT).bytes.length;
  equal(x86AcpiTables(input, BIOS_AREA, size).bytes.length, size);
  rangeError(
    () => x86AcpiTables(input, BIOS_AREA, size - 1),
    new RegExp(`take ${size} bytes; there is room for ${size - 1}`),
  );
  rangeError(() => x86AcpiTables(input, BIOS_AREA, 0), /room for 0/);
});

Deno.test("x86 tables: writeAcpiTables puts the blob in the BIOS area", () => {
  equal(ACPI_TABLES_START, BIOS_AREA);
  equal(ACPI_TABLES_END - ACPI_TABLES_START, LIMIT);
  const writes: [number, Uint8Array][] = [];
  const mem = { write: (gpa: number, bytes: Uint8Array) => writes.push([gpa, bytes]) };
  equal(writeAcpiTables(mem as unknown as GuestMemory, 8, MMIO64), BIOS_AREA);
  equal(writes.length, 1);
  equal(writes[0][0], BIOS_AREA);
  equal(hex(writes[0][1]), hex(x86AcpiTables(machineAcpi(8, MMIO64), BIOS_AREA, LIMIT).bytes));
});

// --- Against ACPICA's iasl -----------------------------------------------------------------

/** Every string in `wanted` is in the disassembly, which has no complaint of its own. */
function assertSays(what: string, dsl: string, wanted: string[]): void {
  const missing = wanted.filter((w) => !dsl.includes(w));
  deepEqual(missing, [], `${what} lacks ${JSON.stringify(missing)}:\n${dsl}`);
  // The disassembler marks what it could not make sense of (a bad checksum, a table that
  // ends inside a field) with "****" in the .dsl.
  ok(!/\*\*\*\*|Error|Warning/.test(dsl), `${what} has complaints:\n${dsl}`);
}

function count(dsl: string, needle: string): number {
  return dsl.split(needle).length - 1;
}

/** A Generic Address Structure as iasl -d prints it, after the line naming it. */
function gasLines(label: string, port: number): string {
  return [
    `${label} : [Generic Address Structure]`,
    "Space ID : 01 [SystemIO]",
    "Bit Width : 08",
    "Bit Offset : 00",
    "Encoded Access Width : 01 [Byte Access:8]",
    `Address : ${h(port, 16)}`,
  ].join("\n");
}

/** The .dsl with each line's leading "[offset size]" and alignment blanks squeezed out. */
function squeeze(dsl: string): string {
  return dsl.split("\n").map((l) => l.replace(/^\[[^\]]*\]/, "").replace(/\s+/g, " ").trim())
    .join("\n");
}

/** AML integer constants as iasl prints them. */
function amlInt(s: string): number {
  return s === "Zero" ? 0 : s === "One" ? 1 : Number.parseInt(s, 16);
}

function checkXsdt(dsl: string, blob: AcpiBlob): void {
  const listed = [...dsl.matchAll(/ACPI Table Address\s+(\d+) : ([0-9A-F]{16})/g)].map((m) =>
    Number.parseInt(m[2], 16)
  );
  deepEqual(listed, [blob.tables.FACP, blob.tables.APIC, blob.tables.MCFG]);
  assertSays("XSDT", dsl, ['Signature : "XSDT"', 'Oem ID : "DENOVM"', "Revision : 01"]);
}

function checkFacp(dsl: string, blob: AcpiBlob): void {
  const s = squeeze(dsl);
  assertSays("FACP", s, [
    'Signature : "FACP"',
    "Revision : 06",
    "Table Length : 00000114",
    "FADT Minor Revision : 05",
    "Hardware Reduced (V5) : 1",
    "RTC Century Index : 32",
    "Reset Register Supported (V2) : 1",
    "Legacy Devices Supported (V2) : 1",
    "8042 Present on ports 60/64 (V2) : 0",
    "DSDT Address : 00000000\n",
    `DSDT Address : ${h(blob.tables.DSDT, 16)}`,
    "SCI Interrupt : 0000",
    gasLines("Reset Register", 0x602),
    "Value to cause reset : 01",
    gasLines("Sleep Control Register", 0x600),
    gasLines("Sleep Status Register", 0x601),
  ]);
}

function checkApic(dsl: string, cpus: number): void {
  const s = squeeze(dsl);
  equal(count(s, "[Processor Local APIC]"), cpus, "Processor Local APIC subtables");
  const lapics = [...s.matchAll(/Processor ID : ([0-9A-F]{2})\nLocal Apic ID : ([0-9A-F]{2})/g)]
    .map((m) => [Number.parseInt(m[1], 16), Number.parseInt(m[2], 16)]);
  deepEqual(lapics, Array.from({ length: cpus }, (_, i) => [i, i]));
  equal(count(s, "Processor Enabled : 1"), cpus);
  equal(count(s, "[I/O APIC]"), 1);
  equal(count(s, "[Local APIC NMI]"), 1);
  equal(count(s, "x2APIC"), 0);
  assertSays("APIC", s, [
    "Revision : 05",
    "Local Apic Address : FEE00000",
    "PC-AT Compatibility : 1",
    `[I/O APIC]\nLength : 0C\nI/O Apic ID : ${h(Math.min(cpus, 0xfe), 2)}\nReserved : 00\n` +
    "Address : FEC00000\nInterrupt : 00000000",
    "[Interrupt Source Override]\nLength : 0A\nBus : 00\nSource : 00\nInterrupt : 00000000",
    "[Local APIC NMI]\nLength : 06\nProcessor ID : FF",
    "Interrupt Input LINT : 01",
  ]);
}

function checkMcfg(dsl: string): void {
  const s = squeeze(dsl);
  equal(count(s, "Base Address :"), 1);
  assertSays("MCFG", s, [
    "Table Length : 0000003C",
    "Base Address : 00000000FEB00000\nSegment Group Number : 0000\n" +
    "Start Bus Number : 00\nEnd Bus Number : 00",
  ]);
}

function checkDsdt(dsl: string, mmio64: { gpa: number; size: number }): void {
  const s = dsl.replace(/[ \t]+/g, " ");
  assertSays("DSDT", s, [
    'DefinitionBlock ("", "DSDT", 2, "DENOVM", "DNVMDSDT", 0x00000001)',
    "Scope (\\_SB)",
    "Device (PCI0)",
    'Name (_HID, EisaId ("PNP0A08")',
    'Name (_CID, EisaId ("PNP0A03")',
    "Name (_SEG, Zero)",
    "Name (_BBN, Zero)",
    "Device (COM1)",
    'Name (_HID, EisaId ("PNP0501")',
    "Device (RTC)",
    'Name (_HID, EisaId ("PNP0B00")',
    "IO (Decode16,\n 0x0070, // Range Minimum\n 0x0070, // Range Maximum\n" +
    " 0x01, // Alignment\n 0x02, // Length",
    "IRQNoFlags ()\n {8}",
    "Device (MBRD)",
    'Name (_HID, EisaId ("PNP0C02")',
    "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,\n" +
    " 0x0000, // Granularity\n 0x0000, // Range Minimum\n 0x0000, // Range Maximum",
    "IO (Decode16,\n 0x0CF8, // Range Minimum\n 0x0CF8, // Range Maximum\n" +
    " 0x01, // Alignment\n 0x08, // Length",
    ` 0x0000, // Range Minimum\n 0x0CF7, // Range Maximum`,
    ` 0x${h(PCI_IO_START, 4)}, // Range Minimum\n 0x${h(PCI_IO_END - 1, 4)}, // Range Maximum`,
    "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,\n" +
    ` 0x00000000, // Granularity\n 0x${h(PCI_MMIO_START, 8)}, // Range Minimum\n` +
    ` 0x${h(PCI_MMIO_END - 1, 8)}, // Range Maximum`,
    "IO (Decode16,\n 0x03F8, // Range Minimum\n 0x03F8, // Range Maximum",
    "IRQNoFlags ()\n {4}",
    "Memory32Fixed (ReadWrite,\n 0xFEB00000, // Address Base\n 0x00100000, // Address Length",
    "IO (Decode16,\n 0x0600, // Range Minimum\n 0x0600, // Range Maximum\n" +
    " 0x01, // Alignment\n 0x03, // Length",
    "Name (_PRT, Package (0x7C)",
    "Name (\\_S5, Package (0x02)",
  ]);
  const qword = "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, " +
    "ReadWrite,\n 0x0000000000000000, // Granularity\n" +
    ` 0x${h(mmio64.gpa, 16)}, // Range Minimum\n` +
    ` 0x${h(mmio64.gpa + mmio64.size - 1, 16)}, // Range Maximum`;
  equal(count(s, "QWordMemory"), mmio64.size > 0 ? 1 : 0);
  if (mmio64.size > 0) ok(s.includes(qword), `DSDT lacks ${qword}:\n${dsl}`);
  const s5 = s.match(/Name \(\\_S5, Package \(0x02\)[^{]*\{\s*(\w+),\s*(\w+)\s*\}/);
  ok(s5, "the \\_S5 package");
  deepEqual([amlInt(s5[1]), amlInt(s5[2])], [5, 0]);

  // _PRT: slot << 16 | 0xffff, pin 0-3 (INTA#-INTD#), source 0, GSI = intxPin(slot, pin).
  const word = "(0x[0-9A-F]+|Zero|One)";
  const routes = [
    ...s.matchAll(
      new RegExp(
        `Package \\(0x04\\)\\s*\\{\\s*${word},\\s*${word},\\s*${word},\\s*${word}\\s*\\}`,
        "g",
      ),
    ),
  ].map((m) => m.slice(1, 5).map(amlInt));
  const expected: number[][] = [];
  for (let slot = 1; slot < 32; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      expected.push([slot * 0x1_0000 + 0xffff, pin - 1, 0, intxPin(slot, pin)]);
    }
  }
  equal(routes.length, 124);
  deepEqual(routes, expected);
}

/** Writes each table as a .dat, disassembles them in one iasl run, returns each .dsl. */
async function disassemble(
  dir: string,
  tables: Record<string, Uint8Array>,
): Promise<Record<string, string>> {
  const names = Object.keys(tables).map((signature) => signature.toLowerCase());
  for (const [signature, table] of Object.entries(tables)) {
    await Deno.writeFile(`${dir}/${signature.toLowerCase()}.dat`, table);
  }
  assertClean(`iasl -d in ${dir}`, await iasl(dir, "-d", ...names.map((n) => `${n}.dat`)));
  const dsl: Record<string, string> = {};
  for (const signature of Object.keys(tables)) {
    dsl[signature] = await Deno.readTextFile(`${dir}/${signature.toLowerCase()}.dsl`);
  }
  return dsl;
}

Deno.test("x86 tables: iasl -d reads every table as what we meant", async () => {
  const root = await Deno.makeTempDir({ prefix: "denovmm-acpi-" });
  try {
    for (const cpus of CPU_COUNTS) {
      for (const mmio64 of [MMIO64, NO_MMIO64]) {
        const blob = x86AcpiTables(machineAcpi(cpus, mmio64), BIOS_AREA, LIMIT);
        const { XSDT, FACP, APIC, MCFG, DSDT } = walk(blob);
        const dir = `${root}/${cpus}-${mmio64.size ? "mmio64" : "no-mmio64"}`;
        await Deno.mkdir(dir);
        const dsl = await disassemble(dir, { XSDT, FACP, APIC, MCFG, DSDT });
        checkXsdt(dsl.XSDT, blob);
        checkFacp(dsl.FACP, blob);
        checkApic(dsl.APIC, cpus);
        checkMcfg(dsl.MCFG);
        checkDsdt(dsl.DSDT, mmio64);
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("x86 tables: iasl -d reads x2APIC entries in a MADT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-acpi-" });
  try {
    const table = madt({
      apicIds: [0, 1, 300],
      lapicGpa: 0xfee0_0000,
      ioapicId: 3,
      ioapicGpa: 0xfec0_0000,
      overrides: [{ irq: 0, gsi: 0 }],
    });
    const s = squeeze((await disassemble(dir, { APIC: table })).APIC);
    equal(count(s, "[Processor Local APIC]"), 2);
    equal(count(s, "[Processor Local x2APIC]"), 1);
    equal(count(s, "[Local x2APIC NMI]"), 1);
    assertSays("APIC", s, [
      "[Processor Local x2APIC]\nLength : 10\nReserved : 0000\nProcessor x2Apic ID : 0000012C\n" +
      "Flags (decoded below) : 00000001\nProcessor Enabled : 1\nProcessor UID : 00000002",
      "[Local x2APIC NMI]\nLength : 0C\nFlags (decoded below) : 0000\nPolarity : 0\n" +
      "Trigger Mode : 0\nProcessor UID : FFFFFFFF\nInterrupt Input LINT : 01",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("x86 tables: iasl compiles the same RSDP from its fields", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-acpi-" });
  try {
    const blobs = [
      x86AcpiTables(machineAcpi(3, MMIO64), BIOS_AREA, LIMIT),
      // A high address: the XSDT's has non-zero bytes in 7 of its 8.
      x86AcpiTables(machineAcpi(1, NO_MMIO64), 0x1f_fedc_ba98_7650, LIMIT),
    ];
    for (const [i, blob] of blobs.entries()) {
      // The checksums are left 0: iasl computes both itself.
      await Deno.writeTextFile(
        `${dir}/rsdp${i}.asl`,
        [
          '[0008]                          Signature : "RSD PTR "',
          "[0001]                           Checksum : 00",
          '[0006]                             Oem ID : "DENOVM"',
          "[0001]                           Revision : 02",
          "[0004]                       RSDT Address : 00000000",
          "[0004]                             Length : 00000024",
          `[0008]                       XSDT Address : ${h(blob.tables.XSDT, 16)}`,
          "[0001]                  Extended Checksum : 00",
          "[0003]                           Reserved : 000000",
          "",
        ].join("\n"),
      );
      assertClean(`iasl rsdp${i}.asl`, await iasl(dir, `rsdp${i}.asl`));
      const theirs = await Deno.readFile(`${dir}/rsdp${i}.aml`);
      equal(hex(blob.bytes.subarray(0, 36)), hex(theirs));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
