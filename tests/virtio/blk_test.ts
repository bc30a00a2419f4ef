import fc from "fast-check";
import { deepEqual, equal, ok, throws } from "../assert.ts";
import {
  BLK_CONFIG_BYTES,
  blkConfig,
  blkFeatures,
  BlkRequestError,
  type BlockBackend,
  BlockBackendError,
  FileBackend,
  handleBlkRequest,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from "../../src/virtio/blk.ts";
import type { DescriptorChain } from "../../src/virtio/queue.ts";
import { type Buf, FakeDriver, ram } from "./fake_driver.ts";

const DISK_BYTES = 64 * 1024;

function header(type: number, sector: number | bigint): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

/** A disk image of DISK_BYTES whose byte i is (i * 7 + (i >> 9)) & 0xff. */
function pattern(bytes = DISK_BYTES): Uint8Array {
  const p = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) p[i] = (i * 7 + (i >> 9)) & 0xff;
  return p;
}

function tempImage(bytes = pattern()): string {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  Deno.writeFileSync(path, bytes);
  return path;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Build one request chain, pop it, and return it with the gpa of its status byte. */
function request(d: FakeDriver, bufs: Buf[]): { chain: DescriptorChain; status: () => number } {
  const q = d.queue();
  d.availIdx = 0;
  d.publish(d.addChain(bufs));
  const chain = q.pop()!;
  const last = chain.writable[chain.writable.length - 1];
  return { chain, status: () => d.mem.readU8(last.gpa + last.len - 1) };
}

Deno.test("blk: IN reads sectors into buffers spanning descriptors, header split too", () => {
  const path = tempImage();
  const disk = new FileBackend(path);
  try {
    equal(disk.sizeBytes, DISK_BYTES);
    const d = new FakeDriver(ram(), 16);
    const h = header(VIRTIO_BLK_T_IN, 3);
    const { chain, status } = request(d, [
      { len: 10, data: h.subarray(0, 10) },
      { len: 6, data: h.subarray(10) },
      { len: 1000, write: true },
      { len: 536 + 1, write: true }, // 1536 data bytes in all, then the status byte
    ]);
    d.mem.writeU8(chain.writable[1].gpa + 536, 0xff);
    equal(handleBlkRequest(d.mem, chain, disk, "id"), 1536 + 1);
    equal(status(), VIRTIO_BLK_S_OK);
    const got = new Uint8Array(1536);
    got.set(d.mem.slice(chain.writable[0].gpa, 1000), 0);
    got.set(d.mem.slice(chain.writable[1].gpa, 536), 1000);
    deepEqual(got, pattern().subarray(3 * 512, 6 * 512));
  } finally {
    disk.close();
    Deno.removeSync(path);
  }
});

Deno.test("blk: OUT then IN reads back what was written; FLUSH completes OK", () => {
  const path = tempImage();
  const disk = new FileBackend(path);
  try {
    const d = new FakeDriver(ram(), 16);
    const data = new Uint8Array(1024).map((_, i) => 255 - (i & 0xff));
    const w = request(d, [
      { len: 16, data: header(VIRTIO_BLK_T_OUT, 100) },
      { len: 1024, data },
      { len: 1, write: true },
    ]);
    equal(handleBlkRequest(d.mem, w.chain, disk, "id"), 1);
    equal(w.status(), VIRTIO_BLK_S_OK);
    const f = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_FLUSH, 0) }, {
      len: 1,
      write: true,
    }]);
    equal(handleBlkRequest(d.mem, f.chain, disk, "id"), 1);
    equal(f.status(), VIRTIO_BLK_S_OK);
    const r = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_IN, 100) }, {
      len: 1025,
      write: true,
    }]);
    equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 1025);
    equal(r.status(), VIRTIO_BLK_S_OK);
    deepEqual(d.mem.read(r.chain.writable[0].gpa, 1024), data);
    const file = Deno.readFileSync(path);
    deepEqual(file.subarray(100 * 512, 102 * 512), data);
    deepEqual(file.subarray(0, 100 * 512), pattern().subarray(0, 100 * 512));
  } finally {
    disk.close();
    Deno.removeSync(path);
  }
});

