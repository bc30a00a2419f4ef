import { equal, ok, throws } from "../../../assert.ts";
import {
  MAX_MPTABLE_CPUS,
  mpTable,
  MPTABLE_GPA,
  MpTableError,
  mptableSize,
  writeMpTable,
} from "../../../../src/arch/x86_64/boot/mptable.ts";
import { GuestMemory } from "../../../../src/memory/guest_memory.ts";
import { memoryLayout } from "../../../../src/arch/x86_64/memory_map.ts";

const sum = (bytes: Uint8Array) => bytes.reduce((a, b) => a + b, 0) & 0xff;
const ascii = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Parse the table the way Linux's mpparse would, from the floating pointer on. */
function parse(mem: GuestMemory) {
  const fp = mem.read(MPTABLE_GPA, 16);
  equal(ascii(fp.subarray(0, 4)), "_MP_");
  equal(sum(fp), 0, "floating pointer checksum");
  equal(fp[8], 1); // length in 16-byte units
  equal(fp[9], 4); // MP spec 1.4
  const tableGpa = mem.readU32(MPTABLE_GPA + 4);
  const length = mem.readU16(tableGpa + 4);
  const table = mem.read(tableGpa, length);
  equal(ascii(table.subarray(0, 4)), "PCMP");
  equal(sum(table), 0, "configuration table checksum");
  equal(mem.readU32(tableGpa + 36), 0xfee0_0000); // local APIC address
  const count = mem.readU16(tableGpa + 34);
  const entries: Uint8Array[] = [];
  let at = 44;
  for (let i = 0; i < count; i++) {
    const size = table[at] === 0 ? 20 : 8;
    entries.push(table.subarray(at, at + size));
    at += size;
  }
  equal(at, length, "entries fill the table exactly");
  return { tableGpa, length, entries };
}

for (const cpus of [1, 4]) {
  Deno.test(`mptable: ${cpus} CPU(s): checksums hold and every CPU, the bus, IOAPIC and IRQs appear`, () => {
    const layout = memoryLayout(64 * 1024 * 1024);
    const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
    writeMpTable(mem, cpus);
    const { tableGpa, length, entries } = parse(mem);
    equal(MPTABLE_GPA + 16 + length, MPTABLE_GPA + mptableSize(cpus));
    ok(tableGpa >= 0xf0000 && tableGpa + length <= 0x100000, "inside the reserved BIOS area");

    const processors = entries.filter((e) => e[0] === 0);
    equal(processors.length, cpus);
    processors.forEach((p, i) => {
      equal(p[1], i); // APIC id
      equal(p[3], i === 0 ? 0x3 : 0x1); // enabled, BSP only for APIC id 0
    });
    const buses = entries.filter((e) => e[0] === 1);
    equal(buses.length, 1);
    equal(ascii(buses[0].subarray(2, 8)), "ISA   ");
    const ioapics = entries.filter((e) => e[0] === 2);
    equal(ioapics.length, 1);
    equal(ioapics[0][1], cpus); // IOAPIC id follows the CPUs'
    equal(ioapics[0][2], 0x11);
    equal(new DataView(ioapics[0].buffer, ioapics[0].byteOffset).getUint32(4, true), 0xfec0_0000);
    const irqs = entries.filter((e) => e[0] === 3);
    equal(irqs.length, 16);
    irqs.forEach((e, irq) => {
      equal(e[5], irq); // source bus IRQ
      equal(e[6], cpus); // destination IOAPIC
      equal(e[7], irq); // identity: ISA IRQ i -> pin i
    });
    const lints = entries.filter((e) => e[0] === 4);
    equal(lints.length, 2);
    equal(lints[0][1], 3); // ExtINT
    equal(lints[0][7], 0); // -> LINT0
    equal(lints[1][1], 1); // NMI
    equal(lints[1][7], 1); // -> LINT1
    // Entries come in ascending type order (MP spec §4.3).
    const types = entries.map((e) => e[0]);
    equal(types.join(), [...types].sort().join());
  });
}

Deno.test("mptable: 255 CPUs fit in the BIOS area; 0, 256 and fractions are refused", () => {
  ok(MAX_MPTABLE_CPUS >= 255);
  equal(MPTABLE_GPA, 0xf0000);
  ok(MPTABLE_GPA + mptableSize(255) <= 0x100000);
  const bytes = mpTable(255);
  const ioapic = bytes.subarray(16 + 44 + 255 * 20 + 8, 16 + 44 + 255 * 20 + 16);
  equal(ioapic[0], 2, "IOAPIC entry after the CPUs and the bus");
  equal(ioapic[1], 0xfe, "IOAPIC id stays below the broadcast id");
  throws(() => mpTable(256), MpTableError);
  throws(() => mpTable(0), MpTableError);
  throws(() => mpTable(1.5), MpTableError);
});

Deno.test("mptable: PCI INTx routes put the PCI bus at id 0 and level/low entries behind it", () => {
  const bytes = mpTable(1, [{ slot: 1, pin: 1, ioapicPin: 16 }, {
    slot: 3,
    pin: 2,
    ioapicPin: 18,
  }]);
  equal(bytes.length, mptableSize(1, 2));
  const at = 16 + 44 + 20; // after the floating pointer, the header and one CPU
  equal(ascii(bytes.subarray(at + 2, at + 8)), "PCI   ");
  equal(bytes[at + 1], 0, "PCI is bus 0: Linux matches MP bus ids to PCI bus numbers");
  equal(ascii(bytes.subarray(at + 10, at + 16)), "ISA   ");
  equal(bytes[at + 9], 1);
  const pci = at + 16 + 8 + 16 * 8; // then the IOAPIC and the 16 ISA entries
  // type 3, INT, flags 0x0f (active low, level), bus 0, IRQ (slot << 2 | pin - 1), APIC, pin
  equal([...bytes.subarray(pci, pci + 8)].join(), [3, 0, 0x0f, 0, 0, 4, 1, 16].join());
  equal([...bytes.subarray(pci + 8, pci + 16)].join(), [3, 0, 0x0f, 0, 0, 13, 1, 18].join());
  equal(sum(bytes.subarray(16, 16 + new DataView(bytes.buffer).getUint16(20, true))), 0);
});
