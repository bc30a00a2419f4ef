// Expected bytes are worked out from ACPI 6.x chapter 20 and §6.4 by hand; the iasl test at the
// end checks the same encoder against ACPICA's own disassembler and compiler.
import { deepEqual, equal, ok } from "../assert.ts";
import { assertClean, hex, iasl, rangeError } from "./acpi_test_helpers.ts";
import {
  buffer,
  device,
  dwordMemory,
  eisaId,
  integer,
  io,
  irqNoFlags,
  memory32Fixed,
  method,
  name,
  nameString,
  pkg,
  pkgLength,
  qwordMemory,
  resourceTemplate,
  returnOp,
  scope,
  string,
  wordBusNumber,
  wordIo,
} from "../../src/acpi/aml.ts";

Deno.test("aml: name paths: root, parent, one, two and many segments, padding", () => {
  equal(hex(nameString("\\_SB_.PCI0")), "5c 2e 5f 53 42 5f 50 43 49 30");
  equal(hex(nameString("\\_SB.PCI0")), "5c 2e 5f 53 42 5f 50 43 49 30");
  equal(hex(nameString("_HID")), "5f 48 49 44");
  equal(hex(nameString("PCI0")), "50 43 49 30");
  equal(hex(nameString("\\_S5")), "5c 5f 53 35 5f");
  equal(hex(nameString("A")), "41 5f 5f 5f");
  equal(hex(nameString("A.B")), "2e 41 5f 5f 5f 42 5f 5f 5f");
  equal(
    hex(nameString("\\_SB_.PCI0.ISA")),
    "5c 2f 03 5f 53 42 5f 50 43 49 30 49 53 41 5f",
  );
  equal(hex(nameString("^^FOO")), "5e 5e 46 4f 4f 5f");
  equal(hex(nameString("^_SB.X")), "5e 2e 5f 53 42 5f 58 5f 5f 5f");
  equal(hex(nameString("\\")), "5c 00");
  equal(hex(nameString("^")), "5e 00");
  const max = nameString(Array(255).fill("ABCD").join("."));
  equal(max.length, 2 + 4 * 255);
  equal(hex(max.subarray(0, 2)), "2f ff");
});

Deno.test("aml: bad name paths throw RangeError", () => {
  for (
    const bad of [
      "",
      "pci0",
      "PCI01",
      "0ABC",
      "\\^ABC",
      "^\\ABC",
      "\\\\ABC",
      "_SB_..PCI0",
      "_SB_.",
      ".PCI0",
      "A-B",
      "\\_SB_.PC I",
    ]
  ) {
    rangeError(() => nameString(bad), /name segment|empty name path/);
  }
  rangeError(() => nameString(Array(256).fill("A").join(".")), /256 segments, at most 255/);
});

Deno.test("aml: PkgLength counts its own bytes, at each size boundary", () => {
  equal(hex(pkgLength(0)), "01");
  equal(hex(pkgLength(62)), "3f"); // total 63: the most one byte holds
  equal(hex(pkgLength(63)), "41 04"); // total 64 needs a second byte, so it is 65 = 0x041
  equal(hex(pkgLength(64)), "42 04");
  equal(hex(pkgLength(4093)), "4f ff"); // total 4095 = 0xfff: the most two bytes hold
  equal(hex(pkgLength(4094)), "81 00 01"); // total 4096 needs a third byte: 4097 = 0x1001
  equal(hex(pkgLength(0xffffc)), "8f ff ff"); // total 0xfffff: the most three bytes hold
  equal(hex(pkgLength(0xffffd)), "c1 00 00 01"); // 0x100001
  equal(hex(pkgLength(1 << 20)), "c4 00 00 01"); // 1 MiB + 4 = 0x100004
  equal(hex(pkgLength(2 ** 28 - 5)), "cf ff ff ff"); // total 2^28 - 1
  rangeError(() => pkgLength(2 ** 28 - 4), /package content length/);
  rangeError(() => pkgLength(-1));
  rangeError(() => pkgLength(1.5));
});