Deno.test("blk: GET_ID writes 20 NUL-padded bytes, truncated to a shorter buffer", () => {
  const disk = new MemoryDisk(DISK_BYTES);
  const d = new FakeDriver(ram(), 16);
  const full = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_GET_ID, 0) }, {
    len: 21,
    write: true,
  }]);
  d.mem.slice(full.chain.writable[0].gpa, 20).fill(0xee);
  equal(handleBlkRequest(d.mem, full.chain, disk, "denovmm-disk0"), 21);
  equal(full.status(), VIRTIO_BLK_S_OK);
  const id = d.mem.read(full.chain.writable[0].gpa, 20);
  deepEqual(
    id,
    new Uint8Array([...new TextEncoder().encode("denovmm-disk0"), 0, 0, 0, 0, 0, 0, 0]),
  );
  const short = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_GET_ID, 0) }, {
    len: 5,
    write: true,
  }]);
  equal(handleBlkRequest(d.mem, short.chain, disk, "a-very-long-identifier-string"), 5);
  deepEqual(d.mem.read(short.chain.writable[0].gpa, 4), new TextEncoder().encode("a-ve"));
  equal(short.status(), VIRTIO_BLK_S_OK);
});

Deno.test("blk: out-of-range and partial-sector requests fail with IOERR and leave the file alone", async () => {
  const path = tempImage();
  const before = await sha256(path);
  const disk = new FileBackend(path);
  try {
    const d = new FakeDriver(ram(), 16);
    const sectors = DISK_BYTES / 512;
    const cases: Buf[][] = [
      // A write whose last sector is one past the end.
      [{ len: 16, data: header(VIRTIO_BLK_T_OUT, sectors - 1) }, { len: 1024 }, {
        len: 1,
        write: true,
      }],
      // A write starting at the end, at a huge sector, at the largest u64.
      [{ len: 16, data: header(VIRTIO_BLK_T_OUT, sectors) }, { len: 512 }, { len: 1, write: true }],
      [{ len: 16, data: header(VIRTIO_BLK_T_OUT, 2n ** 55n) }, { len: 512 }, {
        len: 1,
        write: true,
      }],
      [{ len: 16, data: header(VIRTIO_BLK_T_OUT, 2n ** 64n - 1n) }, { len: 512 }, {
        len: 1,
        write: true,
      }],
      // A write of a partial sector.
      [{ len: 16, data: header(VIRTIO_BLK_T_OUT, 0) }, { len: 100 }, { len: 1, write: true }],
      // Reads past the end or of a partial sector.
      [{ len: 16, data: header(VIRTIO_BLK_T_IN, sectors) }, { len: 513, write: true }],
      [{ len: 16, data: header(VIRTIO_BLK_T_IN, 0) }, { len: 101, write: true }],
      // A header shorter than 16 bytes.
      [{ len: 15, data: header(VIRTIO_BLK_T_OUT, 0) }, { len: 1, write: true }],
    ];
    for (const bufs of cases) {
      const r = request(d, bufs);
      equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 1);
      equal(r.status(), VIRTIO_BLK_S_IOERR);
    }
    // The last sector itself is fine.
    const last = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_IN, sectors - 1) }, {
      len: 513,
      write: true,
    }]);
    equal(handleBlkRequest(d.mem, last.chain, disk, "id"), 513);
    equal(last.status(), VIRTIO_BLK_S_OK);
  } finally {
    disk.close();
  }
  equal(await sha256(path), before);
  Deno.removeSync(path);
});

Deno.test("blk: a read-only disk fails writes with IOERR and stays byte-identical", async () => {
  const path = tempImage();
  const before = await sha256(path);
  const disk = new FileBackend(path, { readOnly: true });
  try {
    ok(disk.readOnly);
    const d = new FakeDriver(ram(), 16);
    const w = request(d, [
      { len: 16, data: header(VIRTIO_BLK_T_OUT, 0) },
      { len: 512, data: new Uint8Array(512).fill(0x55) },
      { len: 1, write: true },
    ]);
    equal(handleBlkRequest(d.mem, w.chain, disk, "id"), 1);
    equal(w.status(), VIRTIO_BLK_S_IOERR);
    throws(() => disk.write(0, new Uint8Array(512)), /read-only/);
    // Reads and flushes still work.
    const r = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_IN, 0) }, {
      len: 513,
      write: true,
    }]);
    equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 513);
    deepEqual(d.mem.read(r.chain.writable[0].gpa, 512), pattern().subarray(0, 512));
    const f = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_FLUSH, 0) }, {
      len: 1,
      write: true,
    }]);
    handleBlkRequest(d.mem, f.chain, disk, "id");
    equal(f.status(), VIRTIO_BLK_S_OK);
  } finally {
    disk.close();
  }
  equal(await sha256(path), before);
  Deno.removeSync(path);
});

