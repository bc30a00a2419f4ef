import fc from "fast-check";
import { deepEqual, doesNotThrow, equal, ok, throws } from "../assert.ts";
import {
  PCI_BAR0,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_WRITABLE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PciConfigError,
  PciConfigSpace,
} from "../../src/pci/config_space.ts";

const IDS = {
  vendorId: 0x1af4,
  deviceId: 0x1041,
  classCode: 0x020000,
  revision: 1,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x0001,
};

/** A function with IDs, INTA, mem32 BAR 0 (4 KiB), io BAR 1 (32 B), mem64 BAR 2/3 (16 KiB). */
function device(state = PciConfigSpace.createState()): PciConfigSpace {
  const cfg = new PciConfigSpace(state);
  cfg.setIds(IDS);
  cfg.setInterruptPin(1);
  cfg.addBar(0, { kind: "mem32", size: 0x1000 });
  cfg.addBar(1, { kind: "io", size: 32 });
  cfg.addBar(2, { kind: "mem64", size: 0x4000, prefetchable: true });
  return cfg;
}

const bar = (i: number) => PCI_BAR0 + 4 * i;

Deno.test("config space: identity registers read back and ignore guest writes", () => {
  const cfg = device();
  equal(cfg.read(0x00, 4), 0x1041_1af4);
  equal(cfg.read(0x08, 4), 0x0200_0001, "class code << 8 | revision");
  equal(cfg.read(0x2c, 4), 0x0001_1af4);
  equal(cfg.read(0x0e, 1), 0, "header type 0, single function");
  for (const off of [0x00, 0x02, 0x08, 0x0a, 0x0c, 0x2c, 0x2e]) {
    cfg.write(off, 2, 0xdead);
    cfg.write(off, 4, 0xffffffff);
  }
  cfg.write(0x0e, 1, 0x80);
  equal(cfg.read(0x00, 4), 0x1041_1af4);
  equal(cfg.read(0x08, 4), 0x0200_0001);
  equal(cfg.read(0x0c, 4), 0, "cache line, latency, header type, BIST unchanged");
  equal(cfg.read(0x2c, 4), 0x0001_1af4);
});

Deno.test("config space: only the command register's defined bits are writable", () => {
  const cfg = device();
  cfg.write(PCI_COMMAND, 2, 0xffff);
  equal(cfg.command(), PCI_COMMAND_WRITABLE);
  equal(cfg.command(), 0x0547, "I/O, memory, master, parity, SERR, INTx disable");
  ok(cfg.memoryEnabled() && cfg.ioEnabled() && cfg.busMasterEnabled());
  cfg.write(PCI_COMMAND, 1, 0x02);
  equal(cfg.command(), 0x0502, "a byte write leaves the high byte alone");
  ok(cfg.memoryEnabled() && !cfg.ioEnabled() && !cfg.busMasterEnabled());
  cfg.write(PCI_COMMAND, 4, 0xffff_0000);
  equal(cfg.command(), 0, "a dword write at 0x04 sets command to its low half");
  cfg.write(PCI_STATUS, 2, 0xffff);
  equal(cfg.read(PCI_STATUS, 2), 0, "status ignores writes");
});

Deno.test("config space: a mem32 BAR sizes to its mask, keeps its type bits, takes an address", () => {
  const cfg = device();
  equal(cfg.read(bar(0), 4), 0);
  cfg.write(bar(0), 4, 0xffffffff);
  equal(cfg.read(bar(0), 4), 0xfffff000);
  cfg.write(bar(0), 4, 0xfebf_1234);
  equal(cfg.read(bar(0), 4), 0xfebf_1000, "bits below the size are not writable");
  deepEqual(cfg.barInfo(0), { kind: "mem32", size: 0x1000, address: 0xfebf_1000 });
  const pref = new PciConfigSpace(PciConfigSpace.createState());
  pref.addBar(5, { kind: "mem32", size: 16, prefetchable: true });
  pref.write(bar(5), 4, 0xffffffff);
  equal(pref.read(bar(5), 4), 0xfffffff8, "16-byte prefetchable: bit 3 set, bits 2:0 zero");
});