Deno.test("aml: integers take the shortest prefix", () => {
  equal(hex(integer(0)), "00");
  equal(hex(integer(1)), "01");
  equal(hex(integer(2)), "0a 02");
  equal(hex(integer(0xff)), "0a ff");
  equal(hex(integer(0x100)), "0b 00 01");
  equal(hex(integer(0xffff)), "0b ff ff");
  equal(hex(integer(0x10000)), "0c 00 00 01 00");
  equal(hex(integer(0xffffffff)), "0c ff ff ff ff");
  equal(hex(integer(2 ** 32)), "0e 00 00 00 00 01 00 00 00");
  equal(hex(integer(0x1234_5678_9abc)), "0e bc 9a 78 56 34 12 00 00");
  equal(hex(integer(Number.MAX_SAFE_INTEGER)), "0e ff ff ff ff ff ff 1f 00");
  for (const bad of [-1, 1.5, 2 ** 53, NaN, Infinity]) rangeError(() => integer(bad), /integer/);
});

Deno.test("aml: strings are NUL-terminated ASCII", () => {
  equal(hex(string("PNP")), "0d 50 4e 50 00");
  equal(hex(string("")), "0d 00");
  equal(hex(string("\x01~\x7f")), "0d 01 7e 7f 00");
  rangeError(() => string("caf\u00e9"), /non-ASCII or NUL character at index 3/);
  rangeError(() => string("a\0b"), /index 1/);
});

Deno.test("aml: EISA IDs compress like iasl's EisaId(), always as a DWord", () => {
  equal(hex(eisaId("PNP0A03")), "0c 41 d0 0a 03");
  equal(new DataView(eisaId("PNP0A03").buffer).getUint32(1, true), 0x030ad041);
  equal(hex(eisaId("PNP0A08")), "0c 41 d0 0a 08");
  equal(hex(eisaId("PNP0501")), "0c 41 d0 05 01");
  equal(hex(eisaId("PNP0C02")), "0c 41 d0 0c 02");
  equal(hex(eisaId("PNP0000")), "0c 41 d0 00 00"); // integer() would have used a Word
  equal(hex(eisaId("QEM0001")), "0c 44 ad 00 01");
  equal(hex(eisaId("ZZZFFFF")), "0c 6b 5a ff ff");
  for (const bad of ["pnp0a03", "PNP0a03", "PNP0A0", "PNP0A033", "PNP0A0G", "PN10A03", ""]) {
    rangeError(() => eisaId(bad), /EISA ID/);
  }
});

Deno.test("aml: a Device with _HID and _UID inside a Scope", () => {
  const pci0 = device("PCI0", name("_HID", eisaId("PNP0A08")), name("_UID", integer(0)));
  // 4 (name) + 10 (_HID) + 6 (_UID) = 20 bytes after a 1-byte PkgLength of 21.
  equal(
    hex(pci0),
    "5b 82 15 50 43 49 30 08 5f 48 49 44 0c 41 d0 0a 08 08 5f 55 49 44 00",
  );
  equal(hex(scope("\\_SB_")), "10 06 5c 5f 53 42 5f");
  const sb = scope("\\_SB_", pci0);
  equal(hex(sb.subarray(0, 7)), "10 1d 5c 5f 53 42 5f"); // 5 + 23 = 28, plus itself
  equal(hex(sb.subarray(7)), hex(pci0));
});

Deno.test("aml: a Method returning a constant, and its flags", () => {
  equal(hex(method("_STA", 0, false, returnOp(integer(0x0f)))), "14 09 5f 53 54 41 00 a4 0a 0f");
  equal(hex(method("FOO", 2, true)), "14 06 46 4f 4f 5f 0a");
  equal(hex(method("FOO", 7, true)), "14 06 46 4f 4f 5f 0f");
  equal(
    hex(method("_CRS", 0, true, returnOp(resourceTemplate(irqNoFlags(4))))),
    "14 10 5f 43 52 53 08 a4 11 08 0a 05 22 10 00 79 00",
  );
  equal(hex(returnOp(string("A"))), "a4 0d 41 00");
  rangeError(() => method("FOO", 8, false), /method argument count/);
  rangeError(() => method("FOO", -1, false));
  rangeError(() => method("foo", 0, false), /name segment/);
});

Deno.test("aml: a package of packages (_PRT) and _S5_", () => {
  const entry = (device: number, pin: number, gsi: number) =>
    pkg(integer((device << 16) | 0xffff), integer(pin), integer(0), integer(gsi));
  equal(
    hex(name("_PRT", pkg(entry(1, 0, 16), entry(2, 1, 17)))),
    "08 5f 50 52 54 12 1a 02 " +
      "12 0b 04 0c ff ff 01 00 00 00 0a 10 " +
      "12 0b 04 0c ff ff 02 00 01 00 0a 11",
  );
  equal(hex(name("\\_S5", pkg(integer(5), integer(0)))), "08 5c 5f 53 35 5f 12 05 02 0a 05 00");
  equal(hex(pkg()), "12 02 00");
  const full = pkg(...Array(255).fill(integer(0)));
  equal(hex(full.subarray(0, 4)), "12 42 10 ff"); // 1 + 255 = 256 bytes after, 258 = 0x102
  equal(full.length, 4 + 255);
  rangeError(() => pkg(...Array(256).fill(integer(0))), /256 elements, at most 255/);
});