Deno.test("blk: unknown request types answer UNSUPP", () => {
  const disk = new MemoryDisk(DISK_BYTES);
  const d = new FakeDriver(ram(), 16);
  for (const type of [2, 11, 13, 14, 0x8000_0000]) {
    const r = request(d, [{ len: 16, data: header(type, 0) }, { len: 513, write: true }]);
    equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 1);
    equal(r.status(), VIRTIO_BLK_S_UNSUPP);
  }
  equal(disk.writes, 0);
});

Deno.test("blk: a chain with no writable status byte is a BlkRequestError", () => {
  const disk = new MemoryDisk(DISK_BYTES);
  const d = new FakeDriver(ram(), 16);
  const q = d.queue();
  d.publish(d.addChain([{ len: 16, data: header(VIRTIO_BLK_T_IN, 0) }, { len: 512 }]));
  throws(() => handleBlkRequest(d.mem, q.pop()!, disk, "id"), BlkRequestError);
});

Deno.test("blk: a host I/O error becomes IOERR", () => {
  const disk = new MemoryDisk(DISK_BYTES);
  disk.fail = true;
  const d = new FakeDriver(ram(), 16);
  const r = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_FLUSH, 0) }, { len: 1, write: true }]);
  equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 1);
  equal(r.status(), VIRTIO_BLK_S_IOERR);
});

Deno.test("blk: FileBackend names the disk and the reason in one line", () => {
  throws(
    () => new FileBackend("/nonexistent/dir/x.img"),
    (e: unknown) =>
      e instanceof BlockBackendError && e.message === "disk /nonexistent/dir/x.img: " +
          "no such file or directory",
  );
  const dir = Deno.makeTempDirSync();
  try {
    throws(() => new FileBackend(dir, { readOnly: true }), /not a regular file/);
    throws(() => new FileBackend(dir), /is a directory/);
  } finally {
    Deno.removeSync(dir);
  }
  const path = tempImage(new Uint8Array(1000));
  const disk = new FileBackend(path);
  throws(() => disk.read(512, new Uint8Array(512)), /past its 1000 bytes/);
  disk.close();
  throws(() => disk.read(0, new Uint8Array(1)), /closed/);
  Deno.removeSync(path);
});

Deno.test("blk: a trailing partial sector is not part of the disk", () => {
  const disk = new MemoryDisk(1000);
  const d = new FakeDriver(ram(), 16);
  const r = request(d, [{ len: 16, data: header(VIRTIO_BLK_T_IN, 1) }, {
    len: 513,
    write: true,
  }]);
  handleBlkRequest(d.mem, r.chain, disk, "id");
  equal(r.status(), VIRTIO_BLK_S_IOERR);
  const config = new DataView(blkConfig(1000).buffer);
  equal(config.getBigUint64(0, true), 1n);
});

Deno.test("blk: config space and features", () => {
  const config = blkConfig(DISK_BYTES + 511);
  equal(config.length, BLK_CONFIG_BYTES);
  const v = new DataView(config.buffer);
  equal(v.getBigUint64(0, true), BigInt(DISK_BYTES / 512));
  equal(v.getUint32(8, true), 1024 * 1024); // size_max
  equal(v.getUint32(12, true), 126); // seg_max
  equal(v.getUint32(20, true), 512); // blk_size
  const bit = (n: number) => 1n << BigInt(n);
  equal(
    blkFeatures(false),
    bit(1) | bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH),
  );
  equal(blkFeatures(true), blkFeatures(false) | bit(VIRTIO_BLK_F_RO));
});

/** An in-memory disk that asserts every access lies inside it, and counts writes. */
class MemoryDisk implements BlockBackend {
  readonly bytes: Uint8Array;
  writes = 0;
  fail = false;
  constructor(readonly sizeBytes: number, readonly readOnly = false) {
    this.bytes = new Uint8Array(sizeBytes);
  }
  read(offset: number, into: Uint8Array): void {
    this.#check(offset, into.length);
    into.set(this.bytes.subarray(offset, offset + into.length));
  }
  write(offset: number, from: Uint8Array): void {
    ok(!this.readOnly, "a read-only disk was written");
    this.#check(offset, from.length);
    this.writes++;
    this.bytes.set(from, offset);
  }
  flush(): void {
    if (this.fail) throw new BlockBackendError("disk mem: fdatasync failed: EIO (5)");
  }
  #check(offset: number, len: number): void {
    if (this.fail) throw new BlockBackendError("disk mem: EIO");
    const whole = Math.floor(this.sizeBytes / 512) * 512;
    ok(Number.isSafeInteger(offset) && offset >= 0 && offset + len <= whole, `${offset}+${len}`);
  }
}

