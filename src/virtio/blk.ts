/**
 * virtio-blk request handling (virtio 1.2 §5.2), independent of the transport, and the raw
 * image file behind it.
 *
 * A request is a descriptor chain: a 16-byte header {type u32, reserved u32, sector u64} at the
 * start of the readable part (it may span descriptors), the data, and a status byte, the last
 * writable byte. Data moves between the file and guest RAM with no copy: pread/pwrite go
 * straight to views of the guest buffers, which the queue has checked lie inside RAM.
 *
 * Hostile requests: a chain with no writable byte has nowhere to put a status, so it is a
 * {@link BlkRequestError} (the caller marks the queue broken). Everything else that is wrong
 * (a header shorter than 16 bytes, a length that is not whole sectors, a range past the end of
 * the disk, a write to a read-only disk, a host I/O error) completes with VIRTIO_BLK_S_IOERR,
 * and the file is touched only for requests that lie wholly inside it.
 *
 * @module
 */

import {
  check,
  cString,
  errno,
  libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  SEEK_END,
  strerror,
} from "../../ffi/libc.ts";
import { EINTR } from "../../ffi/errno.ts";
import { logRateLimited } from "../log.ts";
import type { QueueHandler } from "./device_runner.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { type BackendPlan, QUEUE_SIZE, TRANSPORT_FEATURES, type VirtioDevice } from "./device.ts";
import { DeviceFault } from "./device_fault.ts";
import { type DescriptorChain, forEachSlice, readChain, writeChain } from "./queue.ts";

/** §5.2.3 feature bits (device-specific; the transport adds VERSION_1, EVENT_IDX, ...). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;

/** §5.2.6 request types. */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

/** §5.2.6 status values. */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Capacity, sector numbers and data lengths are in these units whatever blk_size says. */
export const SECTOR_BYTES = 512;
/** GET_ID answers with this many bytes, NUL-padded (VIRTIO_BLK_ID_BYTES). */
export const BLK_ID_BYTES = 20;
/**
 * Data segments per request we advertise (seg_max). With the header and status a request is
 * seg_max + 2 descriptors, which fits a 128-entry queue without indirect descriptors.
 */
export const BLK_SEG_MAX = 126;
/** The largest data segment we advertise (size_max): Linux sizes its segments to it. */
export const BLK_SIZE_MAX = 1024 * 1024;
/**
 * The largest request served: seg_max segments of size_max. Anything larger (a hostile chain
 * of many big buffers) completes with IOERR without touching the disk; it also keeps the
 * bytes written, reported in the used ring's 32 bits, far below 4 GiB.
 */
export const BLK_MAX_REQUEST_BYTES = BLK_SEG_MAX * BLK_SIZE_MAX;
/** Size of the config space {@link blkConfig} returns: struct virtio_blk_config through the
 * write-zeroes fields (§5.2.4), all of it zero except what we advertise. */
export const BLK_CONFIG_BYTES = 60;

const HEADER_BYTES = 16;

/** The disk behind a virtio-blk device. Offsets and lengths are in bytes. */
export interface BlockBackend {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Fill `into` from `offset`; throws BlockBackendError on failure. */
  read(offset: number, into: Uint8Array): void;
  /** Write `from` at `offset`; throws BlockBackendError on failure. */
  write(offset: number, from: Uint8Array): void;
  /** Make written data durable (fdatasync). */
  flush(): void;
}

/** A disk image that cannot be opened or read or written; the message is one line. */
export class BlockBackendError extends Error {
  override name = "BlockBackendError";
}

/** A request the device cannot even answer (no status byte): the queue needs a reset. */
export class BlkRequestError extends DeviceFault {
  override name = "BlkRequestError";
}

/**
 * A raw image file, read and written with pread/pwrite at the guest's offsets. Deno 2 gives no
 * raw fd for a Deno.FsFile, so the file is opened through libc.
 *
 * @example
 * ```ts
 * const disk = new FileBackend("/var/lib/vm/root.img", { readOnly: true });
 * console.log(disk.sizeBytes);
 * disk.close();
 * ```
 */
export class FileBackend implements BlockBackend {
  readonly path: string;
  readonly readOnly: boolean;
  readonly sizeBytes: number;
  #fd: number;