Deno.test("config space: a mem64 BAR sizes across both dwords with type 10b fixed", () => {
  const cfg = device();
  equal(cfg.read(bar(2), 4), 0x0c, "64-bit, prefetchable");
  cfg.write(bar(2), 4, 0xffffffff);
  cfg.write(bar(3), 4, 0xffffffff);
  equal(cfg.read(bar(2), 4), 0xffffc00c);
  equal(cfg.read(bar(3), 4), 0xffffffff, "upper dword reads all-ones");
  cfg.write(bar(2), 4, 0xe000_0000);
  cfg.write(bar(3), 4, 0x0000_0080);
  equal(cfg.read(bar(2), 4), 0xe000_000c);
  deepEqual(cfg.barInfo(2), { kind: "mem64", size: 0x4000, address: 0x80_e000_0000 });
  equal(cfg.barInfo(3), undefined, "the upper half is not a BAR of its own");
  const big = new PciConfigSpace(PciConfigSpace.createState());
  big.addBar(0, { kind: "mem64", size: 2 ** 34 });
  big.write(bar(0), 4, 0xffffffff);
  big.write(bar(1), 4, 0xffffffff);
  equal(big.read(bar(0), 4), 0x4, "a 16 GiB BAR has no writable bits in its low dword");
  equal(big.read(bar(1), 4), 0xfffffffc);
});

Deno.test("config space: an I/O BAR sizes with bit 0 set and bit 1 zero", () => {
  const cfg = device();
  equal(cfg.read(bar(1), 4), 0x1);
  cfg.write(bar(1), 4, 0xffffffff);
  equal(cfg.read(bar(1), 4), 0xffffffe1);
  cfg.write(bar(1), 2, 0xc043);
  equal(cfg.read(bar(1), 4), 0xffffc041, "address bits 4:0 ignore the write");
  cfg.write(bar(1), 4, 0xc040);
  deepEqual(cfg.barInfo(1), { kind: "io", size: 32, address: 0xc040 });
});

Deno.test("config space: unimplemented BARs and the expansion ROM read 0 and ignore writes", () => {
  const cfg = new PciConfigSpace(PciConfigSpace.createState());
  cfg.addBar(0, { kind: "mem32", size: 0x1000 });
  for (const off of [bar(1), bar(2), bar(3), bar(4), bar(5), PCI_ROM_ADDRESS]) {
    cfg.write(off, 4, 0xffffffff);
    equal(cfg.read(off, 4), 0, `0x${off.toString(16)}`);
  }
  equal(cfg.barInfo(1), undefined);
});

Deno.test("config space: interrupt line is writable, interrupt pin is not", () => {
  const cfg = device();
  cfg.write(PCI_INTERRUPT_LINE, 2, 0x040b);
  equal(cfg.read(PCI_INTERRUPT_LINE, 1), 0x0b);
  equal(cfg.read(PCI_INTERRUPT_PIN, 1), 1, "INTA#");
});

Deno.test("config space: addBar and setBarAddress refuse bad BARs with PciConfigError", () => {
  const cfg = device();
  throws(() => cfg.addBar(0, { kind: "mem32", size: 0x1000 }), PciConfigError, "in use");
  throws(() => cfg.addBar(3, { kind: "io", size: 4 }), PciConfigError, "mem64 upper half");
  throws(() => cfg.addBar(5, { kind: "mem64", size: 0x1000 }), /slots inside 0\.\.5/);
  throws(() => cfg.addBar(6, { kind: "mem32", size: 0x1000 }), PciConfigError);
  throws(() => cfg.addBar(4, { kind: "mem32", size: 0x1800 }), /power of two/);
  throws(() => cfg.addBar(4, { kind: "mem32", size: 8 }), PciConfigError, "memory BAR < 16");
  throws(() => cfg.addBar(4, { kind: "io", size: 2 }), PciConfigError, "I/O BAR < 4");
  throws(() => cfg.setBarAddress(0, 0x1800), /aligned/);
  throws(() => cfg.setBarAddress(4, 0x1000), /not declared/);
  cfg.addBar(4, { kind: "io", size: 4 });
  cfg.setBarAddress(0, 0xfe00_0000);
  cfg.setBarAddress(2, 0x1_0000_4000);
  equal(cfg.read(bar(0), 4), 0xfe00_0000);
  equal(cfg.read(bar(2), 4), 0x4000 | 0x0c, "type bits kept");
  equal(cfg.read(bar(3), 4), 1);
});