/** Request types: mostly the real ones, sometimes anything. */
const requestType = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_OUT) },
  { weight: 1, arbitrary: fc.constantFrom(VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
);

/** Sectors: mostly inside a small disk, sometimes at its end or anywhere in 64 bits. */
function sectorOf(diskSectors: number) {
  return fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: Math.max(diskSectors - 1, 0) }).map(BigInt) },
    {
      weight: 1,
      arbitrary: fc.integer({ min: diskSectors - 2, max: diskSectors + 2 }).map((n) =>
        BigInt(Math.max(n, 0))
      ),
    },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  );
}

/** Data buffer lengths: mostly whole sectors, sometimes a few bytes off or tiny. */
const dataLen = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => 512 * n) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(511, 513, 4095, 1000) },
);

/**
 * A request as a driver sends it: IN or OUT of 1 to 8 whole sectors inside a disk of 16 to 64
 * (with a partial sector at the end a third of the time), split over 1 to 3 buffers; the disk
 * is read-only a quarter of the time.
 */
const validRequest = fc.integer({ min: 16, max: 64 }).chain((sectors) =>
  fc.integer({ min: 1, max: 8 }).chain((n) =>
    fc.tuple(
      fc.constant(sectors * 512 + (sectors % 3 === 0 ? 100 : 0)),
      fc.integer({ min: 0, max: 3 }).map((k) => k === 0),
      fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_OUT),
      fc.integer({ min: 0, max: sectors - n }).map(BigInt),
      fc.integer({ min: 1, max: Math.min(3, n) }).map((parts) =>
        Array.from({ length: parts }, (_, k) => ({
          len: 512 * (k === 0 ? n - parts + 1 : 1),
          write: false,
        }))
      ),
      fc.constant(true),
    )
  )
);

/** Share of runs that reached a state; printed, and the test fails under `least`. */
function reach(what: string, hits: number, runs: number, least: number): void {
  const share = hits / runs;
  console.log(`${what}: ${hits} of ${runs} runs (${(100 * share).toFixed(0)}%)`);
  ok(share >= least, `${what} in only ${hits} of ${runs} runs: the generator no longer gets there`);
}

Deno.test("blk property: random requests never touch the disk outside its whole sectors", () => {
  const mem = ram();
  const runs = 1000;
  let wrote = 0, read = 0, total = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        { weight: 3, arbitrary: validRequest },
        {
          weight: 1,
          arbitrary: fc.integer({ min: 0, max: 64 }).chain((sectors) =>
            fc.tuple(
              fc.constant(sectors * 512 + (sectors % 3 === 0 ? 100 : 0)),
              fc.boolean(),
              requestType,
              sectorOf(sectors),
              fc.array(fc.record({ len: dataLen, write: fc.boolean() }), {
                minLength: 1,
                maxLength: 8,
              }),
              fc.boolean(),
            )
          ),
        },
      ),
      ([size, readOnly, type, sector, rest, withStatus]) => {
        total++;
        const disk = new MemoryDisk(size, readOnly);
        let reads = 0;
        const counted: BlockBackend = {
          sizeBytes: disk.sizeBytes,
          readOnly,
          read: (o, into) => (reads++, disk.read(o, into)),
          write: (o, from) => disk.write(o, from),
          flush: () => disk.flush(),
        };
        const h = header(type, sector);
        // The header spread over two readable buffers, then the data as a driver lays it out
        // for the type (readable for OUT, writable for IN), or any mix for other types; then
        // the status byte.
        const bufs: Buf[] = [{ len: 7, data: h.subarray(0, 7) }, { len: 9, data: h.subarray(7) }];
        const data: Buf[] = type === VIRTIO_BLK_T_OUT
          ? rest.map((b) => ({ len: b.len, data: new Uint8Array(b.len).fill(0xa5) }))
          : type === VIRTIO_BLK_T_IN
          ? rest.map((b) => ({ len: b.len, write: true }))
          : rest;
        bufs.push(...data.filter((b) => !b.write), ...data.filter((b) => b.write));
        if (withStatus) bufs.push({ len: 1, write: true });
        const d = new FakeDriver(mem, 16); // a fresh buffer allocator per run
        const q = d.queue();
        d.publish(d.addChain(bufs));
        const chain = q.pop()!;
        let written;
        try {
          written = handleBlkRequest(mem, chain, counted, "id");
        } catch (e) {
          ok(e instanceof BlkRequestError && chain.writableBytes === 0);
          return;
        }
        ok(written >= 1 && written <= chain.writableBytes);
        if (readOnly) equal(disk.writes, 0);
        if (disk.writes > 0) wrote++;
        if (reads > 0) read++;
        const last = chain.writable[chain.writable.length - 1];
        ok([0, 1, 2].includes(mem.readU8(last.gpa + last.len - 1)));
      },
    ),
    { numRuns: runs },
  );
  reach("blk property: requests that wrote the disk", wrote, total, 0.2);
  reach("blk property: requests that read the disk", read, total, 0.2);
});

