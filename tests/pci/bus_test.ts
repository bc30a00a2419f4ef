import { deepEqual, equal, ok, throws } from "../assert.ts";
import { PciBus, type PciFunction } from "../../src/pci/bus.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";

/** A function with one 4 KiB memory BAR that records accesses. */
function recorder(slot: number) {
  const config = new PciConfigSpace(PciConfigSpace.createState());
  config.setIds({
    vendorId: 0x1af4,
    deviceId: 0x1040 + slot,
    classCode: 0xff0000,
    revision: 1,
    subsystemVendorId: 0,
    subsystemId: 0,
  });
  config.addBar(0, { kind: "mem32", size: 0x1000 });
  const seen: Array<[string, number, number]> = [];
  const fn: PciFunction = {
    config,
    barRead: (i, o, data) => {
      seen.push(["r", i, o]);
      data.fill(0x5a);
    },
    barWrite: (i, o) => void seen.push(["w", i, o]),
  };
  return { fn, config, seen };
}

const conf1Address = (slot: number, reg: number) => (0x8000_0000 | (slot << 11) | reg) >>> 0;
const le = (v: number, n: number) =>
  Uint8Array.from({ length: n }, (_, i) => (v >>> (8 * i)) & 0xff);

function cfgRead(bus: PciBus, slot: number, reg: number, size: number): number {
  bus.conf1.write(0, le(conf1Address(slot, reg & ~3), 4));
  const data = new Uint8Array(size);
  bus.conf1.read(4 + (reg & 3), data);
  return data.reduceRight((v, b) => v * 256 + b, 0);
}

function cfgWrite(bus: PciBus, slot: number, reg: number, size: number, value: number): void {
  bus.conf1.write(0, le(conf1Address(slot, reg & ~3), 4));
  bus.conf1.write(4 + (reg & 3), le(value, size));
}

Deno.test("pci bus: conf1 reads ids of present slots and all-ones elsewhere, at every width", () => {
  const bus = new PciBus(PciBus.createState());
  const a = recorder(3);
  bus.add(3, a.fn);
  equal(cfgRead(bus, 3, 0, 4), 0x1043_1af4);
  equal(cfgRead(bus, 3, 2, 2), 0x1043);
  equal(cfgRead(bus, 3, 1, 1), 0x1a);
  equal(cfgRead(bus, 4, 0, 4), 0xffff_ffff, "empty slot");
  // The address latch reads back, and conf1 without the enable bit selects nothing.
  const data = new Uint8Array(4);
  bus.conf1.read(0, data);
  equal(
    new DataView(data.buffer).getUint32(0, true),
    conf1Address(4, 0),
    "the last address written",
  );
  bus.conf1.write(0, le(3 << 11, 4));
  bus.conf1.read(4, data);
  deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
});

Deno.test("pci bus: the MMIO window follows BAR moves and the memory-decode bit", () => {
  const bus = new PciBus(PciBus.createState());
  const a = recorder(1);
  bus.add(1, a.fn);
  let unclaimed = 0;
  const window = bus.window(0xc000_0000, "memory", () => unclaimed++);
  a.config.setBarAddress(0, 0xc000_0000);
  const data = new Uint8Array(4);
  window.read(0x10, data);
  equal(unclaimed, 1, "memory decoding is off until the guest enables it");
  cfgWrite(bus, 1, 0x04, 2, 0x0002);
  window.read(0x10, data);
  deepEqual(a.seen, [["r", 0, 0x10]]);
  // The guest moves the BAR: the old address goes dead, the new one reaches the device.
  cfgWrite(bus, 1, 0x10, 4, 0xc010_0000);
  window.write(0x10, data);
  window.write(0x10_0ffc, data);
  equal(unclaimed, 2);
  deepEqual(a.seen.at(-1), ["w", 0, 0xffc]);
  // An access straddling the BAR's end belongs to nobody.
  window.read(0x10_0ffe, data);
  equal(unclaimed, 3);
});

Deno.test("pci bus: an I/O window reaches I/O BARs only while I/O decoding is on", () => {
  const bus = new PciBus(PciBus.createState());
  const config = new PciConfigSpace(PciConfigSpace.createState());
  config.addBar(2, { kind: "io", size: 32 });
  const seen: number[] = [];
  bus.add(1, { config, barRead: (_i, o, d) => (seen.push(o), d.fill(7)), barWrite: () => {} });
  let unclaimed = 0;
  const io = bus.window(0x1000, "io", () => unclaimed++);
  cfgWrite(bus, 1, 0x18, 4, 0xc040); // the guest assigns the BAR
  const data = new Uint8Array(2);
  io.read(0xc044 - 0x1000, data);
  equal(unclaimed, 1, "I/O decoding off");
  cfgWrite(bus, 1, 0x04, 2, 0x0001);
  io.read(0xc044 - 0x1000, data);
  deepEqual(seen, [4]);
  deepEqual([...data], [7, 7]);
});

