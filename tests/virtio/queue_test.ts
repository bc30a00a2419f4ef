import fc from "fast-check";
import { deepEqual, equal, ok, throws } from "../assert.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import type { MemoryLayout } from "../../src/arch/x86_64/memory_map.ts";
import {
  readChain,
  type Segment,
  SplitQueue,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VirtqueueError,
  writeChain,
} from "../../src/virtio/queue.ts";
import { AVAIL_GPA, DESC_GPA, FakeDriver, MiB, ram, USED_GPA } from "./fake_driver.ts";

const NEXT = VIRTQ_DESC_F_NEXT;
const WRITE = VIRTQ_DESC_F_WRITE;
const INDIRECT = VIRTQ_DESC_F_INDIRECT;

function config(size: number, eventIdx = false) {
  return { size, descGpa: DESC_GPA, availGpa: AVAIL_GPA, usedGpa: USED_GPA, eventIdx };
}

Deno.test("virtqueue: sizes other than powers of two from 1 to 32768 are refused", () => {
  const mem = ram();
  for (const size of [1, 2, 256, 32768]) new SplitQueue(mem, config(size));
  for (const size of [0, 3, 100, 65536, -2, 1.5]) {
    throws(() => new SplitQueue(mem, config(size)), VirtqueueError);
  }
});

Deno.test("virtqueue: rings outside RAM or misaligned are refused, naming ring and address", () => {
  const mem = ram();
  const end = 32 * MiB;
  throws(
    () => new SplitQueue(mem, { ...config(256), descGpa: end - 16 * 255 }),
    /descriptor table of 4096 bytes at 0x1fff010 is not inside guest RAM/,
  );
  throws(() => new SplitQueue(mem, { ...config(256), descGpa: 0x1008 }), /descriptor.*0x1008.*16/);
  throws(() => new SplitQueue(mem, { ...config(256), availGpa: 0x2001 }), /available ring.*0x2001/);
  throws(() => new SplitQueue(mem, { ...config(256), usedGpa: 0x3002 }), /used ring.*0x3002/);
  throws(() => new SplitQueue(mem, { ...config(256), usedGpa: end - 8 * 256 }), /used ring/);
  throws(() => new SplitQueue(mem, { ...config(2), availGpa: end - 8 }), /available ring/);
  new SplitQueue(mem, { ...config(2), availGpa: end - 10 }); // 6 + 2*2 bytes fit exactly
  throws(() => new SplitQueue(mem, { ...config(8), descGpa: 3 * 1024 * MiB }), VirtqueueError);
});

Deno.test("virtqueue: a direct chain splits into readable then writable segments", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  equal(q.pop(), undefined);
  const head = d.addChain([{ len: 16 }, { len: 100 }, { len: 512, write: true }, {
    len: 1,
    write: true,
  }]);
  d.publish(head);
  const chain = q.pop()!;
  equal(chain.head, head);
  deepEqual(chain.readable.map((s) => s.len), [16, 100]);
  deepEqual(chain.writable.map((s) => s.len), [512, 1]);
  equal(chain.readableBytes, 116);
  equal(chain.writableBytes, 513);
  equal(q.pop(), undefined);
  equal(q.lastAvailIdx, 1);
});

Deno.test("virtqueue: an indirect chain, alone or after direct descriptors", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  d.publish(d.addIndirectChain([{ len: 16 }, { len: 4096, write: true }, { len: 1, write: true }]));
  const a = q.pop()!;
  deepEqual(a.readable.map((s) => s.len), [16]);
  deepEqual(a.writable.map((s) => s.len), [4096, 1]);
  // §2.7.5.3.2: zero or more normal descriptors followed by one indirect descriptor.
  d.publish(d.addIndirectChain([{ len: 8 }, { len: 1, write: true }], [{ len: 8 }, { len: 8 }]));
  const b = q.pop()!;
  deepEqual(b.readable.map((s) => s.len), [8, 8, 8]);
  deepEqual(b.writable.map((s) => s.len), [1]);
});

