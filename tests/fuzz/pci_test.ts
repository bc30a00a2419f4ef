// Hostile-guest fuzzing of PCI: config mechanism #1, ECAM and the BAR windows of a bus with a host
// bridge, an emulated function (mem32, I/O and mem64 BARs), a virtio-pci function and a
// passed-through function over a fake VFIO device. Config cycles of every width at every
// offset (ECAM: of every function number and at every offset of its 4 KiB, aligned or not), BAR sizing and moves (onto each other, onto the hole's edges, to 0 and all-ones),
// decode toggles, and MMIO and port accesses around every BAR's edges. No exception escapes,
// every BAR access a function gets lies inside that BAR as programmed, and a passed-through
// BAR's memory slots sit where the BAR decodes.
import { RecordingVectors } from "../bus/recording_vectors.ts";
import { equal, ok } from "../assert.ts";
import { PciBus, type PciFunction } from "../../src/pci/bus.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import { planVirtioPci, VirtioPciFunction } from "../../src/virtio/pci_transport.ts";
import { VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import { planVfioFunction, VfioPciFunction, type VfioPlan } from "../../src/vfio/vfio_function.ts";
import { libc } from "../../ffi/libc.ts";
import { fakeDevice } from "../vfio/fake_device.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const HOLE = 0xc000_0000;
const SLOTS = { bridge: 0, emulated: 2, virtio: 3, vfio: 4 };
const WIDTHS = [4, 4, 2, 1, 8, 3];

/** A function whose BAR accesses must lie inside the BAR as the guest programmed it. */
function checked(
  fn: PciFunction,
  bar: (index: number) => { size: number } | undefined,
  stats: FuzzStats,
): PciFunction {
  const inside = (index: number, offset: number, len: number) => {
    const b = bar(index);
    ok(b !== undefined, `an access to BAR ${index}, which does not exist`);
    ok(offset >= 0 && offset + len <= b.size, `${len} bytes at ${offset} of a ${b.size}-byte BAR`);
    stats.count("bar-accesses");
  };
  return {
    config: fn.config,
    barRead: (
      index,
      offset,
      data,
    ) => (inside(index, offset, data.length), fn.barRead(index, offset, data)),
    barWrite: (
      index,
      offset,
      data,
    ) => (inside(index, offset, data.length), fn.barWrite(index, offset, data)),
  };
}

function emulated(): PciFunction & { cfg: PciConfigSpace } {
  const cfg = new PciConfigSpace(PciConfigSpace.createState());
  cfg.setIds({
    vendorId: 0x1234,
    deviceId: 0x11,
    classCode: 0x030000,
    revision: 2,
    subsystemVendorId: 0,
    subsystemId: 0,
  });
  cfg.addBar(0, { kind: "mem32", size: 0x1000 });
  cfg.addBar(1, { kind: "io", size: 32 });
  cfg.addBar(2, { kind: "mem64", size: 0x4000, prefetchable: true });
  return { cfg, config: cfg, barRead: (_i, _o, d) => d.fill(0x5a), barWrite: () => {} };
}

Deno.test("fuzz pci: config cycles, BAR moves and BAR accesses on emulated, virtio and VFIO functions", () => {
  const stats = new FuzzStats("PCI config space, bus and BARs");
  const dev = fakeDevice();
  const pristine = dev.config();
  try {
    fuzz(stats, ops(8), (list) => {
      libc.pwrite(dev.fd, pristine, 256n, 0n); // the device as it was before any run
      let next = HOLE;
      const base = planVfioFunction(
        "0000:00:04.0",
        SLOTS.vfio,
        dev.fd,
        dev.regions,
        (size) => {
          const gpa = Math.ceil(next / size) * size;
          next = gpa + size;
          return gpa;
        },
        4096,
        () => 8,
      );
      // What the machine adds: the fake has no eventfds (no INTx, MSI or MSI-X groups planned).
      const plan: VfioPlan = { ...base, interrupts: { modes: new SharedArrayBuffer(20) } };
      const placed = new Map<number, number>();
      const vfio: VfioPciFunction = new VfioPciFunction(plan, {
        msixEnabled: () => stats.count("msix-enables"),
        msiChanged: () => stats.count("msi-changes"),
        placeSlot: (m, gpa): void => {
          const i = plan.mappings.indexOf(m);
          if (gpa === 0) {
            ok(placed.has(i), "a slot removed that was not placed");
            placed.delete(i);
            return;
          }
          ok(!placed.has(i), "a slot placed twice");
          const bar = vfio.shadow.barInfo(m.bar)!;
          equal(gpa, bar.address + m.offset, "the slot sits where the BAR decodes");
          ok(vfio.shadow.memoryEnabled(), "a slot placed with memory decoding off");
          placed.set(i, gpa);
          stats.count("slots-placed");
        },
      });
      const emu = emulated();
      emu.cfg.setBarAddress(0, HOLE + 0x10_0000);
      emu.cfg.setBarAddress(1, 0xc000);
      emu.cfg.setBarAddress(2, HOLE + 0x20_0000);
      const bridge = new PciConfigSpace(PciConfigSpace.createState());
      bridge.setIds({
        vendorId: 0x8086,
        deviceId: 0x29c0,
        classCode: 0x060000,
        revision: 0,
        subsystemVendorId: 0,
        subsystemId: 0,
      });
      const virtio = new VirtioPciFunction(
        planVirtioPci(
          {
            name: "v",
            deviceType: 4,
            classCode: 0xff00,
            numQueues: 1,
            queueMaxSize: 16,
            features: VIRTIO_F_VERSION_1,
            config: new Uint8Array(0),
          },
          SLOTS.virtio,
          HOLE + 0x30_0000,
          HOLE + 0x30_4000,
          5,
        ),
        { notify: () => {}, kick: () => {}, notifyMoved: () => {} },
        new RecordingVectors(),
        { setLevel: () => {} },
      );
      const bus = new PciBus(PciBus.createState());
      bus.add(SLOTS.bridge, {
        config: bridge,
        barRead: () => ok(false, "the bridge has no BAR"),
        barWrite: () => ok(false, "the bridge has no BAR"),
      });
      bus.add(SLOTS.emulated, checked(emu, (i) => emu.cfg.barInfo(i), stats));
      bus.add(SLOTS.virtio, checked(virtio, (i) => virtio.config.barInfo(i), stats));
      bus.add(SLOTS.vfio, checked(vfio, (i) => vfio.shadow.barInfo(i), stats));
      const mmio = bus.window(HOLE, "memory", () => stats.count("unclaimed"));
      const io = bus.window(0, "io", () => {});
      const fns = [emu.cfg, virtio.config, vfio.shadow];
      const slots = [SLOTS.emulated, SLOTS.virtio, SLOTS.vfio, SLOTS.bridge, 7];
      let accesses = 0;
      const select = (slot: number, reg: number, enable = true) => {
        bus.conf1.write(0, leBytes(4, (enable ? 0x8000_0000 : 0) | (slot << 11) | (reg & 0xfc)));
        accesses++;
      };
      // The I/O bus delivers only accesses wholly inside 0xcf8-0xcff (src/bus/bus.ts).
      const conf1Write = (port: number, data: Uint8Array) => {
        if (port + data.length <= 8) bus.conf1.write(port, data);
        accesses++;
      };
      const conf1Read = (port: number, data: Uint8Array) => {
        if (port + data.length <= 8) bus.conf1.read(port, data);
        accesses++;
      };
      const cfgWrite = (slot: number, reg: number, width: number, value: number) => {
        select(slot, reg);
        conf1Write(4 + (reg & 3), leBytes(width, value));
      };
      // ECAM: bus 0's 1 MiB; the MMIO bus delivers only accesses wholly inside it.
      const ecam = (write: boolean, offset: number, data: Uint8Array) => {
        if (offset + data.length <= 0x10_0000) {
          if (write) bus.ecam.write(offset, data);
          else bus.ecam.read(offset, data);
        }
        accesses++;
        stats.count("ecam-accesses");
      };
      // Mostly function 0 and the first 256 bytes (where the config space is), sometimes not.
      const ecamOffset = (slot: number, a: number, b: number) =>
        (slot << 15) | ((a % 5 === 0 ? (a >> 3) % 8 : 0) << 12) |
        (b % 7 === 0 ? b % 4096 : b % 256);
      // Where a guest might put a BAR: free space, on top of another BAR, at the hole's edges.
      const barTargets = () => [
        HOLE + 0x40_0000,
        ...fns.flatMap((c) => [0, 2, 4].map((i) => c.barInfo(i)?.address ?? 0)),
        ...fns.flatMap((c) => [2, 4].map((i) => (c.barInfo(i)?.address ?? 0) + 0x1000)),
        HOLE,
        0xfec0_0000,
        0xffff_f000,
        0,
        0xffff_ffff,
        0x1000,
      ];
      // Firmware's work first, most of the time: decoding on for every function.
      if (list.length > 0 && list[0][1] % 8 !== 0) {
        for (const slot of [SLOTS.emulated, SLOTS.virtio, SLOTS.vfio]) cfgWrite(slot, 4, 2, 7);
      }
      for (const [kind, a, b, c] of list) {
        const slot = pick(slots, a);
        if (kind === 0) { // raw: the address latch, anything
          conf1Write(a % 8, leBytes(pick(WIDTHS, b), c));
        } else if (kind === 1 && c % 4 === 3) { // a config write through ECAM
          ecam(
            true,
            ecamOffset(slot, a, b),
            leBytes(pick(WIDTHS, a >> 4), b % 3 ? c : 0xffff_ffff),
          );
        } else if (kind === 1) { // a config write anywhere in a function
          cfgWrite(slot, b % 256, pick([4, 2, 1], c), b % 3 ? c : 0xffff_ffff);
        } else if (kind === 2 && c % 4 === 3) { // a config read through ECAM
          ecam(false, ecamOffset(slot, a, b), new Uint8Array(pick(WIDTHS, a >> 4)));
        } else if (kind === 2) { // a config read anywhere, and through the data port's edges
          select(slot, b % 256, c % 7 !== 0);
          const d = new Uint8Array(pick(WIDTHS, c));
          conf1Read(4 + (a % 6), d);
        } else if (kind === 3 || kind === 4) { // size a BAR, then move it (64-bit: both halves)
          const reg = 0x10 + 4 * (b % 6);
          cfgWrite(slot, reg, 4, 0xffff_ffff);
          select(slot, reg);
          const d = new Uint8Array(4);
          conf1Read(4, d);
          const target = pick(barTargets(), c) + (c % 11 === 0 ? (b % 64) - 32 : 0);
          cfgWrite(slot, reg, 4, target >>> 0);
          if (b % 2 === 0) cfgWrite(slot, reg + 4, 4, c % 5 === 0 ? 1 : 0);
          stats.count("bar-moves");
        } else if (kind === 5) { // decode on or off
          cfgWrite(slot, 0x04, 2, pick([0x7, 0x6, 0x0, 0x3, 0x407, c & 0xffff], b));
        } else if (kind === 6) { // MMIO at and across a BAR's edges
          const bars = fns.flatMap((cfg) =>
            [0, 1, 2, 4].map((i) => cfg.barInfo(i)).filter((x) => x && x.kind !== "io")
          );
          const bar = pick(bars, a)!;
          const at = bar.address + pick([0, bar.size, bar.size / 2], b) + ((c % 16) - 8);
          const d = leBytes(pick(WIDTHS, b >> 2), c);
          if (at >= HOLE && at + d.length <= 2 ** 32) {
            if (c % 2) mmio.write(at - HOLE, d);
            else mmio.read(at - HOLE, d);
          }
          accesses++;
        } else { // ports at and across the I/O BARs' edges
          const bars = [emu.cfg.barInfo(1)!, vfio.shadow.barInfo(0)!];
          const bar = pick(bars, a);
          const at = bar.address + pick([0, bar.size], b) + ((c % 8) - 4);
          const d = leBytes(pick([1, 2, 4], b >> 2), c);
          if (at >= 0 && at + d.length <= 0x1_0000) {
            if (c % 2) io.write(at, d);
            else io.read(at, d);
          }
          accesses++;
        }
      }
      // Slots placed over each other: the guest moved one BAR onto another (issue 11, item 8:
      // KVM refuses the second slot with EEXIST). Counted, not failed: where the refusal
      // belongs (here or in the machine's placeSlot) is that fix's to say.
      const spans = [...placed].map(([i, gpa]) => [gpa, gpa + plan.mappings[i].size]);
      if (spans.some(([s1, e1], i) => spans.some(([s2, e2], j) => i !== j && s1 < e2 && s2 < e1))) {
        stats.count("runs-with-overlapping-slots");
      }
      return accesses;
    });
  } finally {
    dev.close();
  }
});