Deno.test("aml: buffers size themselves with integer(), and refuse to outgrow a PkgLength", () => {
  equal(hex(buffer(Uint8Array.of(1, 2, 3))), "11 06 0a 03 01 02 03");
  equal(hex(buffer(new Uint8Array(0))), "11 02 00");
  equal(hex(buffer(Uint8Array.of(9))), "11 03 01 09");
  const big = buffer(new Uint8Array(300));
  equal(hex(big.subarray(0, 5)), "11 41 13 0b 2c"); // 3 + 300 = 303 after, 305 = 0x131
  equal(big.length, 305 + 1);
  // 256 views of one MiB (128 of two for a package, capped at 255 elements): the size is
  // refused before anything that large is allocated.
  const mib = new Uint8Array(1 << 20);
  rangeError(() => scope("X", ...Array(256).fill(mib)), /package content length/);
  rangeError(() => device("X", ...Array(256).fill(mib)), /package content length/);
  rangeError(() => method("X", 0, false, ...Array(256).fill(mib)), /package content length/);
  const twoMib = new Uint8Array(2 << 20);
  rangeError(() => pkg(...Array(128).fill(twoMib)), /package content length/);
});

Deno.test("aml: resourceTemplate appends the End Tag with checksum 0", () => {
  equal(hex(resourceTemplate()), "11 05 0a 02 79 00");
  equal(hex(resourceTemplate(irqNoFlags(4))), "11 08 0a 05 22 10 00 79 00");
  equal(
    hex(resourceTemplate(io(0x3f8, 0x3f8, 0, 8), irqNoFlags(4))),
    "11 10 0a 0d 47 01 f8 03 f8 03 00 08 22 10 00 79 00",
  );
});

Deno.test("aml: IO and IRQNoFlags descriptors", () => {
  equal(hex(io(0xcf8, 0xcf8, 1, 8)), "47 01 f8 0c f8 0c 01 08");
  equal(hex(io(0, 0xffff, 0xff, 0xff)), "47 01 00 00 ff ff ff ff");
  rangeError(() => io(0x10000, 0x10000, 1, 1), /I\/O port minimum/);
  rangeError(() => io(0x10, 0x10000, 1, 1), /I\/O port maximum/);
  rangeError(() => io(0x3f8, 0x2f8, 1, 8), /minimum 0x3f8 is above its maximum 0x2f8/);
  rangeError(() => io(0x3f8, 0x3f8, 256, 8), /alignment/);
  rangeError(() => io(0x3f8, 0x3f8, 1, 256), /length/);
  rangeError(() => io(-1, 0x3f8, 1, 8));

  equal(hex(irqNoFlags(4)), "22 10 00");
  equal(hex(irqNoFlags(0, 15)), "22 01 80");
  equal(hex(irqNoFlags(3, 4, 8)), "22 18 01");
  equal(hex(irqNoFlags()), "22 00 00");
  rangeError(() => irqNoFlags(16), /IRQ must be an integer in \[0, 0xf\], got 16/);
  rangeError(() => irqNoFlags(-1));
  rangeError(() => irqNoFlags(4, 4), /IRQ 4 listed twice/);
});

Deno.test("aml: Word address space descriptors (bus numbers, I/O window)", () => {
  // tag, length 13, type, general flags (MinFixed MaxFixed, producer, PosDecode), type flags,
  // granularity, min, max, translation, length.
  equal(
    hex(wordBusNumber(0, 0xff)),
    "88 0d 00 02 0c 00 00 00 00 00 ff 00 00 00 00 01",
  );
  equal(
    hex(wordBusNumber(0x10, 0x1f)),
    "88 0d 00 02 0c 00 00 00 10 00 1f 00 00 00 10 00",
  );
  rangeError(() => wordBusNumber(2, 1), /bus number minimum 0x2 is above its maximum 0x1/);
  rangeError(() => wordBusNumber(0, 0x10000), /bus number maximum/);
  rangeError(() => wordBusNumber(0, 0xffff), /range length/);

  equal(hex(wordIo(0, 0xcf7)), "88 0d 00 01 0c 03 00 00 00 00 f7 0c 00 00 f8 0c");
  equal(hex(wordIo(0xd00, 0xffff)), "88 0d 00 01 0c 03 00 00 00 0d ff ff 00 00 00 f3");
  rangeError(() => wordIo(0xd00, 0xcf7), /I\/O window minimum/);
  rangeError(() => wordIo(0, 0x10000), /I\/O window maximum/);
  rangeError(() => wordIo(0, 0xffff), /I\/O window length/);
});

