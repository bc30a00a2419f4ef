// A passed-through function planned and driven against a fake device (./fake_device.ts): a file
// laid out like a VFIO device fd, read and written with pread/pwrite and mmap'd exactly as a
// real device fd would be.
import { deepEqual, equal } from "../assert.ts";
import { fakeDevice, type FakeDeviceOptions } from "./fake_device.ts";
import {
  mappablePieces,
  planVfioFunction,
  type VfioHooks,
  VfioPciFunction,
  type VfioPlan,
} from "../../src/vfio/vfio_function.ts";
import type { MsiMessage } from "../../src/bus/interrupt.ts";
import { RecordingVectors } from "../bus/recording_vectors.ts";

const KiB = 1024;

function plan(
  options: { noMsix?: boolean } = {},
  pageSize = 4 * KiB,
  device: FakeDeviceOptions = {},
  override: Partial<VfioHooks> = {},
) {
  const dev = fakeDevice(device);
  let next = 0xc000_0000;
  let slot = 8;
  const base = planVfioFunction(
    "0000:00:10.0",
    3,
    dev.fd,
    dev.regions,
    (size) => {
      const gpa = Math.ceil(next / size) * size;
      next = gpa + size;
      return gpa;
    },
    pageSize,
    () => slot++,
    options,
  );
  const full: VfioPlan = { ...base, interrupts: { modes: new SharedArrayBuffer(20) } };
  const events: Array<[string, unknown]> = [];
  const hooks: VfioHooks = {
    msixEnabled: (on) => void events.push(["msix", on]),
    msiChanged: (n: number, m: MsiMessage[]) => void events.push(["msi", [n, m]]),
    placeSlot: (m, gpa) => void events.push(["place", [m.bar, m.offset, gpa]]),
    ...override,
  };
  const groups = { msix: new RecordingVectors(), msi: new RecordingVectors() };
  const fn = new VfioPciFunction(full, hooks, groups);
  return { fn, plan: full, events, dev, groups };
}

/** The capability IDs in the order the guest walks them. */
function capabilityWalk(fn: VfioPciFunction): Array<[number, number]> {
  const seen: Array<[number, number]> = [];
  for (
    let at = fn.config.read(0x34, 1);
    at !== 0 && seen.length < 48;
    at = fn.config.read(at + 1, 1)
  ) {
    seen.push([at, fn.config.read(at, 1)]);
  }
  return seen;
}

Deno.test("vfio function: the guest walks PM, MSI, PCIe, MSI-X at the device's offsets", () => {
  const { fn } = plan();
  deepEqual(capabilityWalk(fn), [[0x40, 0x01], [0x50, 0x05], [0x70, 0x10], [0xb0, 0x11]]);
  equal(fn.config.read(0, 4), 0x8168_10ec);
  equal(fn.config.read(0x3d, 1), 1, "interrupt pin from the device");
  // MSI as emulated: 64-bit, one vector, per-vector masking not offered.
  equal(fn.config.read(0x52, 2), 0x0080);
  // MSI-X Message Control: 4 vectors, BIRs and offsets as the device has them.
  equal(fn.config.read(0xb2, 2), 3);
  equal(fn.config.read(0xb4, 4), 4);
  equal(fn.config.read(0xb8, 4), 0x804);
});

Deno.test("vfio function: nomsix unlinks MSI-X and leaves its BAR page to the device", () => {
  const { fn, plan: p } = plan({ noMsix: true });
  deepEqual(capabilityWalk(fn), [[0x40, 0x01], [0x50, 0x05], [0x70, 0x10]]);
  equal(p.msix, undefined);
  // The whole of BAR 4 is mapped: nothing in it is emulated any more.
  deepEqual(p.mappings.map((m) => [m.bar, m.offset, m.size]), [[2, 0, 0x1000], [4, 0, 0x4000]]);
  const data = new Uint8Array(4);
  fn.barRead(4, 0, data);
  deepEqual([...data], [64, 65, 66, 67], "the device's own bytes at the table's offset");
});

