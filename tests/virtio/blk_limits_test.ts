import { equal, match, ok, throws } from "../assert.ts";
import {
  BLK_MAX_REQUEST_BYTES,
  BLK_SEG_MAX,
  BLK_SIZE_MAX,
  BlkDevice,
  type BlockBackend,
  FileBackend,
  SECTOR_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from "../../src/virtio/blk.ts";
import { VIRTQ_DESC_F_INDIRECT } from "../../src/virtio/queue.ts";
import { FakeDriver, MiB, ram } from "./fake_driver.ts";
import { VirtioHarness } from "./virtio_harness.ts";

/** A disk of any size that holds nothing and records what touched it. */
class CountingDisk implements BlockBackend {
  readOnly = false;
  reads = 0;
  writes = 0;
  constructor(readonly sizeBytes: number) {}
  read(_offset: number, into: Uint8Array): void {
    this.reads++;
    into.fill(0xab);
  }
  write(): void {
    this.writes++;
  }
  flush(): void {}
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

/**
 * A request whose data part is `count` buffers of `len` bytes, all over the same guest RAM
 * (a guest may do that), laid out through an indirect table so any count fits the ring.
 */
function bigRequest(d: FakeDriver, type: number, count: number, len: number) {
  const hdr = d.alloc(16);
  d.mem.write(hdr, header(type, 0));
  const status = d.alloc(1);
  const table = d.alloc(16 * (count + 2));
  const write = type === VIRTIO_BLK_T_IN ? 2 : 0;
  d.setDesc(0, hdr, 16, 1, 1, table);
  for (let i = 0; i < count; i++) d.setDesc(i + 1, 0x40_0000, len, 1 | write, i + 2, table);
  d.setDesc(count + 1, status, 1, 2, 0, table);
  d.setDesc(0, table, 16 * (count + 2), VIRTQ_DESC_F_INDIRECT);
  d.mem.writeU8(status, 0xff);
  d.publish(0);
  return { status: () => d.mem.readU8(status) };
}

Deno.test("blk: a request of 4 GiB or more completes IOERR and the VM goes on", () => {
  // 129 buffers of 32 MiB on an 8 GiB disk: the case (the used length overflowed).
  const disk = new CountingDisk(8 * 1024 * MiB);
  const mem = ram(64 * MiB);
  const hh = new VirtioHarness(new BlkDevice(mem, disk, "d0"), 1, mem);
  const [d] = hh.bringUp();
  const r = bigRequest(d, VIRTIO_BLK_T_IN, 129, 32 * MiB);
  hh.runner.process(0);
  equal(r.status(), VIRTIO_BLK_S_IOERR);
  equal(d.usedIdx(), 1);
  equal(d.usedElem(0).len, 1, "only the status byte is reported written");
  equal(disk.reads, 0, "the disk was not touched");
  equal(hh.status() & 0x40, 0, "not a device fault: the device goes on");
});

Deno.test("blk: over seg_max, over size_max, or over the request cap: IOERR, disk untouched", () => {
  const mem = ram(64 * MiB);
  const disk = new CountingDisk(8 * 1024 * MiB);
  const h = new VirtioHarness(new BlkDevice(mem, disk, "d0"), 1, mem);
  const [d] = h.bringUp();
  const cases: Array<[number, number, number]> = [
    [VIRTIO_BLK_T_OUT, BLK_SEG_MAX + 1, 4096], // one segment too many
    [VIRTIO_BLK_T_IN, 2, BLK_SIZE_MAX + 4096], // a segment over size_max
    [VIRTIO_BLK_T_OUT, BLK_SEG_MAX, BLK_SIZE_MAX + 512], // over the cap in all
  ];
  for (const [type, count, len] of cases) {
    const r = bigRequest(d, type, count, len);
    h.runner.process(0);
    equal(r.status(), VIRTIO_BLK_S_IOERR, `${count} x ${len}`);
  }
  equal(disk.reads + disk.writes, 0);
  // At the limits exactly: served.
  const ok1 = bigRequest(d, VIRTIO_BLK_T_OUT, BLK_SEG_MAX, 32 * SECTOR_BYTES);
  h.runner.process(0);
  equal(ok1.status(), VIRTIO_BLK_S_OK);
  ok(disk.writes > 0);
  ok(BLK_MAX_REQUEST_BYTES < 2 ** 32);
});

Deno.test("blk: a FIFO, a socket, a directory or a missing file: one error, no hang", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    ok(mk.success);
    // Opening a FIFO for reading blocks until a writer comes (as --disk FIFO,ro did): run the
    // check in a child with a deadline, so a regression fails instead of hanging the suite.
    const code = `
      import { FileBackend } from "${new URL("../../src/virtio/blk.ts", import.meta.url)}";
      for (const ro of [true, false]) {
        try { new FileBackend(${JSON.stringify(fifo)}, { readOnly: ro }); console.log("opened"); }
        catch (e) { console.log(e.message); }
      }`;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      signal: AbortSignal.timeout(30_000),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(child.stdout).trim().split("\n");
    equal(out.length, 2, new TextDecoder().decode(child.stderr));
    for (const line of out) match(line, /fifo: not a regular file or block device/);
    throws(() => new FileBackend(dir, { readOnly: true }), /not a regular file or block device/);
    throws(() => new FileBackend(`${dir}/none`), /no such file/i);
    const sock = Deno.listen({ transport: "unix", path: `${dir}/sock` });
    try {
      throws(() => new FileBackend(`${dir}/sock`, { readOnly: true }), /disk .*sock: /);
    } finally {
      sock.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("blk: a block device is a disk, sized by its end", async () => {
  // A loop device over a temp file of our own (the tests run as root, as the README says).
  const img = Deno.makeTempFileSync();
  Deno.truncateSync(img, 3 * MiB);
  const attach = await new Deno.Command("losetup", {
    args: ["--find", "--show", img],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dev = new TextDecoder().decode(attach.stdout).trim();
  try {
    ok(attach.success, `losetup: ${new TextDecoder().decode(attach.stderr)}`);
    const disk = new FileBackend(dev);
    try {
      equal(disk.sizeBytes, 3 * MiB);
      disk.write(MiB, new Uint8Array(512).fill(7));
      disk.flush();
      const back = new Uint8Array(512);
      disk.read(MiB, back);
      equal(back[511], 7);
    } finally {
      disk.close();
    }
  } finally {
    if (dev) await new Deno.Command("losetup", { args: ["-d", dev] }).output();
    Deno.removeSync(img);
  }
});