Deno.test("virtqueue: the WRITE flag of a descriptor pointing at an indirect table is ignored", () => {
  const d = new FakeDriver(ram(), 4);
  const q = d.queue();
  const table = d.alloc(32);
  d.setDesc(0, d.alloc(8), 8, NEXT, 1, table);
  d.setDesc(1, d.alloc(1), 1, WRITE, 0, table);
  d.setDesc(0, table, 32, INDIRECT | WRITE);
  d.publish(0);
  const chain = q.pop()!;
  equal(chain.readableBytes, 8);
  equal(chain.writableBytes, 1);
});

Deno.test("virtqueue: zero-length descriptors carry no segment and their address is not used", () => {
  const d = new FakeDriver(ram(), 4);
  const q = d.queue();
  d.publish(d.addChain([{ len: 4 }, { len: 0, gpa: 2n ** 63n }, { len: 0, write: true }]));
  const chain = q.pop()!;
  equal(chain.readable.length, 1);
  equal(chain.writable.length, 0);
  equal(chain.writableBytes, 0);
});

Deno.test("virtqueue: avail.idx and used.idx wrap past 65535", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  for (let n = 0; n < 70_000; n++) {
    const head = d.addChain([{ len: 4, gpa: 0x20_0000 }, { len: 4, write: true, gpa: 0x20_0010 }]);
    d.publish(head);
    const chain = q.pop()!;
    equal(chain.head, head);
    q.pushUsed(chain.head, n & 0xff);
    equal(q.pop(), undefined);
  }
  equal(q.lastAvailIdx, 70_000 & 0xffff);
  equal(d.usedIdx(), 70_000 & 0xffff);
  equal(d.usedElem((70_000 - 1) % 8).len, (70_000 - 1) & 0xff);
});

Deno.test("virtqueue: avail.idx more than the queue size past the last seen breaks the queue", () => {
  const d = new FakeDriver(ram(), 4);
  const q = d.queue();
  for (let i = 0; i < 4; i++) d.setDesc(i, 0x20_0000, 4, 0);
  d.mem.writeU16(AVAIL_GPA + 2, 4); // exactly the queue size: fine
  for (let i = 0; i < 4; i++) ok(q.pop());
  d.mem.writeU16(AVAIL_GPA + 2, 9); // 5 past last seen
  throws(() => q.pop(), /avail.idx 9 is 5 entries past the last seen 4/);
  // Broken stays broken, even once the ring looks sane again.
  d.mem.writeU16(AVAIL_GPA + 2, 4);
  throws(() => q.pop(), VirtqueueError);
  throws(() => q.pushUsed(0, 0), VirtqueueError);
  ok(q.broken instanceof VirtqueueError);
});

Deno.test("virtqueue: pushUsed writes the element, then used.idx", () => {
  const d = new FakeDriver(ram(), 4);
  const q = d.queue();
  q.pushUsed(3, 513);
  q.pushUsed(1, 7);
  deepEqual(d.usedElem(0), { id: 3, len: 513 });
  deepEqual(d.usedElem(1), { id: 1, len: 7 });
  equal(d.usedIdx(), 2);
  equal(q.usedIdx, 2);
  throws(() => q.pushUsed(4, 0), RangeError);
});

Deno.test("virtqueue: without EVENT_IDX, notify after pushes unless NO_INTERRUPT", () => {
  const d = new FakeDriver(ram(), 4);
  const q = d.queue();
  equal(q.needsNotification(), false); // nothing pushed
  q.pushUsed(0, 0);
  equal(q.needsNotification(), true);
  equal(q.needsNotification(), false); // nothing new since
  d.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  q.pushUsed(0, 0);
  equal(q.needsNotification(), false);
  d.setUsedEvent(0xffff); // ignored without EVENT_IDX
  d.setAvailFlags(0);
  q.pushUsed(0, 0);
  equal(q.needsNotification(), true);
  q.armAvailEvent(); // only the check without EVENT_IDX
  equal(d.availEvent(), 0);
});