Deno.test("aml: DWordMemory and QWordMemory descriptors", () => {
  // tag, length 23, type 0, general flags, type flags (ReadWrite, NonCacheable), then the
  // DWords granularity, min, max, translation, length.
  equal(
    hex(dwordMemory(0xc0000000, 0xfebfffff)),
    "87 17 00 00 0c 01 00 00 00 00 00 00 00 c0 ff ff bf fe 00 00 00 00 00 00 c0 3e",
  );
  equal(hex(dwordMemory(0, 0xfff, { cacheable: true }).subarray(5, 6)), "03");
  equal(hex(dwordMemory(0, 0xfff, { readWrite: false }).subarray(5, 6)), "00");
  equal(hex(dwordMemory(0, 0xfff, { cacheable: true, readWrite: false }).subarray(5, 6)), "02");
  equal(hex(dwordMemory(0, 0xfffffffe).subarray(22)), "ff ff ff ff");
  rangeError(() => dwordMemory(0x2000, 0x1fff), /32-bit memory window minimum/);
  rangeError(() => dwordMemory(0, 2 ** 32), /32-bit memory window maximum/);
  rangeError(() => dwordMemory(0, 0xffffffff), /32-bit memory window length/);

  // tag, length 43, type 0, general flags, type flags (ReadWrite, Cacheable), then QWords.
  const q = qwordMemory(0x1_0000_0000, 0x1f_ffff_ffff, { cacheable: true });
  equal(
    hex(q),
    "8a 2b 00 00 0c 03 " +
      "00 00 00 00 00 00 00 00 " +
      "00 00 00 00 01 00 00 00 " +
      "ff ff ff ff 1f 00 00 00 " +
      "00 00 00 00 00 00 00 00 " +
      "00 00 00 00 1f 00 00 00",
  );
  equal(hex(qwordMemory(0, 0xfff).subarray(5, 6)), "01");
  const top = qwordMemory(2 ** 52, Number.MAX_SAFE_INTEGER);
  equal(hex(top.subarray(14, 30)), "00 00 00 00 00 00 10 00 ff ff ff ff ff ff 1f 00");
  equal(hex(top.subarray(38)), "00 00 00 00 00 00 10 00");
  rangeError(() => qwordMemory(2 ** 33, 2 ** 32), /64-bit memory window minimum/);
  rangeError(() => qwordMemory(0, 2 ** 53), /64-bit memory window maximum/);
  rangeError(() => qwordMemory(0, Number.MAX_SAFE_INTEGER), /64-bit memory window length/);
});

Deno.test("aml: Memory32Fixed descriptor", () => {
  equal(hex(memory32Fixed(0xfec00000, 0x1000, true)), "86 09 00 01 00 00 c0 fe 00 10 00 00");
  equal(hex(memory32Fixed(0xfed00000, 0x400, false)), "86 09 00 00 00 00 d0 fe 00 04 00 00");
  equal(hex(memory32Fixed(0xfffff000, 0x1000, true)), "86 09 00 01 00 f0 ff ff 00 10 00 00");
  rangeError(() => memory32Fixed(0xfffff000, 0x1001, true), /runs past 4 GiB/);
  rangeError(() => memory32Fixed(2 ** 32, 0, true), /fixed memory base/);
  rangeError(() => memory32Fixed(0, 2 ** 32, true), /fixed memory length/);
});

// --- Against ACPICA's iasl -----------------------------------------------------------------

/** An ACPI table header (ACPI 6.x §5.2.6) around `body`, with the checksum that zeroes the sum. */
function acpiTable(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const table = new Uint8Array(36 + body.length);
  const d = new DataView(table.buffer);
  const ascii = (off: number, s: string) => table.set(new TextEncoder().encode(s), off);
  ascii(0, signature);
  d.setUint32(4, table.length, true);
  d.setUint8(8, revision);
  ascii(10, "DENOVM"); // OEM ID
  ascii(16, "AMLTEST "); // OEM table ID
  d.setUint32(24, 1, true); // OEM revision
  ascii(28, "DNVM"); // creator ID
  d.setUint32(32, 1, true); // creator revision
  table.set(body, 36);
  d.setUint8(9, (0x100 - (table.reduce((s, b) => s + b, 0) & 0xff)) & 0xff);
  return table;
}

