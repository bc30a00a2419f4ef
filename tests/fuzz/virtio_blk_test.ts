// Hostile-guest fuzzing of virtio-blk behind the virtio-pci transport, on an in-memory disk
// and on a real image file: no exception escapes, the device writes only the guest's writable
// buffers and its used ring, and the disk is touched only inside its whole sectors (never on
// a read-only disk; the image file never grows and its partial tail sector never changes).
import { equal, ok } from "../assert.ts";
import {
  blkConfig,
  BlkDevice,
  blkFeatures,
  type BlockBackend,
  FileBackend,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from "../../src/virtio/blk.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import { fuzz, FuzzStats, ops, pick } from "./harness.ts";
import { type FuzzBuf, fuzzRun, STEP_KINDS, type VirtioFuzzModel } from "./virtio_harness.ts";

const SECTORS = 64;
const DISK_BYTES = SECTORS * 512 + 100; // and a partial sector the guest must never reach

/** An in-memory disk that checks every access the device makes. */
class MemoryDisk implements BlockBackend {
  readonly bytes = new Uint8Array(DISK_BYTES);
  writes = 0;
  constructor(readonly readOnly: boolean, readonly sizeBytes = DISK_BYTES) {}
  #check(offset: number, len: number) {
    ok(Number.isSafeInteger(offset) && offset >= 0 && offset % 512 === 0, `offset ${offset}`);
    ok(offset + len <= SECTORS * 512, `${len} bytes at ${offset} leave the whole sectors`);
  }
  read(offset: number, into: Uint8Array) {
    this.#check(offset, into.length);
    into.set(this.bytes.subarray(offset, offset + into.length));
  }
  write(offset: number, from: Uint8Array) {
    ok(!this.readOnly, "a write reached a read-only disk");
    this.#check(offset, from.length);
    this.bytes.set(from, offset);
    this.writes++;
  }
  flush() {}
}

const TYPES = [
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  2,
  11,
  0xffff_ffff,
];
const SECTOR_EDGES = [0, 1, SECTORS - 1, SECTORS, SECTORS + 1, 2 ** 32, 2 ** 53, 2 ** 55 - 1];

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type >>> 0, true);
  v.setBigUint64(8, BigInt.asUintN(64, BigInt(sector) * (sector >= 2 ** 53 ? 1n : 1n)), true);
  return h;
}

/** A request as a driver would send it, sized and aimed by a, b, c. */
function request(_q: number, a: number, b: number, c: number): FuzzBuf[] {
  const type = pick(TYPES, a);
  const sector = b % 4 === 0 ? pick(SECTOR_EDGES, b >> 2) : (b >> 2) % SECTORS;
  const sectors = 1 + (c % 8);
  const h = header(type, sector);
  const bufs: FuzzBuf[] = c % 5 === 0
    ? [{ len: 7, write: false, data: h.subarray(0, 7) }, {
      len: 9,
      write: false,
      data: h.subarray(7),
    }]
    : [{ len: 16, write: false, data: h }];
  const split = 1 + ((c >> 3) % 3);
  const data = 512 * sectors + (c % 11 === 0 ? (c >> 5) % 512 : 0);
  for (let k = 0; k < split; k++) {
    const len = Math.floor(data / split) + (k === split - 1 ? data % split : 0);
    if (type === VIRTIO_BLK_T_OUT) {
      bufs.push({ len, write: false, data: new Uint8Array(len).fill(a & 0xff) });
    } else if (type === VIRTIO_BLK_T_IN || type === VIRTIO_BLK_T_GET_ID) {
      bufs.push({ len, write: true });
    }
  }
  bufs.push({ len: c % 13 === 0 ? 0 : 1, write: true });
  return bufs;
}

function description(readOnly: boolean) {
  return {
    name: "blk",
    deviceType: 2,
    classCode: 0x018000,
    numQueues: 1,
    queueMaxSize: 256,
    features: VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | blkFeatures(readOnly),
    config: blkConfig(DISK_BYTES),
  };
}

Deno.test("fuzz virtio-blk (memory disk): no escape, no stray write, disk touched only in its sectors", () => {
  const stats = new FuzzStats("virtio-blk on a memory disk");
  fuzz(stats, ops(STEP_KINDS), (list) => {
    const readOnly = list.length % 4 === 0;
    let disk: MemoryDisk;
    const model: VirtioFuzzModel = {
      description: description(readOnly),
      backend: (ram) => {
        disk = new MemoryDisk(readOnly);
        return {
          device: new BlkDevice(ram.mem, disk, "fuzz-disk"),
          endRun: () => {
            if (disk.writes > 0) stats.count("runs-that-wrote");
          },
        };
      },
      chain: request,
    };
    return fuzzRun(model, stats, list);
  });
});

Deno.test("fuzz virtio-blk (image file): no escape, no stray write, the image keeps its size and tail", () => {
  const stats = new FuzzStats("virtio-blk on an image file");
  const path = Deno.makeTempFileSync({ prefix: "denovmm-fuzz-", suffix: ".img" });
  const tail = new Uint8Array(100).fill(0x5a);
  const image = new Uint8Array(DISK_BYTES);
  image.set(tail, SECTORS * 512);
  Deno.writeFileSync(path, image);
  const disk = new FileBackend(path);
  const readOnlyDisk = new FileBackend(path, { readOnly: true });
  try {
    fuzz(stats, ops(STEP_KINDS), (list) => {
      const readOnly = list.length % 4 === 0;
      const model: VirtioFuzzModel = {
        description: description(readOnly),
        backend: (ram) => ({
          device: new BlkDevice(ram.mem, readOnly ? readOnlyDisk : disk, "fuzz-disk"),
        }),
        chain: request,
      };
      return fuzzRun(model, stats, list);
    });
  } finally {
    disk.close();
    readOnlyDisk.close();
  }
  const after = Deno.readFileSync(path);
  equal(after.length, DISK_BYTES, "the image never grows");
  equal(after.subarray(SECTORS * 512).join(), tail.join(), "the partial tail sector is untouched");
  Deno.removeSync(path);
});