Deno.test("vfio function: BARs size and move in the shadow; the MSI-X page stays trapped", () => {
  const { fn, plan: p, events } = plan();
  // 4 KiB pages: BAR 4's first page (table and PBA) trapped, the other 12 KiB mapped.
  deepEqual(p.mappings.map((m) => [m.bar, m.offset, m.size]), [[2, 0, 0x1000], [
    4,
    0x1000,
    0x3000,
  ]]);
  fn.config.write(0x20, 4, 0xffff_ffff);
  fn.config.write(0x24, 4, 0xffff_ffff);
  equal(fn.config.read(0x20, 4), (~(0x4000 - 1) | 0xc) >>> 0, "16 KiB, mem64, prefetchable");
  equal(fn.config.read(0x24, 4), 0xffff_ffff);
  fn.config.write(0x20, 4, 0xd000_0000);
  fn.config.write(0x24, 4, 0);
  fn.config.write(0x18, 4, 0xd001_0000);
  fn.config.write(0x1c, 4, 0);
  equal(events.filter((e) => e[0] === "place").length, 0, "no slot before memory decode is on");
  fn.config.write(0x04, 2, 0x0006);
  deepEqual(events.filter((e) => e[0] === "place").map((e) => e[1]), [
    [2, 0, 0xd001_0000],
    [4, 0x1000, 0xd000_1000],
  ]);
});

Deno.test("vfio function: MSI-X table and PBA emulated, the rest of their page from the device", () => {
  const { fn, events } = plan();
  const d = new Uint8Array(4);
  fn.barWrite(4, 0x0, Uint8Array.of(0x00, 0x10, 0xe0, 0xfe)); // vector 0 address
  fn.barRead(4, 0x0, d);
  deepEqual([...d], [0x00, 0x10, 0xe0, 0xfe]);
  fn.barRead(4, 0x0c, d);
  equal(new DataView(d.buffer).getUint32(0, true), 1, "vectors start masked");
  fn.barRead(4, 0x800, d);
  deepEqual([...d], [0, 0, 0, 0], "PBA: nothing pending");
  fn.barRead(4, 0x40, d); // just past the 4-vector table: the device's bytes
  deepEqual([...d], [0x40, 0x41, 0x42, 0x43].map((x) => (64 + x) & 0xff));
  fn.barRead(4, 0x808, d); // just past the 8-byte PBA
  deepEqual([...d], [0x808, 0x809, 0x80a, 0x80b].map((x) => (64 + x) & 0xff));
  fn.config.write(0xb2, 2, 0x8000);
  deepEqual(events, [["msix", true]]);
});

Deno.test("vfio function: MSI writes reach the machine once per change, with the messages", () => {
  const { fn, events, dev, groups } = plan();
  const before = dev.config();
  fn.config.write(0x54, 4, 0xfee0_0000);
  fn.config.write(0x58, 4, 0);
  fn.config.write(0x5c, 2, 0x0041);
  deepEqual(events, [], "nothing while MSI is off");
  fn.config.write(0x52, 2, 0x0001);
  fn.config.write(0x52, 2, 0x0001); // again: no change
  fn.config.write(0x52, 2, 0x0000);
  deepEqual(events, [
    ["msi", [1, [{ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }]]],
    ["msi", [0, []]],
  ]);
  deepEqual(groups.msi.changes, [[[0, 0xfee0_0000, 0x41]]], "routed once, before the machine knew");
  equal(groups.msi.releases, 1, "and released when MSI went off");
  // The device this function drives never sees the guest's MSI: its config space, the MSI
  // capability's Message Control (0x0180), address and data included, is as it was.
  const after = dev.config();
  equal(new DataView(after.buffer).getUint16(0x52, true), 0x0180);
  deepEqual(after, before);
  dev.close();
});

Deno.test("vfio function: mappable pieces skip trapped pages and whatever is not whole pages", () => {
  const page = 4 * KiB;
  deepEqual(mappablePieces([{ offset: 0, size: 0x4000 }], [{ offset: 0, size: 0x1000 }], page), [
    { offset: 0x1000, size: 0x3000 },
  ]);
  deepEqual(
    mappablePieces([{ offset: 0, size: 0x10000 }], [
      { offset: 0x2000, size: 0x1000 },
      { offset: 0x8000, size: 0x1000 },
    ], page),
    [{ offset: 0, size: 0x2000 }, { offset: 0x3000, size: 0x5000 }, {
      offset: 0x9000,
      size: 0x7000,
    }],
  );
  // 64 KiB pages: a 16 KiB BAR is less than a page and can never be a memory slot.
  deepEqual(mappablePieces([{ offset: 0, size: 0x4000 }], [], 64 * KiB), []);
  // A sparse area that does not start on a page boundary stays trapped.
  deepEqual(mappablePieces([{ offset: 0x800, size: 0x1800 }], [], page), []);
  // A trap covering the whole area leaves nothing.
  deepEqual(mappablePieces([{ offset: 0, size: 0x1000 }], [{ offset: 0, size: 0x1000 }], page), []);
});

