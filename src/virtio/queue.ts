/**
 * The device side of a split virtqueue (virtio 1.2 §2.7).
 *
 * Threat model: the descriptor table, both rings and every buffer belong to a hostile guest.
 * Every address and length read from them is checked against guest RAM (through GuestMemory)
 * before use, every walk is bounded by a descriptor count, and a malformed queue ends in a
 * {@link VirtqueueError}, never in a hang or another exception. After the first error the queue
 * stays broken (every later call throws the same error): the caller sets DEVICE_NEEDS_RESET.
 *
 * Memory ordering. The driver runs on vCPU threads while this code runs on the I/O Worker, and
 * both share guest RAM. x86 (TSO) keeps loads in order with loads and stores in order with
 * stores, and V8 keeps the typed-array and DataView accesses of one thread in program order on
 * its effect chain, so the device's "read avail.idx, then the ring entry, then descriptors" and
 * "write the used element, then used.idx" need no fence: they pair with the driver's own
 * barriers. The one reordering x86 does is a later load passing an earlier store; where that
 * matters (publish used.idx, then read the driver's event index or flags; publish avail_event,
 * then re-read avail.idx) we issue a full fence (see {@link fullFence}), as vhost does with
 * smp_mb(), or a notification could be lost and the guest would wait forever.
 *
 * @module
 */

import { type GuestMemory, GuestMemoryError } from "../memory/guest_memory.ts";
import { DeviceFault } from "./device_fault.ts";

/** §2.7.5: the buffer continues via the `next` field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** §2.7.5: the buffer is device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** §2.7.5.3: the buffer holds a table of descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** §2.7.7: the driver asks not to be interrupted (ignored with EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** §2.7: the largest queue size a split virtqueue can have. */
export const MAX_QUEUE_SIZE = 32768;

const DESC_BYTES = 16;
const USED_ELEM_BYTES = 8;

/** A malformed or hostile virtqueue; the device should ask for a reset. */
export class VirtqueueError extends DeviceFault {
  override name = "VirtqueueError";
}

/** One guest buffer of a chain, wholly inside one RAM region. */
export interface Segment {
  gpa: number;
  len: number;
}

/**
 * One available descriptor chain, its buffers split by direction. Zero-length descriptors are
 * accepted: they count toward the chain length and the readable-before-writable order, but they
 * carry no segment (and their address, which names no byte, is not checked).
 */
export interface DescriptorChain {
  /** Index of the head descriptor: what {@link SplitQueue.pushUsed} hands back. */
  head: number;
  /** Device-readable buffers, in chain order. */
  readable: Segment[];
  /** Device-writable buffers, in chain order. */
  writable: Segment[];
  readableBytes: number;
  writableBytes: number;
}

/** Where the driver placed the queue, as negotiated through the transport. */
export interface SplitQueueConfig {
  /** Queue size: a power of two from 1 to 32768. */
  size: number;
  descGpa: number;
  availGpa: number;
  usedGpa: number;
  /** Whether VIRTIO_F_RING_EVENT_IDX was negotiated. */
  eventIdx: boolean;
}

const fenceCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * A full memory barrier. V8 compiles a sequentially consistent Atomics read-modify-write to a
 * locked instruction (`xchg` on x86-64), which orders every earlier load and store, of any
 * buffer, before every later one; the cell itself is private and meaningless.
 */
export function fullFence(): void {
  Atomics.exchange(fenceCell, 0, 0);
}

/**
 * A split virtqueue as the device sees it.
 *
 * @example
 * ```ts
 * const q = new SplitQueue(mem, { size: 256, descGpa, availGpa, usedGpa, eventIdx: true });
 * do {
 *   for (let chain = q.pop(); chain; chain = q.pop()) {
 *     q.pushUsed(chain.head, handleRngRequest(mem, chain));
 *   }
 * } while (q.armAvailEvent());
 * if (q.needsNotification()) interrupt();
 * ```
 */