Deno.test("blk property: random requests on an image file never grow it or touch its tail", () => {
  const mem = ram();
  const size = 8 * 512 + 100; // a trailing partial sector the guest must never reach
  const path = tempImage(pattern(size));
  const disk = new FileBackend(path);
  let wrote = 0, total = 0;
  try {
    fc.assert(
      fc.property(
        fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH),
        fc.oneof(
          { weight: 3, arbitrary: fc.integer({ min: 0, max: 4 }).map(BigInt) },
          { weight: 1, arbitrary: sectorOf(8) },
        ),
        fc.array(
          fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom(512, 512, 1024, 4096, 512) },
            { weight: 1, arbitrary: fc.constantFrom(0, 1, 100) },
          ),
          { minLength: 1, maxLength: 2 },
        ),
        (type, sector, lens) => {
          total++;
          const d = new FakeDriver(mem, 16);
          const write = type === VIRTIO_BLK_T_IN;
          const bufs: Buf[] = [{ len: 16, data: header(type, sector) }];
          bufs.push(...lens.map((len) => ({ len, write, data: new Uint8Array(len).fill(0xaa) })));
          if (!write) bufs.push({ len: 1, write: true });
          const q = d.queue();
          d.publish(d.addChain(bufs));
          const chain = q.pop()!;
          if (chain.writableBytes === 0) return;
          handleBlkRequest(mem, chain, disk, "id");
          const last = chain.writable[chain.writable.length - 1];
          const status = mem.readU8(last.gpa + last.len - 1);
          if (type === VIRTIO_BLK_T_OUT && status === VIRTIO_BLK_S_OK) wrote++;
        },
      ),
      { numRuns: 300 },
    );
  } finally {
    disk.close();
  }
  reach("blk property: writes to the image file that completed OK", wrote, total, 0.2);
  const after = Deno.readFileSync(path);
  equal(after.length, size);
  deepEqual(after.subarray(8 * 512), pattern(size).subarray(8 * 512));
  Deno.removeSync(path);
});

Deno.test("blk: a request over many guest buffers is one backend read or write, copied exactly", () => {
  const path = tempImage();
  const file = new FileBackend(path);
  const calls: string[] = [];
  const disk = {
    sizeBytes: file.sizeBytes,
    readOnly: false,
    read: (
      o: number,
      into: Uint8Array,
    ) => (calls.push(`read ${o} ${into.length}`), file.read(o, into)),
    write: (
      o: number,
      from: Uint8Array,
    ) => (calls.push(`write ${o} ${from.length}`), file.write(o, from)),
    flush: () => file.flush(),
  };
  try {
    const d = new FakeDriver(ram(), 16);
    const data = new Uint8Array(1536).map((_, i) => (i * 7) & 0xff);
    const w = request(d, [
      { len: 16, data: header(VIRTIO_BLK_T_OUT, 8) },
      { len: 512, data: data.subarray(0, 512) },
      { len: 700, data: data.subarray(512, 1212) },
      { len: 324, data: data.subarray(1212) },
      { len: 1, write: true },
    ]);
    equal(handleBlkRequest(d.mem, w.chain, disk, "id"), 1);
    equal(w.status(), VIRTIO_BLK_S_OK);
    const r = request(d, [
      { len: 16, data: header(VIRTIO_BLK_T_IN, 8) },
      { len: 100, write: true },
      { len: 1000, write: true },
      { len: 436 + 1, write: true },
    ]);
    equal(handleBlkRequest(d.mem, r.chain, disk, "id"), 1537);
    equal(r.status(), VIRTIO_BLK_S_OK);
    deepEqual(calls, [`write ${8 * 512} 1536`, `read ${8 * 512} 1536`]);
    const got = new Uint8Array(1536);
    got.set(d.mem.slice(r.chain.writable[0].gpa, 100), 0);
    got.set(d.mem.slice(r.chain.writable[1].gpa, 1000), 100);
    got.set(d.mem.slice(r.chain.writable[2].gpa, 436), 1100);
    deepEqual(got, data);
    deepEqual(Deno.readFileSync(path).subarray(8 * 512, 11 * 512), data);
  } finally {
    file.close();
    Deno.removeSync(path);
  }
});
