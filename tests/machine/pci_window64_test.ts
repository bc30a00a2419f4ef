// The 64-bit PCI MMIO window above RAM: a passed-through device with a BAR too large for the
// 32-bit hole (8 GiB, its MSI-X table 2 GiB into it, as tests/vfio's bit-31 test) is planned
// there, and the guest reaches it, and moves BARs above 4 GiB, through the machine's buses.
import { deepEqual, equal, ok, throws } from "../assert.ts";
import { memoryLayout, pciMmio64Window } from "../../src/arch/x86_64/memory_map.ts";
import { PCI_MMIO_END } from "../../src/arch/x86_64/pci.ts";
import { machine, VFIO_SLOT, vfioSlots } from "./pci_machine.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const RAM = 3500 * MiB; // RAM on both sides of the hole: 3 GiB below, 428 MiB from 4 GiB
/** An 8 GiB BAR 4 with the MSI-X table at 2 GiB and the PBA at 2 GiB + 4 KiB. */
const BIG_BAR4 = { bar4Size: 8 * GiB, msixTable: 0x8000_0000 | 4, msixPba: 0x8000_1000 | 4 };
const window = pciMmio64Window(memoryLayout(RAM), 40);

function bigMachine() {
  const m = machine({ ramBytes: RAM, mmio64: window, device: BIG_BAR4 });
  const bar = (reg: number) =>
    m.cfgRead(VFIO_SLOT, reg + 4, 4) * 2 ** 32 + ((m.cfgRead(VFIO_SLOT, reg, 4) & ~0xf) >>> 0);
  const access = (gpa: number) => {
    const e = m.mmio.find(gpa, 4);
    ok(e, `0x${gpa.toString(16)} is on the MMIO bus`);
    return e;
  };
  const write32 = (gpa: number, value: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value, true);
    const e = access(gpa);
    e.device.write(gpa - e.base, b);
  };
  const read32 = (gpa: number) => {
    const b = new Uint8Array(4);
    const e = access(gpa);
    e.device.read(gpa - e.base, b);
    return new DataView(b.buffer).getUint32(0, true);
  };
  return { ...m, bar, write32, read32 };
}

Deno.test("pci window64: an 8 GiB BAR 4 is planned above RAM, and its MSI-X table at 2 GiB answers", () => {
  const { plan, layout, bar, cfgWrite, write32, read32, mmio, dev, lines } = bigMachine();
  const ramTop = Math.max(
    ...layout.regions.map((r) => r.gpa + r.size),
    ...layout.e820().map((e) => e.gpa + e.size),
  );
  deepEqual(plan.mmio64, window);
  ok(window.gpa >= ramTop && window.gpa % GiB === 0, "the window starts above RAM and the E820");
  const bar4 = bar(0x20);
  equal(bar4, 8 * GiB, "BAR 4 at the window's first 8 GiB boundary");
  ok(bar4 >= window.gpa && bar4 + 8 * GiB <= window.gpa + window.size);
  ok(bar(0x18) + 0x1000 <= PCI_MMIO_END, "the 4 KiB 64-bit BAR 2 stays in the 32-bit hole");
  equal(mmio.find(bar4, 4)?.name, "pci mmio64 window");
  // Memory decoding on; vector 0's entry written through the bus, then read back.
  cfgWrite(VFIO_SLOT, 0x04, 2, 0x0002);
  const table = bar4 + 0x8000_0000;
  write32(table, 0xfee0_1000);
  write32(table + 4, 0);
  write32(table + 8, 0x4041);
  write32(table + 12, 0); // unmasked
  deepEqual(
    [read32(table), read32(table + 4), read32(table + 8), read32(table + 12)],
    [0xfee0_1000, 0, 0x4041, 0],
  );
  equal(read32(table + 28), 1, "vector 1 untouched: masked, as at reset");
  equal(read32(bar4 + 0x8000_1000), 0, "the PBA, 4 KiB after the table: nothing pending");
  equal(lines.length, 0);
  dev.close();
});

Deno.test("pci window64: without the window the 8 GiB BAR has no room", () => {
  throws(
    () => machine({ ramBytes: RAM, device: BIG_BAR4 }),
    RangeError,
    "PCI MMIO window exhausted",
  );
});

Deno.test("pci window64: BARs the guest moves above 4 GiB get their slots, or trap, and answer there", () => {
  const { vm, bar, cfgWrite, write32, read32, mmio, dev, lines, tick } = bigMachine();
  cfgWrite(VFIO_SLOT, 0x04, 2, 0x0002);
  const [bar2Slot] = vfioSlots(vm);
  ok(bar2Slot && bar2Slot[1] < 2 ** 32, "BAR 2's page has a slot in the hole");
  // BAR 2 to 20 GiB, in the window: low dword then high, as Linux writes a 64-bit BAR.
  cfgWrite(VFIO_SLOT, 0x18, 4, 0x0000_0004);
  cfgWrite(VFIO_SLOT, 0x1c, 4, 0x5);
  equal(bar(0x18), 20 * GiB);
  deepEqual(vfioSlots(vm), [[bar2Slot[0], 20 * GiB]], "its slot follows it above 4 GiB");
  equal(lines.length, 0);
  // Over the RAM above 4 GiB: refused (EEXIST), one line, the VM goes on.
  cfgWrite(VFIO_SLOT, 0x1c, 4, 0x1);
  deepEqual(vfioSlots(vm), []);
  equal(lines.length, 1);
  ok(lines[0].includes("BAR 2 at 0x100000000") && lines[0].includes("EEXIST"), lines[0]);
  // BAR 4 moved from 8 GiB to 64 GiB: the MSI-X table answers at its new place only.
  const old = bar(0x20);
  tick();
  cfgWrite(VFIO_SLOT, 0x24, 4, 0x10);
  equal(bar(0x20), 64 * GiB);
  write32(64 * GiB + 0x8000_0000, 0xfee0_2000);
  equal(read32(64 * GiB + 0x8000_0000), 0xfee0_2000);
  equal(read32(old + 0x8000_0000), 0xffff_ffff, "nothing decodes where BAR 4 was");
  // A sizing pattern (all ones in both dwords) places nothing and ends nothing.
  cfgWrite(VFIO_SLOT, 0x18, 4, 0xffff_ffff);
  cfgWrite(VFIO_SLOT, 0x1c, 4, 0xffff_ffff);
  deepEqual(vfioSlots(vm), []);
  equal(mmio.find(64 * GiB, 4)?.name, "pci mmio64 window");
  dev.close();
});
