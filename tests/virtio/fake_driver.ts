/**
 * The driver's side of a split virtqueue, for tests: lays out descriptors, publishes chains in
 * the avail ring and reads the used ring, over a GuestMemory on a plain ArrayBuffer.
 */
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { memoryLayout } from "../../src/arch/x86_64/memory_map.ts";
import {
  SplitQueue,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "../../src/virtio/queue.ts";

export const MiB = 1024 * 1024;

/** Guest RAM of `bytes` (32 MiB by default) on a plain ArrayBuffer. */
export function ram(bytes = 32 * MiB): GuestMemory {
  return new GuestMemory(new ArrayBuffer(bytes), memoryLayout(bytes));
}

export const DESC_GPA = 0x1_0000;
export const AVAIL_GPA = 0x8_0000;
export const USED_GPA = 0x9_0000;
const DATA_GPA = 0x10_0000;

/** One buffer of a chain the fake driver builds. */
export interface Buf {
  len: number;
  write?: boolean;
  /** Bytes to place in the buffer (readable buffers); defaults to zeros. */
  data?: Uint8Array;
  /** Place the buffer here instead of allocating it. */
  gpa?: number | bigint;
}

export class FakeDriver {
  readonly mem: GuestMemory;
  readonly size: number;
  readonly eventIdx: boolean;
  availIdx = 0;
  #nextDesc = 0;
  #nextData = DATA_GPA;

  /** Where this driver's table and rings sit: the usual places, `base` bytes up. */
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;

  /** `base` moves the table, rings and buffers up, so two queues can share one RAM. */
  constructor(mem: GuestMemory, size: number, eventIdx = false, base = 0) {
    this.mem = mem;
    this.size = size;
    this.eventIdx = eventIdx;
    this.descGpa = DESC_GPA + base;
    this.availGpa = AVAIL_GPA + base;
    this.usedGpa = USED_GPA + base;
    this.#nextData = DATA_GPA + base;
  }

  /** The device side of this queue. */
  queue(): SplitQueue {
    return new SplitQueue(this.mem, {
      size: this.size,
      descGpa: this.descGpa,
      availGpa: this.availGpa,
      usedGpa: this.usedGpa,
      eventIdx: this.eventIdx,
    });
  }

  /** Guest memory for a buffer of `len` bytes (16-byte aligned). */
  alloc(len: number): number {
    const gpa = this.#nextData;
    this.#nextData += Math.ceil(Math.max(len, 1) / 16) * 16;
    return gpa;
  }

  /** Write descriptor `i` of the table at `table` (the queue's own table by default). */
  setDesc(
    i: number,
    addr: number | bigint,
    len: number,
    flags: number,
    next = 0,
    table = this.descGpa,
  ): void {
    const d = table + 16 * i;
    this.mem.writeU64(d, BigInt(addr));
    this.mem.writeU32(d + 8, len);
    this.mem.writeU16(d + 12, flags);
    this.mem.writeU16(d + 14, next);
  }

  /** Lay out `bufs` as a chain in the queue's table (using fresh descriptors); returns the head. */
  addChain(bufs: Buf[]): number {
    const first = this.#nextDesc;
    bufs.forEach((b, k) => {
      const i = (first + k) % this.size;
      const gpa = this.#place(b);
      const more = k + 1 < bufs.length;
      this.setDesc(
        i,
        gpa,
        b.len,
        (b.write ? VIRTQ_DESC_F_WRITE : 0) | (more ? VIRTQ_DESC_F_NEXT : 0),
        more ? (i + 1) % this.size : 0,
      );
    });
    this.#nextDesc = (first + bufs.length) % this.size;
    return first;
  }

  /**
   * Lay out `bufs` as an indirect table, after `direct` buffers chained in the queue's own
   * table; returns the head.
   */
  addIndirectChain(bufs: Buf[], direct: Buf[] = []): number {
    const table = this.alloc(16 * bufs.length);
    bufs.forEach((b, k) => {
      const more = k + 1 < bufs.length;
      this.setDesc(
        k,
        this.#place(b),
        b.len,
        (b.write ? VIRTQ_DESC_F_WRITE : 0) | (more ? VIRTQ_DESC_F_NEXT : 0),
        more ? k + 1 : 0,
        table,
      );
    });
    const first = this.#nextDesc;
    direct.forEach((b, k) => {
      const i = (first + k) % this.size;
      this.setDesc(
        i,
        this.#place(b),
        b.len,
        (b.write ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT,
        (i + 1) % this.size,
      );
    });
    const last = (first + direct.length) % this.size;
    this.setDesc(last, table, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT);
    this.#nextDesc = (last + 1) % this.size;
    return first;
  }

  /** Make the chain at `head` available (avail.ring then avail.idx, as a driver must). */
  publish(head: number): void {
    this.mem.writeU16(this.availGpa + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(this.availGpa + 2, this.availIdx);
  }

  setAvailFlags(flags: number): void {
    this.mem.writeU16(this.availGpa, flags);
  }

  setUsedEvent(idx: number): void {
    this.mem.writeU16(this.availGpa + 4 + 2 * this.size, idx);
  }

  availEvent(): number {
    return this.mem.readU16(this.usedGpa + 4 + 8 * this.size);
  }

  usedIdx(): number {
    return this.mem.readU16(this.usedGpa + 2);
  }

  /** Used ring element `slot`: {id, len}. */
  usedElem(slot: number): { id: number; len: number } {
    const e = this.usedGpa + 4 + 8 * slot;
    return { id: this.mem.readU32(e), len: this.mem.readU32(e + 4) };
  }

  #place(b: Buf): number | bigint {
    if (b.gpa !== undefined) return b.gpa;
    const gpa = this.alloc(b.len);
    if (b.data) this.mem.write(gpa, b.data);
    return gpa;
  }
}