/** Follow the capability list from 0x34: [offset, id] pairs, checking each next pointer. */
function walkCapabilities(cfg: PciConfigSpace): [number, number][] {
  const found: [number, number][] = [];
  ok(cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, "status says there is a list");
  for (let at = cfg.read(PCI_CAPABILITY_LIST, 1); at !== 0; at = cfg.read(at + 1, 1)) {
    ok(at >= 0x40 && at % 4 === 0, `capability at 0x${at.toString(16)} is dword-aligned past 0x3f`);
    ok(found.length < 48, "the list ends");
    found.push([at, cfg.read(at, 1)]);
  }
  return found;
}

Deno.test("config space: the capability chain from 0x34 finds every capability, ending in 0", () => {
  const cfg = device();
  equal(cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0, "no list before a capability");
  const a = cfg.addCapability(0x09, new Uint8Array(14)); // vendor-specific, 16 bytes
  const b = cfg.addCapability(0x11, new Uint8Array(10));
  const c = cfg.addCapability(0x05, new Uint8Array(1)); // 3 bytes, rounded to 4
  const d = cfg.addCapability(0x10, new Uint8Array(58));
  deepEqual([a, b, c, d], [0x40, 0x50, 0x5c, 0x60]);
  deepEqual(walkCapabilities(cfg), [[0x40, 0x09], [0x50, 0x11], [0x5c, 0x05], [0x60, 0x10]]);
  equal(cfg.read(d + 1, 1), 0, "the last next pointer is 0");
  cfg.write(PCI_CAPABILITY_LIST, 1, 0x80);
  cfg.write(a + 1, 1, 0x00);
  deepEqual(walkCapabilities(cfg).length, 4, "the guest cannot rewrite the list");
  throws(() => cfg.addCapability(0x09, new Uint8Array(100)), /does not fit/);
  const e = cfg.addCapability(0x09, new Uint8Array(0x100 - 0x9c - 2)); // exactly fills
  equal(e, 0x9c);
  throws(() => cfg.addCapability(0x09, new Uint8Array(0)), PciConfigError);
});

Deno.test("config space: capability bodies are writable only where the mask says", () => {
  const cfg = device();
  const at = cfg.addCapability(
    0x11,
    Uint8Array.of(0x02, 0x00, 0x11, 0x22),
    Uint8Array.of(0x00, 0xc0, 0xff, 0x00),
  );
  cfg.write(at, 4, 0xffffffff);
  equal(cfg.read(at, 4), 0xc0_02_00_11, "ID and next fixed; only bits 15:14 of control");
  cfg.write(at + 4, 2, 0xabcd);
  equal(cfg.read(at + 4, 2), 0x22cd);
});

Deno.test("config space: accesses outside 0..255 or of odd sizes never throw", () => {
  const cfg = device();
  equal(cfg.read(0xfe, 4), 0xffff_0000 + cfg.read(0xfe, 2), "bytes past 255 read 0xff");
  equal(cfg.read(256, 1), 0xff);
  equal(cfg.read(-1, 2), 0xf4ff, "byte -1 is 0xff, byte 0 is 0xf4");
  equal(cfg.read(0, 3), 0xffffffff);
  equal(cfg.read(0, 8), 0xffffffff);
  equal(cfg.read(0.5, 1), 0xffffffff);
  doesNotThrow(() => {
    cfg.write(0xfe, 4, 0xffffffff);
    cfg.write(-2, 4, 0xffffffff);
    cfg.write(PCI_INTERRUPT_LINE, 3, 0xff);
    cfg.write(Number.NaN, 1, 1);
    cfg.write(PCI_INTERRUPT_LINE, 1, Number.NaN);
  });
  equal(cfg.read(0, 4), 0x1041_1af4, "the write at -2 reached only read-only bytes");
  equal(cfg.read(PCI_INTERRUPT_LINE, 1), 0, "NaN writes 0");
});