Deno.test("pci bus: a window asks only the functions with a BAR in its space, and is made last", () => {
  const bus = new PciBus(PciBus.createState());
  const asked: string[] = [];
  const counted = (name: string, config: PciConfigSpace) => ({
    config: {
      read: (o: number, s: number) => config.read(o, s),
      write: (o: number, s: number, v: number) => config.write(o, s, v),
      declaresBars: (space: "memory" | "io") => config.declaresBars(space),
      barContaining: (addr: number, len: number, space: "memory" | "io") => {
        asked.push(name);
        return config.barContaining(addr, len, space);
      },
    },
    barRead: (_i: number, _o: number, d: Uint8Array) => d.fill(1),
    barWrite: () => {},
  });
  const bridge = new PciConfigSpace(PciConfigSpace.createState()); // no BARs, like a host bridge
  const nic = new PciConfigSpace(PciConfigSpace.createState());
  nic.addBar(0, { kind: "mem32", size: 4096 });
  bus.add(0, counted("bridge", bridge));
  bus.add(1, counted("nic", nic));
  let unclaimed = 0;
  const memory = bus.window(0xc000_0000, "memory", () => unclaimed++);
  const io = bus.window(0x1000, "io", () => unclaimed++);
  memory.write(0x10, new Uint8Array(4));
  io.write(0x10, new Uint8Array(1));
  deepEqual(asked, ["nic"], "the bridge has no BAR at all, the NIC none in I/O space");
  equal(unclaimed, 2);
  ok(nic.declaresBars("memory") && !nic.declaresBars("io") && !bridge.declaresBars("memory"));
  // A function added now would be missing from the windows already made: refused.
  throws(() => bus.add(2, counted("late", nic)), /added before any window/);
});

const ecamOffset = (slot: number, func: number, reg: number) => (slot << 15) | (func << 12) | reg;

function ecamRead(bus: PciBus, offset: number, size: number): number {
  const data = new Uint8Array(size);
  bus.ecam.read(offset, data);
  return data.reduceRight((v, b) => v * 256 + b, 0);
}

Deno.test("pci bus: ECAM reaches the same config space as conf1, one access each", () => {
  const bus = new PciBus(PciBus.createState());
  const a = recorder(3);
  bus.add(3, a.fn);
  equal(ecamRead(bus, ecamOffset(3, 0, 0), 4), 0x1043_1af4);
  equal(ecamRead(bus, ecamOffset(3, 0, 2), 2), 0x1043);
  equal(ecamRead(bus, ecamOffset(3, 0, 1), 1), 0x1a);
  // A BAR written through ECAM reads back through conf1, and the other way round.
  bus.ecam.write(ecamOffset(3, 0, 0x10), le(0xc020_0000, 4));
  equal(cfgRead(bus, 3, 0x10, 4), 0xc020_0000);
  cfgWrite(bus, 3, 0x04, 2, 0x0002);
  equal(ecamRead(bus, ecamOffset(3, 0, 0x04), 2), 0x0002);
  // Extended config space exists and is empty: no extended capability at 0x100.
  equal(ecamRead(bus, ecamOffset(3, 0, 0x100), 4), 0);
  equal(ecamRead(bus, ecamOffset(3, 0, 0xffc), 4), 0);
  bus.ecam.write(ecamOffset(3, 0, 0x100), le(0x1234_5678, 4));
  equal(ecamRead(bus, ecamOffset(3, 0, 0x100), 4), 0, "writes there change nothing");
});

Deno.test("pci bus: ECAM accesses to nothing, misaligned or of odd sizes read all-ones, write nothing", () => {
  const bus = new PciBus(PciBus.createState());
  const a = recorder(3);
  bus.add(3, a.fn);
  const before = [...Array(64)].map((_, i) => cfgRead(bus, 3, i * 4, 4));
  equal(ecamRead(bus, ecamOffset(4, 0, 0), 4), 0xffff_ffff, "empty slot");
  equal(ecamRead(bus, ecamOffset(3, 1, 0), 4), 0xffff_ffff, "function 1 is absent");
  equal(ecamRead(bus, ecamOffset(3, 0, 2), 4), 0xffff_ffff, "a dword across a dword boundary");
  equal(ecamRead(bus, ecamOffset(3, 0, 1), 2), 0xffff, "a misaligned word");
  equal(ecamRead(bus, ecamOffset(3, 0, 0), 8), 2 ** 64 - 1, "a qword");
  equal(ecamRead(bus, 0xf_ffff, 1), 0xff, "the last byte of the region (slot 31, function 7)");
  equal(ecamRead(bus, 0x10_0000, 4), 0xffff_ffff, "past the region: bus 1 does not exist");
  bus.ecam.write(ecamOffset(3, 0, 0x12), le(0xffff_ffff, 4));
  bus.ecam.write(ecamOffset(3, 0, 0x10), new Uint8Array(8).fill(0xff));
  bus.ecam.write(ecamOffset(3, 7, 0x10), le(0xffff_ffff, 4));
  deepEqual([...Array(64)].map((_, i) => cfgRead(bus, 3, i * 4, 4)), before);
});