export class SplitQueue {
  readonly size: number;
  readonly eventIdx: boolean;
  readonly #mem: GuestMemory;
  readonly #desc: number;
  readonly #avail: number;
  readonly #used: number;
  /** The next avail ring slot to consume (free-running u16). */
  #lastAvail = 0;
  /** The used.idx we publish (free-running u16); never read back from the guest. */
  #nextUsed = 0;
  /** #nextUsed when needsNotification last ran. */
  #signalledUsed = 0;
  #broken: VirtqueueError | undefined;

  constructor(mem: GuestMemory, config: SplitQueueConfig) {
    const { size, descGpa, availGpa, usedGpa } = config;
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1))) {
      throw new VirtqueueError(`queue size ${size} is not a power of two from 1 to 32768`);
    }
    this.size = size;
    this.eventIdx = config.eventIdx;
    this.#mem = mem;
    // §2.7 table "Virtqueue Part: Alignment, Size"; the rings include used_event / avail_event.
    this.#desc = checkRing(mem, "descriptor table", descGpa, 16, DESC_BYTES * size);
    this.#avail = checkRing(mem, "available ring", availGpa, 2, 6 + 2 * size);
    this.#used = checkRing(mem, "used ring", usedGpa, 4, 6 + USED_ELEM_BYTES * size);
  }

  /** The avail index of the next chain {@link pop} will take. */
  get lastAvailIdx(): number {
    return this.#lastAvail;
  }

  /** The used.idx published so far. */
  get usedIdx(): number {
    return this.#nextUsed;
  }

  /** The error that broke the queue, if one did. */
  get broken(): VirtqueueError | undefined {
    return this.#broken;
  }

  /** Whether the driver has made a chain available that {@link pop} has not taken yet. */
  hasAvailable(): boolean {
    this.#throwIfBroken();
    return this.#mem.readU16(this.#avail + 2) !== this.#lastAvail;
  }

  /**
   * The next available chain, or undefined when the driver has made none available.
   * Throws VirtqueueError (and breaks the queue) on a malformed ring or chain.
   */
  pop(): DescriptorChain | undefined {
    this.#throwIfBroken();
    const availIdx = this.#mem.readU16(this.#avail + 2);
    const pending = (availIdx - this.#lastAvail) & 0xffff;
    if (pending === 0) return undefined;
    if (pending > this.size) {
      this.#fail(
        `avail.idx ${availIdx} is ${pending} entries past the last seen ${this.#lastAvail}, ` +
          `more than the queue size ${this.size}`,
      );
    }
    const slot = this.#lastAvail & (this.size - 1);
    const head = this.#mem.readU16(this.#avail + 4 + 2 * slot);
    if (head >= this.size) {
      this.#fail(`avail ring slot ${slot} names head ${head}, past the queue size ${this.size}`);
    }
    const chain = this.#walk(head);
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    return chain;
  }

  /** Hand a chain back to the driver, with the number of bytes written into its buffers. */
  pushUsed(head: number, writtenLen: number): void {
    this.#throwIfBroken();
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new RangeError(`used head ${head} is not a descriptor index of a ${this.size}-queue`);
    }
    // A device model's promise (blk caps its requests well below 4 GiB): a bug if broken.
    if (!Number.isInteger(writtenLen) || writtenLen < 0 || writtenLen > 0xffff_ffff) {
      throw new RangeError(`used length ${writtenLen} does not fit the ring's 32 bits`);
    }
    const elem = this.#used + 4 + USED_ELEM_BYTES * (this.#nextUsed & (this.size - 1));
    this.#mem.writeU32(elem, head);
    this.#mem.writeU32(elem + 4, writtenLen);
    // The element is written before used.idx moves past it, and x86 keeps stores in order, so a
    // driver that reads used.idx and then (after its read barrier) the element never sees a
    // half-written one. No fence needed here.
    this.#nextUsed = (this.#nextUsed + 1) & 0xffff;
    this.#mem.writeU16(this.#used + 2, this.#nextUsed);
  }

  /**
   * Whether to interrupt the driver for the chains pushed since the last call (§2.7.10).
   * Without EVENT_IDX: unless avail.flags has VIRTQ_AVAIL_F_NO_INTERRUPT. With EVENT_IDX: when
   * used.idx moved past used_event during those pushes (vring_need_event).
   */
  needsNotification(): boolean {
    this.#throwIfBroken();
    const newIdx = this.#nextUsed;
    const oldIdx = this.#signalledUsed;
    this.#signalledUsed = newIdx;
    if (newIdx === oldIdx) return false;
    // used.idx (a store) must be visible before we read the driver's wish (a load), or a driver
    // that re-enabled interrupts in between would miss this one.
    fullFence();
    if (this.eventIdx) {
      const usedEvent = this.#mem.readU16(this.#avail + 4 + 2 * this.size);
      return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
    return (this.#mem.readU16(this.#avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Call when {@link pop} ran dry. With EVENT_IDX, asks the driver to notify when it makes the
   * next chain available (avail_event = last_avail_idx, §2.7.10); then returns whether chains
   * are available already. Those came before the driver saw the new avail_event and bring no
   * notification: a caller that gets true must take them now, or they wait for good. Without
   * EVENT_IDX only the check is made.
   */
  armAvailEvent(): boolean {
    this.#throwIfBroken();
    if (this.eventIdx) {
      this.#mem.writeU16(this.#used + 4 + USED_ELEM_BYTES * this.size, this.#lastAvail);
      // The check below reads avail.idx: order it after this store.
      fullFence();
    }
    return this.hasAvailable();
  }

  #walk(head: number): DescriptorChain {
    const chain: DescriptorChain = {
      head,
      readable: [],
      writable: [],
      readableBytes: 0,
      writableBytes: 0,
    };
    const mem = this.#mem;
    let table = this.#desc;
    let tableLen = this.size;
    let indirect = false;
    let index = head;
    let count = 0;
    let seenWritable = false;
    for (;;) {
      // Each descriptor visited is counted and no table holds more than tableLen, so a loop
      // ends here after at most tableLen steps per table.
      if (++count > tableLen) {
        this.#fail(
          `chain at head ${head} is longer than its ${indirect ? "indirect " : ""}table of ` +
            `${tableLen} descriptors (a loop?)`,
        );
      }
      if (index >= tableLen) {
        this.#fail(
          `chain at head ${head} links to descriptor ${index}, past its ` +
            `${indirect ? "indirect " : ""}table of ${tableLen}`,
        );
      }
      const d = table + DESC_BYTES * index;
      const addr = mem.readU64(d);
      const len = mem.readU32(d + 8);
      const flags = mem.readU16(d + 12);
      const next = mem.readU16(d + 14);

      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // §2.7.5.3.1: the driver MUST NOT nest tables or set NEXT beside INDIRECT. §2.7.5.3.2:
        // the device ignores WRITE here.
        if (indirect) this.#fail(`chain at head ${head} nests an indirect table`);
        if (flags & VIRTQ_DESC_F_NEXT) {
          this.#fail(`chain at head ${head}: descriptor ${index} sets both INDIRECT and NEXT`);
        }
        if (len === 0 || len % DESC_BYTES !== 0 || len / DESC_BYTES > MAX_QUEUE_SIZE) {
          this.#fail(
            `chain at head ${head}: indirect table of ${len} bytes is not 1 to 32768 descriptors`,
          );
        }
        // The spec sets no alignment for an indirect table, and DataView reads need none.
        table = this.#checkBuffer(head, addr, len, "indirect table");
        tableLen = len / DESC_BYTES;
        indirect = true;
        index = 0;
        count = 0;
        continue;
      }

      if (flags & VIRTQ_DESC_F_WRITE) {
        seenWritable = true;
        if (len > 0) {
          chain.writable.push({ gpa: this.#checkBuffer(head, addr, len, "buffer"), len });
          chain.writableBytes += len;
        }
      } else {
        // §2.7.4.2: the driver MUST place device-writable descriptors after readable ones.
        if (seenWritable) {
          this.#fail(`chain at head ${head}: a readable descriptor follows a writable one`);
        }
        if (len > 0) {
          chain.readable.push({ gpa: this.#checkBuffer(head, addr, len, "buffer"), len });
          chain.readableBytes += len;
        }
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) return chain;
      index = next;
    }
  }

  /** The guest address of a buffer after checking it lies wholly inside one RAM region. */
  #checkBuffer(head: number, addr: bigint, len: number, what: string): number {
    if (addr > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.#fail(`chain at head ${head}: ${what} address 0x${addr.toString(16)} is outside RAM`);
    }
    const gpa = Number(addr);
    try {
      this.#mem.slice(gpa, len);
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      this.#fail(
        `chain at head ${head}: ${what} of ${len} bytes at 0x${gpa.toString(16)} ` +
          `is outside guest RAM`,
      );
    }
    return gpa;
  }

  #fail(message: string): never {
    this.#broken = new VirtqueueError(message);
    throw this.#broken;
  }

  #throwIfBroken(): void {
    if (this.#broken) throw this.#broken;
  }
}