Deno.test("config space: barContaining needs decode enabled and a real BAR address", () => {
  const cfg = device();
  cfg.write(bar(0), 4, 0xfebf_0000);
  cfg.write(bar(1), 4, 0xc000);
  cfg.write(bar(2), 4, 0x0000_4000);
  cfg.write(bar(3), 4, 0x1);
  equal(cfg.barContaining(0xfebf_0000, 4, "memory"), undefined, "memory decode off");
  cfg.write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  deepEqual({ ...cfg.barContaining(0xfebf_0ffc, 4, "memory")! }, { index: 0, offset: 0xffc });
  equal(cfg.barContaining(0xfebf_0ffd, 4, "memory"), undefined, "crosses the end");
  equal(cfg.barContaining(0xfebe_ffff, 1, "memory"), undefined, "below the base");
  deepEqual({ ...cfg.barContaining(0x1_0000_4010, 8, "memory")! }, { index: 2, offset: 0x10 });
  equal(cfg.barContaining(0xc000, 1, "io"), undefined, "I/O decode off");
  cfg.write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
  deepEqual({ ...cfg.barContaining(0xc01f, 1, "io")! }, { index: 1, offset: 0x1f });
  equal(cfg.barContaining(0xc01f, 1, "memory"), undefined, "an I/O BAR is not memory");
  equal(cfg.barContaining(0xfebf_0000, 4, "io"), undefined, "a memory BAR is not I/O");
  const hit = cfg.barContaining(0xc000, 1, "io");
  equal(cfg.barContaining(0xfebf_0010, 4, "memory"), hit, "one shared result object");

  cfg.write(bar(0), 4, 0xffffffff); // sizing while decode is on
  equal(cfg.barContaining(0xfffff000, 4, "memory"), undefined, "sizing value is no address");
  cfg.write(bar(0), 4, 0);
  equal(cfg.barContaining(0, 4, "memory"), undefined, "address 0 is unassigned");
  cfg.write(bar(2), 4, 0xffffffff);
  cfg.write(bar(3), 4, 0xffffffff);
  equal(cfg.barContaining(2 ** 64 - 0x4000, 4, "memory"), undefined, "mem64 sizing value");
  cfg.write(bar(2), 4, 0);
  cfg.write(bar(3), 4, 0x2);
  deepEqual({ ...cfg.barContaining(0x2_0000_0000, 4, "memory")! }, { index: 2, offset: 0 });
});

Deno.test("config space: write listeners fire for writes touching their range only", () => {
  const state = PciConfigSpace.createState();
  const cfg = device(state);
  const calls: string[] = [];
  cfg.onWrite(PCI_COMMAND, PCI_COMMAND + 2, (o, s) => calls.push(`cmd ${o}/${s}`));
  cfg.onWrite(bar(0), bar(6), (o, s) => calls.push(`bar ${o}/${s}`));
  cfg.write(PCI_COMMAND, 4, 0x2); // touches command (and status)
  cfg.write(PCI_STATUS, 2, 0); // status only
  cfg.write(0x05, 1, 0);
  cfg.write(0x0f, 2, 0); // 0x0f and 0x10: the last byte touches BAR 0
  cfg.write(bar(5) + 3, 1, 0);
  cfg.write(0x28, 4, 0); // just past BAR 5
  cfg.write(0x02, 2, 0); // ends where command starts
  cfg.write(0x0c, 4, 0); // ends where BAR 0 starts
  cfg.write(0xfe, 4, 0); // mostly outside: no listener range there
  deepEqual(calls, ["cmd 4/4", "cmd 5/1", "bar 15/2", "bar 39/1"]);

  const other = new PciConfigSpace(state);
  other.write(PCI_COMMAND, 2, 0);
  equal(calls.length, 4, "listeners belong to the instance that registered them");
});

Deno.test("config space: two instances over one state see the same function", () => {
  const state = PciConfigSpace.createState();
  const a = device(state);
  const b = new PciConfigSpace(state);
  equal(b.read(0, 4), 0x1041_1af4);
  a.write(bar(0), 4, 0xfebf_0000);
  a.write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  ok(b.memoryEnabled());
  deepEqual(b.barInfo(0), { kind: "mem32", size: 0x1000, address: 0xfebf_0000 });
  deepEqual({ ...b.barContaining(0xfebf_0008, 4, "memory")! }, { index: 0, offset: 8 });
  b.write(bar(0), 4, 0xffffffff);
  equal(a.read(bar(0), 4), 0xfffff000, "sizing through one instance is seen by the other");
  const cap = b.addCapability(0x09, new Uint8Array(2));
  equal(a.read(PCI_CAPABILITY_LIST, 1), cap);
  throws(() => new PciConfigSpace(new SharedArrayBuffer(64)), RangeError);
});