/** A DSDT body in the shape denovmm's will have, using every encoder. */
function sampleDsdtBody(): Uint8Array {
  const prtEntry = (slot: number, pin: number, gsi: number) =>
    pkg(integer(slot * 0x10000 + 0xffff), integer(pin), integer(0), integer(gsi));
  return Uint8Array.from([
    ...scope(
      "\\_SB_",
      device(
        "PCI0",
        name("_HID", eisaId("PNP0A08")),
        name("_CID", eisaId("PNP0A03")),
        name("_UID", integer(0)),
        name(
          "_CRS",
          resourceTemplate(
            wordBusNumber(0, 0xff),
            io(0xcf8, 0xcf8, 1, 8),
            wordIo(0, 0xcf7),
            wordIo(0xd00, 0xffff),
            dwordMemory(0xc0000000, 0xfebfffff),
            qwordMemory(0x1_0000_0000, 0x1f_ffff_ffff, { cacheable: true }),
            memory32Fixed(0xfec00000, 0x1000, true),
            irqNoFlags(9),
          ),
        ),
        name("_PRT", pkg(prtEntry(1, 0, 16), prtEntry(1, 1, 17), prtEntry(2, 0, 18))),
        method("_STA", 0, false, returnOp(integer(0x0f))),
      ),
      device(
        "COM1",
        name("_HID", eisaId("PNP0501")),
        name("_UID", integer(1)),
        name("_CRS", resourceTemplate(io(0x3f8, 0x3f8, 0, 8), irqNoFlags(4))),
      ),
      device(
        "RES0",
        name("_HID", eisaId("PNP0C02")),
        name("VMMN", string("denovmm reserved")),
        name("_CRS", resourceTemplate(memory32Fixed(0xfed00000, 0x400, false))),
        // Over 4 KiB, so its PkgLength, the Device's and the Scope's take three bytes each.
        name("BLOB", buffer(new Uint8Array(5000).map((_, i) => i))),
        method("_DSM", 4, true, returnOp(buffer(Uint8Array.of(0)))),
      ),
    ),
    ...name("\\_S5_", pkg(integer(5), integer(0))),
  ]);
}

Deno.test("aml: iasl disassembles a sample DSDT and recompiles it identically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-aml-" });
  try {
    const table = acpiTable("DSDT", 2, sampleDsdtBody());
    equal(table.reduce((s, b) => s + b, 0) & 0xff, 0);
    await Deno.writeFile(`${dir}/dsdt.aml`, table);

    assertClean("iasl -d", await iasl(dir, "-d", "dsdt.aml"));
    const dsl = await Deno.readTextFile(`${dir}/dsdt.dsl`);
    const expected = [
      "Scope (\\_SB)",
      "Device (PCI0)",
      'Name (_HID, EisaId ("PNP0A08")',
      'Name (_CID, EisaId ("PNP0A03")',
      "Name (_UID, Zero)",
      "Name (_UID, One)",
      'EisaId ("PNP0501")',
      'EisaId ("PNP0C02")',
      "ResourceTemplate ()",
      "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
      "IO (Decode16,",
      "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,",
      "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
      "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,",
      "Memory32Fixed (ReadWrite,",
      "Memory32Fixed (ReadOnly,",
      "IRQNoFlags ()",
      "Name (_PRT, Package (0x03)",
      "Method (_STA, 0, NotSerialized)",
      "Method (_DSM, 4, Serialized)",
      "Return (0x0F)",
      'Name (VMMN, "denovmm reserved")',
      "Name (BLOB, Buffer (0x1388)",
      "Name (\\_S5, Package (0x02)",
    ];
    const missing = expected.filter((e) => !dsl.includes(e));
    deepEqual(missing, [], `iasl -d's output lacks ${JSON.stringify(missing)}`);
    // The disassembler flags descriptors it could not make sense of inside the .dsl itself.
    ok(!/\*\*\*\*|Error|Warning/.test(dsl), `iasl -d output has complaints:\n${dsl}`);

    // -oa: no optimizations, so the compiler keeps each name path and integer as written.
    assertClean("iasl -oa", await iasl(dir, "-oa", "-p", "again", "dsdt.dsl"));
    const again = await Deno.readFile(`${dir}/again.aml`);
    equal(hex(again.subarray(36)), hex(table.subarray(36)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