/** Check a ring's alignment and that it lies wholly inside RAM; returns its address. */
function checkRing(mem: GuestMemory, name: string, gpa: number, align: number, bytes: number) {
  const where = Number.isSafeInteger(gpa) ? `0x${gpa.toString(16)}` : String(gpa);
  if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % align !== 0) {
    throw new VirtqueueError(`${name} at ${where} is not ${align}-byte aligned`);
  }
  try {
    mem.slice(gpa, bytes);
  } catch (e) {
    if (!(e instanceof GuestMemoryError)) throw e;
    throw new VirtqueueError(`${name} of ${bytes} bytes at ${where} is not inside guest RAM`);
  }
  return gpa;
}

/**
 * Call `fn` with zero-copy views of bytes [skip, skip + len) of the buffers `segments` form
 * end to end, in order; `pos` is the view's offset from `skip`. Stops at the end of the
 * segments. Returns the bytes covered.
 *
 * @example
 * ```ts
 * forEachSlice(mem, chain.writable, 0, chain.writableBytes - 1, (view, pos) => {
 *   backend.read(offset + pos, view);
 * });
 * ```
 */
export function forEachSlice(
  mem: GuestMemory,
  segments: readonly Segment[],
  skip: number,
  len: number,
  fn: (view: Uint8Array, pos: number) => void,
): number {
  let pos = 0;
  for (let i = 0; i < segments.length && pos < len; i++) {
    const s = segments[i];
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    const n = Math.min(s.len - skip, len - pos);
    fn(mem.slice(s.gpa + skip, n), pos);
    pos += n;
    skip = 0;
  }
  return pos;
}

/**
 * Copy readable bytes of `chain`, from `skip` on, into `into`; returns the bytes copied (fewer
 * than `into.length` when the readable part ends first).
 *
 * @example
 * ```ts
 * const header = new Uint8Array(16);
 * if (readChain(mem, chain, header) < 16) throw new Error("short header");
 * ```
 */
export function readChain(
  mem: GuestMemory,
  chain: DescriptorChain,
  into: Uint8Array,
  skip = 0,
): number {
  return forEachSlice(mem, chain.readable, skip, into.length, (view, pos) => into.set(view, pos));
}

/**
 * Copy `from` into the writable bytes of `chain`, from `skip` on; returns the bytes copied
 * (fewer than `from.length` when the writable part ends first).
 *
 * @example
 * ```ts
 * writeChain(mem, chain, new Uint8Array([0]), chain.writableBytes - 1);
 * ```
 */
export function writeChain(
  mem: GuestMemory,
  chain: DescriptorChain,
  from: Uint8Array,
  skip = 0,
): number {
  return forEachSlice(
    mem,
    chain.writable,
    skip,
    from.length,
    (view, pos) => view.set(from.subarray(pos, pos + view.length)),
  );
}