Deno.test("vfio function: on 64 KiB pages the 16 KiB BAR 4 is all trapped, its MSI-X still exact", () => {
  const { fn, plan: p } = plan({}, 64 * KiB);
  deepEqual(p.mappings, [], "no BAR here is a whole 64 KiB page");
  const d = new Uint8Array(8);
  fn.barRead(4, 0x3ff8, d); // the BAR's last qword: the device's
  deepEqual([...d], [...Array(8).keys()].map((i) => (64 + 0x3ff8 + i) & 0xff));
});

Deno.test("vfio function: MSI-X table and PBA offsets with bit 31 set are taken as they are", () => {
  // An 8 GiB BAR 4 with its table at 2 GiB and PBA at 2 GiB + 4 KiB (offsets are unsigned).
  const { fn, plan: p, dev } = plan({}, 4 * KiB, {
    bar4Size: 8 * 1024 * 1024 * KiB,
    msixTable: 0x8000_0000 | 4,
    msixPba: 0x8000_1000 | 4,
  });
  equal(p.msix?.tableOffset, 0x8000_0000);
  equal(p.msix?.pbaOffset, 0x8000_1000);
  equal(fn.config.read(0xb4, 4), 0x8000_0004, "the guest sees the device's offset/BIR dwords");
  equal(fn.config.read(0xb8, 4), 0x8000_1004);
  fn.barWrite(4, 0x8000_0000, Uint8Array.of(0x00, 0x10, 0xe0, 0xfe));
  equal(fn.msix?.entry(0)?.addressLo, 0xfee0_1000, "a table write lands in the emulated table");
  const d = new Uint8Array(4);
  fn.barRead(4, 0x8000_000c, d);
  deepEqual([...d], [1, 0, 0, 0], "vector 0 starts masked");
  dev.close();
});

Deno.test("vfio function: a write at a capability's start reaches the emulated Message Control", () => {
  const { fn, events, dev } = plan();
  const before = dev.config();
  // A dword at the MSI-X capability's ID: ID and next pointer (read-only), then Message
  // Control with MSI-X Enable.
  fn.config.write(0xb0, 4, 0x8000_0000 | 0x0011);
  deepEqual(events, [["msix", true]]);
  equal(fn.config.read(0xb2, 2) & 0x8000, 0x8000, "the guest reads its enable bit back");
  equal(fn.msix?.enabled(), true);
  // A word over the next pointer and Message Control's low byte, then its high byte alone.
  fn.config.write(0xb1, 2, 0x0000);
  fn.config.write(0xb3, 1, 0x00);
  deepEqual(events, [["msix", true], ["msix", false]]);
  // MSI the same way: address and data, then Enable in a dword at the capability's ID.
  fn.config.write(0x54, 4, 0xfee0_0000);
  fn.config.write(0x5c, 2, 0x0041);
  fn.config.write(0x50, 4, 0x0001_7005); // ID and next pointer as they read
  deepEqual(events.slice(2), [["msi", [1, [{
    addressLo: 0xfee0_0000,
    addressHi: 0,
    data: 0x41,
  }]]]]);
  equal(fn.config.read(0x52, 2), 0x0081);
  // A dword that straddles the MSI-X capability's end: its emulated bytes (the PBA
  // offset/BIR, read-only) stay, the two after it are the device's.
  fn.config.write(0xba, 4, 0xabcd_ffff);
  equal(fn.config.read(0xb8, 4), 0x804);
  const after = dev.config();
  deepEqual([after[0xbc], after[0xbd]], [0xcd, 0xab], "bytes past the capability reach the device");
  // The device's own MSI and MSI-X Message Control never saw the guest's writes.
  deepEqual(after.subarray(0x50, 0x70), before.subarray(0x50, 0x70));
  deepEqual(after.subarray(0xb2, 0xbc), before.subarray(0xb2, 0xbc));
  dev.close();
});