Deno.test("config space (property): random accesses never throw nor change fixed bits", () => {
  const cfg = device();
  cfg.addCapability(0x09, Uint8Array.of(1, 2, 3, 4), Uint8Array.of(0, 0xff, 0, 0x0f));
  const fixed = [0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a, 0x0b, 0x0e, 0x2c, 0x2d, 0x2e, 0x2f];
  const before = fixed.map((o) => cfg.read(o, 1));
  const value = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constant(0xffffffff));
  const access = fc.oneof(
    {
      // What a guest's PCI code does: aligned accesses of 1, 2 or 4 bytes in the header.
      weight: 3,
      arbitrary: fc.tuple(
        fc.constantFrom(1, 2, 4),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        value,
      )
        .map(([size, at, write, v]) => ({ write, offset: at - (at % size), size, value: v })),
    },
    {
      // BAR sizing and placement: all-ones, then a base (aligned or not, below 4 GiB or not).
      weight: 2,
      arbitrary: fc.tuple(
        fc.integer({ min: 0, max: 5 }),
        fc.oneof(
          fc.constant(0xffffffff),
          fc.integer({ min: 0xc000, max: 0xfebf }).map((n) => n * 0x1_0000),
          fc.integer({ min: 0, max: 0xffff }).map((n) => n * 32 + 1),
          value,
        ),
      ).map(([i, v]) => ({ write: true, offset: bar(i), size: 4, value: v >>> 0 })),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        write: fc.boolean(),
        offset: fc.integer({ min: -8, max: 300 }),
        size: fc.integer({ min: 0, max: 9 }),
        value,
      }),
    },
  );
  const addresses = () => [0, 1, 2].map((i) => cfg.barInfo(i)!.address);
  let runs = 0, moved = 0, valid = 0, total = 0, barWrites = 0;
  fc.assert(
    fc.property(fc.array(access, { minLength: 4, maxLength: 64, size: "max" }), (ops) => {
      runs++;
      const placed = addresses();
      for (const op of ops) {
        total++;
        if (
          op.write && [1, 2, 4].includes(op.size) && op.offset >= 0 && op.offset + op.size <= 256
        ) {
          valid++;
          if (op.offset < bar(6) && op.offset + op.size > bar(0)) barWrites++;
        }
        if (op.write) cfg.write(op.offset, op.size, op.value);
        else {
          const v = cfg.read(op.offset, op.size);
          ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
        }
      }
      deepEqual(fixed.map((o) => cfg.read(o, 1)), before, "IDs and header type");
      equal(cfg.read(bar(0), 1) & 0xf, 0x0, "mem32 type bits");
      equal(cfg.read(bar(1), 1) & 0x3, 0x1, "I/O type bits");
      equal(cfg.read(bar(2), 1) & 0xf, 0xc, "mem64 prefetchable type bits");
      equal(cfg.read(bar(0), 2) & 0xfff, 0, "address bits below 4 KiB stay 0");
      equal(cfg.command() & ~PCI_COMMAND_WRITABLE, 0, "command reserved bits");
      equal(cfg.read(PCI_STATUS, 2), PCI_STATUS_CAP_LIST, "status");
      equal(cfg.read(PCI_ROM_ADDRESS, 4), 0, "expansion ROM");
      equal(cfg.read(0x40, 1), 0x09);
      equal(cfg.read(0x41, 1), 0);
      equal(cfg.read(0x42, 1), 1);
      equal(cfg.read(0x45, 1) & 0xf0, 0, "only the low nibble of body byte 3 is writable");
      const after = addresses();
      [0x1000, 32, 0x4000].forEach((size, i) => equal(after[i] % size, 0, `BAR ${i} aligned`));
      // A BAR moved: it holds a new base that is neither 0 nor what sizing leaves.
      const sizing = [0xfffff000, 0xffe0, 2 ** 64 - 0x4000];
      if (after.some((a, i) => a !== placed[i] && a !== 0 && a !== sizing[i])) moved++;
    }),
    { numRuns: 300 },
  );
  console.log(
    `config space property: a BAR moved in ${moved} of ${runs} runs; ` +
      `${valid} of ${total} accesses were writes of 1, 2 or 4 bytes inside the space, ` +
      `${barWrites} of them to a BAR`,
  );
  ok(moved / runs >= 0.2, `a BAR moved in only ${moved} of ${runs} runs`);
  ok(valid / total >= 0.2, `only ${valid} of ${total} accesses were valid writes`);
});