  constructor(path: string, options: { readOnly?: boolean } = {}) {
    this.path = path;
    this.readOnly = options.readOnly ?? false;
    // O_NONBLOCK: a FIFO would otherwise block the open until a writer came.
    const flags = (this.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
    const fd = libc.open(cString(path), flags, 0);
    if (fd === -1) {
      throw new BlockBackendError(`disk ${path}: ${lowerFirst(strerror(errno()))}`);
    }
    this.#fd = fd;
    try {
      // What was opened, not what the path names now: /proc/self/fd follows to it.
      const info = Deno.statSync(`/proc/self/fd/${fd}`);
      if (info.isFile) this.sizeBytes = info.size;
      else if (info.isBlockDevice) this.sizeBytes = Number(libc.lseek(fd, 0n, SEEK_END));
      else throw new BlockBackendError(`disk ${path}: not a regular file or block device`);
      if (!(this.sizeBytes >= 0)) {
        throw new BlockBackendError(`disk ${path}: cannot tell its size`);
      }
    } catch (e) {
      libc.close(fd);
      this.#fd = -1;
      if (e instanceof BlockBackendError) throw e;
      throw new BlockBackendError(`disk ${path}: ${e instanceof Error ? e.message : e}`);
    }
  }

  read(offset: number, into: Uint8Array): void {
    this.#checkRange("read", offset, into.length);
    let done = 0;
    while (done < into.length) {
      const buf = done === 0 ? into : into.subarray(done);
      const n = libc.pread(this.#fd, buf, BigInt(buf.length), BigInt(offset + done));
      if (n === 0n) {
        throw new BlockBackendError(
          `disk ${this.path}: end of file at ${offset + done} (did the image shrink?)`,
        );
      }
      if (n < 0n) {
        this.#retryOrThrow("pread", offset + done);
        continue;
      }
      done += Number(n);
    }
  }

  write(offset: number, from: Uint8Array): void {
    if (this.readOnly) throw new BlockBackendError(`disk ${this.path}: opened read-only`);
    this.#checkRange("write", offset, from.length);
    let done = 0;
    while (done < from.length) {
      const buf = done === 0 ? from : from.subarray(done);
      const n = libc.pwrite(this.#fd, buf, BigInt(buf.length), BigInt(offset + done));
      if (n < 0n) {
        this.#retryOrThrow("pwrite", offset + done);
        continue;
      }
      done += Number(n);
    }
  }

  flush(): void {
    this.#checkOpen();
    try {
      check("fdatasync", libc.fdatasync(this.#fd));
    } catch (e) {
      throw new BlockBackendError(`disk ${this.path}: ${(e as Error).message}`);
    }
  }

  close(): void {
    if (this.#fd >= 0) libc.close(this.#fd);
    this.#fd = -1;
  }

  #checkOpen(): void {
    if (this.#fd < 0) throw new BlockBackendError(`disk ${this.path}: closed`);
  }

  /** Defence in depth: the request handler checks ranges before it calls us. */
  #checkRange(op: string, offset: number, len: number): void {
    this.#checkOpen();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > this.sizeBytes) {
      throw new BlockBackendError(
        `disk ${this.path}: ${op} of ${len} bytes at ${offset} is past its ${this.sizeBytes} bytes`,
      );
    }
  }

  #retryOrThrow(call: string, offset: number): void {
    const e = errno();
    if (e === EINTR) return;
    throw new BlockBackendError(`disk ${this.path}: ${call} at ${offset}: ${strerror(e)}`);
  }
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/**
 * The device-specific feature bits of a virtio-blk device.
 *
 * @example
 * ```ts
 * const offered = VIRTIO_F_VERSION_1 | blkFeatures(disk.readOnly);
 * ```
 */
export function blkFeatures(readOnly: boolean): bigint {
  let f = (1n << BigInt(VIRTIO_BLK_F_SIZE_MAX)) | (1n << BigInt(VIRTIO_BLK_F_SEG_MAX)) |
    (1n << BigInt(VIRTIO_BLK_F_BLK_SIZE)) |
    (1n << BigInt(VIRTIO_BLK_F_FLUSH));
  if (readOnly) f |= 1n << BigInt(VIRTIO_BLK_F_RO);
  return f;
}

/**
 * The device config space (§5.2.4): capacity in 512-byte sectors at 0 (a trailing partial
 * sector of the image is not exposed), size_max at 8, seg_max at 12, blk_size (512) at 20;
 * the rest zero.
 *
 * @example
 * ```ts
 * const config = blkConfig(disk.sizeBytes);
 * ```
 */
export function blkConfig(capacityBytes: number): Uint8Array {
  const bytes = new Uint8Array(BLK_CONFIG_BYTES);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(Math.floor(capacityBytes / SECTOR_BYTES)), true);
  view.setUint32(8, BLK_SIZE_MAX, true);
  view.setUint32(12, BLK_SEG_MAX, true);
  view.setUint32(20, SECTOR_BYTES, true);
  return bytes;
}

// One header buffer per thread: the handler runs to completion before the next request.
const header = new Uint8Array(HEADER_BYTES);
const headerView = new DataView(header.buffer);
const statusByte = new Uint8Array(1);

/**
 * Carry out one request and write its status byte. Returns the bytes written into the chain's
 * writable part (data + status), for {@link SplitQueue.pushUsed}. Throws BlkRequestError only
 * for a chain with no writable byte.
 *
 * @example
 * ```ts
 * for (let chain = q.pop(); chain; chain = q.pop()) {
 *   q.pushUsed(chain.head, handleBlkRequest(mem, chain, disk, "denovmm-disk0"));
 * }
 * ```
 */
/**
 * The largest request moved through {@link stage}'s buffer; larger ones (a guest may chain
 * buffers up to the queue size) go segment by segment.
 */
const STAGE_MAX = 4 * 1024 * 1024;
let stageBuffer = new Uint8Array(0);

/**
 * A buffer for a request of `bytes` spread over `segments` guest buffers, or undefined when a
 * system call per segment is as good (one segment) or the request is too large. A guest's
 * pages are rarely contiguous, so a 1 MiB read is a hundred-odd segments: one pread and a copy
 * in memory costs far less than a pread each (a system call, and on a network file system a
 * round trip).
 */
function stage(bytes: number, segments: number): Uint8Array | undefined {
  if (segments <= 2 || bytes > STAGE_MAX) return undefined; // header/status + one data buffer
  if (stageBuffer.length < bytes) {
    stageBuffer = new Uint8Array(Math.min(STAGE_MAX, Math.max(bytes, 2 * stageBuffer.length)));
  }
  return stageBuffer.subarray(0, bytes);
}

export function handleBlkRequest(
  mem: GuestMemory,
  chain: DescriptorChain,
  backend: BlockBackend,
  deviceId: string,
): number {
  if (chain.writableBytes === 0) {
    throw new BlkRequestError(`virtio-blk request at head ${chain.head} has no status byte`);
  }
  const dataBytes = chain.writableBytes - 1; // writable bytes before the status byte
  let status: number = VIRTIO_BLK_S_IOERR;
  let written = 0;
  if (!withinLimits(chain)) {
    logRateLimited(
      `${deviceId}: limits`,
      `${deviceId}: request of ${chain.readable.length + chain.writable.length} buffers, ` +
        `${chain.readableBytes + chain.writableBytes} bytes is over the advertised limits: IOERR`,
    );
  } else if (readChain(mem, chain, header) === HEADER_BYTES) {
    const type = headerView.getUint32(0, true);
    // sector as a Number: exact below 2^53, and anything larger is past any disk anyway.
    const sector = headerView.getUint32(12, true) * 2 ** 32 + headerView.getUint32(8, true);
    try {
      switch (type) {
        case VIRTIO_BLK_T_IN: {
          const offset = diskOffset(backend, sector, dataBytes);
          if (offset >= 0) {
            const staged = stage(dataBytes, chain.writable.length);
            if (staged) {
              // One read for the request, then copied out to its guest buffers.
              backend.read(offset, staged);
              forEachSlice(mem, chain.writable, 0, dataBytes, (view, pos) => {
                view.set(staged.subarray(pos, pos + view.length));
              });
            } else {
              forEachSlice(mem, chain.writable, 0, dataBytes, (view, pos) => {
                backend.read(offset + pos, view);
              });
            }
            written = dataBytes;
            status = VIRTIO_BLK_S_OK;
          }
          break;
        }
        case VIRTIO_BLK_T_OUT: {
          // §5.2.6.2: with VIRTIO_BLK_F_RO a write fails and MUST NOT write any data.
          const len = chain.readableBytes - HEADER_BYTES;
          const offset = backend.readOnly ? -1 : diskOffset(backend, sector, len);
          if (offset >= 0) {
            const staged = stage(len, chain.readable.length);
            if (staged) {
              forEachSlice(mem, chain.readable, HEADER_BYTES, len, (view, pos) => {
                staged.set(view, pos);
              });
              backend.write(offset, staged);
            } else {
              forEachSlice(mem, chain.readable, HEADER_BYTES, len, (view, pos) => {
                backend.write(offset + pos, view);
              });
            }
            status = VIRTIO_BLK_S_OK;
          }
          break;
        }
        case VIRTIO_BLK_T_FLUSH:
          backend.flush(); // the status reaches the guest only after fdatasync returned
          status = VIRTIO_BLK_S_OK;
          break;
        case VIRTIO_BLK_T_GET_ID: {
          const id = new Uint8Array(BLK_ID_BYTES); // NUL-padded
          id.set(new TextEncoder().encode(deviceId).subarray(0, BLK_ID_BYTES));
          written = writeChain(mem, chain, id.subarray(0, Math.min(BLK_ID_BYTES, dataBytes)));
          status = VIRTIO_BLK_S_OK;
          break;
        }
        default:
          status = VIRTIO_BLK_S_UNSUPP;
      }
    } catch (e) {
      if (!(e instanceof BlockBackendError)) throw e;
      // A host-side failure (EIO, a full file system): the guest sees an I/O error.
      logRateLimited(`${deviceId}: backend`, `${deviceId}: ${e.message}: IOERR to the guest`);
      status = VIRTIO_BLK_S_IOERR;
      written = 0;
    }
  }
  statusByte[0] = status;
  writeChain(mem, chain, statusByte, dataBytes);
  return written + 1;
}

/**
 * Whether a request keeps to what the device advertises (§5.2.4 seg_max, size_max): at most
 * seg_max data buffers besides the header and status, none longer than size_max (plus the
 * header and status a driver may lay out in the same buffer), and at most
 * {@link BLK_MAX_REQUEST_BYTES} in all.
 */
function withinLimits(chain: DescriptorChain): boolean {
  if (chain.readable.length + chain.writable.length > BLK_SEG_MAX + 2) return false;
  if (chain.readableBytes + chain.writableBytes > BLK_MAX_REQUEST_BYTES + HEADER_BYTES + 1) {
    return false;
  }
  const segmentMax = BLK_SIZE_MAX + HEADER_BYTES + 1;
  for (const s of chain.readable) if (s.len > segmentMax) return false;
  for (const s of chain.writable) if (s.len > segmentMax) return false;
  return true;
}

/** `--disk PATH[,ro]`. */
export interface DiskOption {
  path: string;
  readOnly: boolean;
}

/** What the I/O thread opens a disk from: the image again, by path. */
export interface BlkPlan extends BackendPlan {
  type: "blk";
  path: string;
  readOnly: boolean;
  /** GET_ID's answer. */
  id: string;
}

const VIRTIO_ID_BLOCK = 2;
const CLASS_STORAGE_OTHER = 0x01_80_00;

/**
 * virtio-blk on a raw image. The main thread opens the image once to check it and learn its
 * capacity (a bad path fails before the guest starts); the I/O thread opens it again for the
 * requests.
 */
export const virtioBlk: VirtioDevice<DiskOption, BlkPlan> = {
  type: "blk",
  describe(disk, index) {
    const probe = new FileBackend(disk.path, { readOnly: disk.readOnly });
    const size = probe.sizeBytes;
    probe.close();
    return {
      description: {
        name: `virtio-blk ${disk.path}`,
        deviceType: VIRTIO_ID_BLOCK,
        classCode: CLASS_STORAGE_OTHER,
        numQueues: 1,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES | blkFeatures(disk.readOnly),
        config: blkConfig(size),
      },
      backend: {
        type: "blk",
        path: disk.path,
        readOnly: disk.readOnly,
        id: `denovmm-disk${index}`,
      },
    };
  },
  open(plan, host) {
    const file = new FileBackend(plan.path, { readOnly: plan.readOnly });
    return { handler: new BlkDevice(host.mem, file, plan.id) };
  },
};

/** virtio-blk as a device model for the I/O Worker: one request queue. */
export class BlkDevice implements QueueHandler {
  constructor(
    private readonly mem: GuestMemory,
    readonly backend: BlockBackend,
    readonly deviceId: string,
  ) {}

  handle(_queue: number, chain: DescriptorChain): number {
    return handleBlkRequest(this.mem, chain, this.backend, this.deviceId);
  }
}

/**
 * The byte offset of [sector, sector + len bytes) on the disk, or -1 when the length is not
 * whole sectors or the range does not lie wholly inside the disk's whole sectors.
 */
function diskOffset(backend: BlockBackend, sector: number, len: number): number {
  if (len < 0 || len % SECTOR_BYTES !== 0) return -1;
  const sectors = Math.floor(backend.sizeBytes / SECTOR_BYTES);
  if (sector > sectors || len / SECTOR_BYTES > sectors - sector) return -1;
  return sector * SECTOR_BYTES;
}