Deno.test("vfio function: an MSI-X or MSI enable the host refuses reads back disabled", () => {
  let refuse = true;
  const seen: Array<[string, unknown]> = [];
  const { fn, dev } = plan({}, 4 * KiB, {}, {
    msixEnabled: (on) => (seen.push(["msix", on]), !(on && refuse)),
    msiChanged: (n) => (seen.push(["msi", n]), !(n > 0 && refuse)),
  });
  fn.config.write(0xb2, 2, 0x8000);
  equal(fn.config.read(0xb2, 2) & 0x8000, 0, "MSI-X Enable cleared");
  equal(fn.msix?.enabled(), false);
  fn.config.write(0x54, 4, 0xfee0_0000);
  fn.config.write(0x52, 2, 0x0001);
  equal(fn.config.read(0x52, 2) & 1, 0, "MSI Enable cleared");
  deepEqual(seen, [["msix", true], ["msi", 1]], "the clearing itself is not reported");
  // The guest tries again once the host has vectors: it works.
  refuse = false;
  fn.config.write(0xb2, 2, 0x8000);
  equal(fn.config.read(0xb2, 2) & 0x8000, 0x8000);
  fn.config.write(0xb2, 2, 0x0000);
  deepEqual(seen.slice(2), [["msix", true], ["msix", false]]);
  dev.close();
});

Deno.test("vfio function: enable changes on one thread's instance are news to another's", () => {
  const { fn, plan: p, events, dev } = plan();
  const other = new VfioPciFunction(p, {
    msixEnabled: (on) => void events.push(["msix other", on]),
    msiChanged: () => {},
  });
  fn.config.write(0xb2, 2, 0x8000);
  other.config.write(0xb2, 2, 0x0000);
  fn.config.write(0xb2, 2, 0x0000); // already off: no news
  deepEqual(events, [["msix", true], ["msix other", false]]);
  dev.close();
});

Deno.test("vfio function: a slot that cannot be placed stays unplaced and is tried again", () => {
  // A machine that refuses slots over [0xd000_0000, 0xd000_2000), as KVM refuses overlaps.
  const placed = new Map<number, number>();
  const tries: Array<[number, number]> = [];
  const { fn, dev } = plan({}, 4 * KiB, {}, {
    placeSlot: (m, gpa) => {
      tries.push([m.bar, gpa]);
      if (gpa === 0) return void placed.delete(m.bar);
      const end = gpa + m.size;
      for (const [bar, at] of placed) {
        const other = bar === 2 ? 0x1000 : 0x3000;
        if (gpa < at + other && at < end) return false;
      }
      if (gpa < 0xd000_2000 && 0xd000_0000 < end) return false;
      placed.set(m.bar, gpa);
    },
  });
  fn.config.write(0x18, 4, 0xd000_0000); // BAR 2 over the refused range
  fn.config.write(0x20, 4, 0xe000_0000); // BAR 4 elsewhere
  fn.config.write(0x04, 2, 0x0002);
  deepEqual([...placed], [[4, 0xe000_1000]], "BAR 2 not placed, BAR 4 placed");
  fn.config.write(0x18, 4, 0xe000_2000); // BAR 2 onto BAR 4's mapped pages
  deepEqual([...placed], [[4, 0xe000_1000]]);
  // BAR 4 moves away and BAR 2 over where BAR 4 was, in one write each: removed before placed.
  fn.config.write(0x20, 4, 0xe010_0000);
  deepEqual(
    [...placed].sort(),
    [[2, 0xe000_2000], [4, 0xe010_1000]],
    "both placed once nothing overlaps",
  );
  equal(tries.filter(([bar, gpa]) => bar === 2 && gpa !== 0).length, 3, "tried at every write");
  dev.close();
});

Deno.test("vfio function: MSI the vector group cannot route is never turned on", () => {
  const { fn, events, dev, groups } = plan();
  groups.msi.refuse = true;
  fn.config.write(0x54, 4, 0xfee0_0000);
  fn.config.write(0x52, 2, 0x0001);
  equal(fn.config.read(0x52, 2) & 1, 0, "MSI Enable cleared");
  deepEqual(events, [["msi", [0, []]]], "the machine only hears that MSI is off");
  groups.msi.refuse = false;
  fn.config.write(0x52, 2, 0x0001);
  deepEqual(events.at(-1), ["msi", [1, [{ addressLo: 0xfee0_0000, addressHi: 0, data: 0 }]]]);
  dev.close();
});