Deno.test("virtqueue: with EVENT_IDX, notify when used.idx passes used_event (and wraps)", () => {
  const d = new FakeDriver(ram(), 8, true);
  const q = d.queue();
  d.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT); // ignored with EVENT_IDX
  d.setUsedEvent(0); // interrupt once entry 0 is used
  q.pushUsed(0, 0); // used.idx 0 -> 1
  equal(q.needsNotification(), true);
  q.pushUsed(0, 0); // 1 -> 2, used_event still 0: the driver has not asked again
  equal(q.needsNotification(), false);
  d.setUsedEvent(4);
  q.pushUsed(0, 0);
  q.pushUsed(0, 0); // 2 -> 4: entry 4 not used yet
  equal(q.needsNotification(), false);
  q.pushUsed(0, 0);
  q.pushUsed(0, 0); // 4 -> 6 passes 4
  equal(q.needsNotification(), true);
  // Across the u16 wrap: advance used.idx to 0xfffe, used_event 0xffff, push two.
  while (q.usedIdx !== 0xfffe) q.pushUsed(0, 0);
  q.needsNotification();
  d.setUsedEvent(0xffff);
  q.pushUsed(0, 0); // 0xfffe -> 0xffff: entry 0xffff not used yet
  equal(q.needsNotification(), false);
  q.pushUsed(0, 0); // 0xffff -> 0
  equal(q.needsNotification(), true);
});

Deno.test("virtqueue: armAvailEvent publishes last_avail_idx in avail_event", () => {
  const d = new FakeDriver(ram(), 4, true);
  const q = d.queue();
  d.publish(d.addChain([{ len: 4 }]));
  d.publish(d.addChain([{ len: 4 }]));
  q.pop();
  q.pop();
  equal(q.armAvailEvent(), false);
  equal(d.availEvent(), 2);
  equal(q.hasAvailable(), false);
  d.publish(d.addChain([{ len: 4 }]));
  equal(q.hasAvailable(), true);
});

Deno.test("virtqueue: readChain and writeChain cross segment boundaries from an offset", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  d.publish(d.addChain([
    { len: 3, data: new Uint8Array([1, 2, 3]) },
    { len: 4, data: new Uint8Array([4, 5, 6, 7]) },
    { len: 2, write: true },
    { len: 3, write: true },
  ]));
  const chain = q.pop()!;
  const into = new Uint8Array(5);
  equal(readChain(d.mem, chain, into, 1), 5);
  deepEqual([...into], [2, 3, 4, 5, 6]);
  equal(readChain(d.mem, chain, new Uint8Array(10), 4), 3); // only 3 readable bytes left
  equal(writeChain(d.mem, chain, new Uint8Array([9, 8, 7]), 1), 3);
  deepEqual([...d.mem.slice(chain.writable[0].gpa, 2)], [0, 9]);
  deepEqual([...d.mem.slice(chain.writable[1].gpa, 3)], [8, 7, 0]);
  equal(writeChain(d.mem, chain, new Uint8Array(9), 4), 1);
});

/** Each case lays out one malformed chain at head 0 of a 4-entry queue and names the error. */
const malformed: [string, (d: FakeDriver) => void, RegExp][] = [
  ["a loop on itself", (d) => d.setDesc(0, 0x20_0000, 4, NEXT, 0), /longer than.*4.*loop/],
  ["a loop through the whole table", (d) => {
    for (let i = 0; i < 4; i++) d.setDesc(i, 0x20_0000, 4, NEXT, (i + 1) % 4);
  }, /longer than its table of 4/],
  ["a next index past the table", (d) => d.setDesc(0, 0x20_0000, 4, NEXT, 4), /descriptor 4/],
  ["a head index past the table", (d) => d.mem.writeU16(AVAIL_GPA + 4, 4), /head 4/],
  ["a buffer past the end of RAM", (d) => d.setDesc(0, 32 * MiB - 4, 8, 0), /outside guest RAM/],
  ["a buffer at a 64-bit address", (d) => d.setDesc(0, 2n ** 64n - 1n, 1, 0), /outside RAM/],
  ["a readable after a writable", (d) => {
    d.setDesc(0, 0x20_0000, 4, WRITE | NEXT, 1);
    d.setDesc(1, 0x20_0000, 4, 0);
  }, /readable descriptor follows a writable/],
  ["a nested indirect table", (d) => {
    const outer = d.alloc(16);
    const inner = d.alloc(16);
    d.setDesc(0, 0x20_0000, 4, 0, 0, inner);
    d.setDesc(0, inner, 16, INDIRECT, 0, outer);
    d.setDesc(0, outer, 16, INDIRECT);
  }, /nests an indirect table/],
  ["an indirect length not a multiple of 16", (d) => {
    d.setDesc(0, d.alloc(24), 24, INDIRECT);
  }, /indirect table of 24 bytes/],
  ["an empty indirect table", (d) => d.setDesc(0, d.alloc(16), 0, INDIRECT), /of 0 bytes/],
  ["an indirect table over 32768 entries", (d) => {
    d.setDesc(0, 0x20_0000, 16 * 32769, INDIRECT);
  }, /is not 1 to 32768/],
  ["INDIRECT with NEXT", (d) => d.setDesc(0, d.alloc(16), 16, INDIRECT | NEXT, 1), /INDIRECT/],
  ["an indirect table outside RAM", (d) => {
    d.setDesc(0, 32 * MiB - 16, 32, INDIRECT);
  }, /indirect table of 32 bytes/],
  ["a loop inside an indirect table", (d) => {
    const t = d.alloc(32);
    d.setDesc(0, 0x20_0000, 4, NEXT, 1, t);
    d.setDesc(1, 0x20_0000, 4, NEXT, 0, t);
    d.setDesc(0, t, 32, INDIRECT);
  }, /longer than its indirect table of 2/],
  ["an indirect next past its table", (d) => {
    const t = d.alloc(32);
    d.setDesc(0, 0x20_0000, 4, NEXT, 2, t);
    d.setDesc(0, t, 32, INDIRECT);
  }, /descriptor 2, past its indirect table of 2/],
];

for (const [what, layOut, message] of malformed) {
  Deno.test(`virtqueue: ${what} is refused with VirtqueueError`, () => {
    const d = new FakeDriver(ram(), 4);
    const q = d.queue();
    layOut(d);
    d.mem.writeU16(AVAIL_GPA + 2, 1);
    throws(() => q.pop(), (e: unknown) => e instanceof VirtqueueError && message.test(e.message));
  });
}

Deno.test("virtqueue: a buffer crossing from low RAM into the MMIO hole is refused", () => {
  const GiB = 1024 * MiB;
  const d = new FakeDriver(ram(3 * GiB + 16 * MiB), 4);
  const q = d.queue();
  d.setDesc(0, 3 * GiB - 4096, 4096, NEXT, 1); // the last page below the hole: fine
  d.setDesc(1, 3 * GiB - 4096, 4097, WRITE); // one byte into the hole
  d.publish(0);
  throws(() => q.pop(), /4097 bytes at 0xbffff000 is outside guest RAM/);
  const d2 = new FakeDriver(d.mem, 4);
  const q2 = d2.queue();
  d2.setDesc(0, 4 * GiB, 16 * MiB, 0); // all of high RAM: fine
  d2.publish(0);
  equal(q2.pop()!.readableBytes, 16 * MiB);
});

// Property tests over a small machine with a hole: RAM at [0, 64 KiB) and [128 KiB, 192 KiB).
const SMALL: MemoryLayout = {
  ramBytes: 128 * 1024,
  regions: [
    { gpa: 0, size: 64 * 1024, hostOffset: 0 },
    { gpa: 128 * 1024, size: 64 * 1024, hostOffset: 64 * 1024 },
  ],
  lowRamEnd: 64 * 1024,
  e820: () => [],
};

function insideRam(s: Segment): boolean {
  return SMALL.regions.some((r) => s.gpa >= r.gpa && s.gpa + s.len <= r.gpa + r.size);
}

// Weighted toward well-formed values, so that many runs get past the first check.
const descriptor = fc.record({
  addr: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xff00 }).map(BigInt) },
    { weight: 4, arbitrary: fc.integer({ min: 0x2_0000, max: 0x2_ff00 }).map(BigInt) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0x3_0000 }).map(BigInt) },
    { weight: 2, arbitrary: fc.constantFrom(0x1000n, 0x8000n, 0xfff0n, 0x2_fff0n, 2n ** 53n) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  ),
  len: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 64 }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 16 }).map((n) => 16 * n) },
    { weight: 1, arbitrary: fc.constantFrom(0x1_0000, 0x2_0000, 0xffff_ffff) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  ),
  flags: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(0, NEXT, WRITE, NEXT | WRITE) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  ),
  next: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 16 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  ),
});

Deno.test("virtqueue property: random tables and rings give chains inside RAM or VirtqueueError", () => {
  const mem = new GuestMemory(new ArrayBuffer(SMALL.ramBytes), SMALL);
  const desc = 0x1000, avail = 0x2000, used = 0x3000;
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 4, 8, 16),
      fc.array(descriptor, { minLength: 16, maxLength: 16 }),
      fc.array(
        fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: 0, max: 15 }).map((n) => -1 - n) },
          { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
        ),
        { minLength: 16, maxLength: 16 },
      ),
      // avail.idx: mostly 0..size chains ahead, sometimes anything.
      fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffff })),
      fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
      (size, descs, ring, [wild, idx], noise) => {
        const availIdx = wild === 0 ? idx : idx % (size + 1);
        // Random bytes where random addresses may point, so indirect tables parse noise too.
        mem.write(0x8000, noise);
        mem.write(0x2_0000, noise);
        descs.forEach((dsc, i) => {
          mem.writeU64(desc + 16 * i, dsc.addr);
          mem.writeU32(desc + 16 * i + 8, dsc.len);
          mem.writeU16(desc + 16 * i + 12, dsc.flags);
          mem.writeU16(desc + 16 * i + 14, dsc.next);
          // Also scatter the descriptors into the noise, as indirect tables.
          mem.writeU64(0x8000 + 16 * i, dsc.addr);
          mem.writeU32(0x8000 + 16 * i + 8, dsc.len);
          mem.writeU16(0x8000 + 16 * i + 12, dsc.flags & ~INDIRECT);
          mem.writeU16(0x8000 + 16 * i + 14, dsc.next);
        });
        // A negative entry stands for a head inside the queue: -1 - (head mod size).
        ring.forEach((h, i) => mem.writeU16(avail + 4 + 2 * i, h < 0 ? (-1 - h) % size : h));
        mem.writeU16(avail + 2, availIdx);
        const q = new SplitQueue(mem, {
          size,
          descGpa: desc,
          availGpa: avail,
          usedGpa: used,
          eventIdx: true,
        });
        // At most `size` chains are available; a bounded number of pops must settle it.
        for (let n = 0; n <= size + 1; n++) {
          let chain;
          try {
            chain = q.pop();
          } catch (e) {
            if (e instanceof VirtqueueError) return;
            throw e;
          }
          if (chain === undefined) return;
          ok(chain.head < size);
          for (const s of [...chain.readable, ...chain.writable]) {
            ok(s.len > 0 && insideRam(s), `segment ${s.gpa}+${s.len} outside RAM`);
          }
          equal(chain.readableBytes, chain.readable.reduce((a, s) => a + s.len, 0));
          equal(chain.writableBytes, chain.writable.reduce((a, s) => a + s.len, 0));
          q.pushUsed(chain.head, 0);
          q.needsNotification();
        }
        ok(false, "pop kept returning chains past the avail index");
      },
    ),
    { numRuns: 2000 },
  );
});
