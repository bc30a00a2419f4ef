/**
 * Bounded access to guest RAM.
 *
 * Threat model: every address that reaches this class may come from the guest (a virtqueue
 * descriptor, a DMA address), and the guest is hostile. So every access is checked to lie wholly
 * inside one RAM region before it touches the host mapping: no access reaches into the MMIO hole,
 * past the end of RAM, or across the boundary between the low and the high region (which are not
 * contiguous in guest-physical space even though they are in the host mapping).
 *
 * @module
 */

import type { RamLayout, RamRegion } from "./regions.ts";

/** An access outside guest RAM, or with a malformed address or length. */
export class GuestMemoryError extends Error {
  override name = "GuestMemoryError";
}

/** Guest RAM as seen by the VMM: one host buffer, addressed by guest-physical address. */
export class GuestMemory {
  readonly layout: RamLayout;
  readonly #buffer: ArrayBuffer;
  readonly #view: DataView;
  readonly #regions: readonly RamRegion[];

  /**
   * @param buffer the host mapping of all guest RAM (mmap in production, a plain ArrayBuffer in
   *   tests); its size must be `layout.ramBytes`.
   * @example
   * ```ts
   * const layout = memoryLayout(256 * 1024 * 1024);
   * const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
   * mem.writeU32(0x1000, 0xdeadbeef);
   * ```
   */
  constructor(buffer: ArrayBuffer, layout: RamLayout) {
    if (buffer.byteLength !== layout.ramBytes) {
      throw new GuestMemoryError(
        `host mapping is ${buffer.byteLength} bytes but the layout needs ${layout.ramBytes}`,
      );
    }
    this.layout = layout;
    this.#buffer = buffer;
    this.#view = new DataView(buffer);
    this.#regions = layout.regions;
  }

  /**
   * Offset in the host mapping of [gpa, gpa + len), which must lie inside one RAM region.
   * Allocation-free on success so the U8..U32 accessors stay cheap on device hot paths.
   */
  #hostOffset(gpa: number, len: number): number {
    if (Number.isSafeInteger(gpa) && Number.isSafeInteger(len) && gpa >= 0 && len >= 0) {
      const end = gpa + len;
      for (let i = 0; i < this.#regions.length; i++) {
        const r = this.#regions[i];
        if (gpa >= r.gpa && end <= r.gpa + r.size && Number.isSafeInteger(end)) {
          return r.hostOffset + (gpa - r.gpa);
        }
      }
    }
    throw new GuestMemoryError(describeBadAccess(gpa, len));
  }

  /**
   * A zero-copy view of [gpa, gpa + len); writes through it reach the guest.
   *
   * @example
   * ```ts
   * mem.slice(0x20000, 16).fill(0);
   * ```
   */
  slice(gpa: number, len: number): Uint8Array {
    return new Uint8Array(this.#buffer, this.#hostOffset(gpa, len), len);
  }

  /** A copy of [gpa, gpa + len), safe to keep after the guest changes its memory. */
  read(gpa: number, len: number): Uint8Array {
    return this.slice(gpa, len).slice();
  }

  /** Copy `bytes` into guest memory at `gpa`. */
  write(gpa: number, bytes: Uint8Array): void {
    this.slice(gpa, bytes.length).set(bytes);
  }

  readU8(gpa: number): number {
    return this.#view.getUint8(this.#hostOffset(gpa, 1));
  }

  readU16(gpa: number): number {
    return this.#view.getUint16(this.#hostOffset(gpa, 2), true);
  }

  readU32(gpa: number): number {
    return this.#view.getUint32(this.#hostOffset(gpa, 4), true);
  }

  readU64(gpa: number): bigint {
    return this.#view.getBigUint64(this.#hostOffset(gpa, 8), true);
  }

  writeU8(gpa: number, value: number): void {
    checkValue(value, 0xff);
    this.#view.setUint8(this.#hostOffset(gpa, 1), value);
  }

  writeU16(gpa: number, value: number): void {
    checkValue(value, 0xffff);
    this.#view.setUint16(this.#hostOffset(gpa, 2), value, true);
  }

  writeU32(gpa: number, value: number): void {
    checkValue(value, 0xffff_ffff);
    this.#view.setUint32(this.#hostOffset(gpa, 4), value, true);
  }

  writeU64(gpa: number, value: bigint): void {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
      throw new RangeError(`value ${value} does not fit in 64 bits`);
    }
    this.#view.setBigUint64(this.#hostOffset(gpa, 8), value, true);
  }
}

/** DataView setters wrap silently; a value that does not fit is a VMM bug, so say so. */
function checkValue(value: number, max: number): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= max)) {
    throw new RangeError(`value ${value} does not fit in ${max.toString(2).length} bits`);
  }
}

function describeBadAccess(gpa: number, len: number): string {
  if (!Number.isSafeInteger(gpa) || gpa < 0) return `invalid guest address ${gpa}`;
  if (!Number.isSafeInteger(len) || len < 0) {
    return `invalid length ${len} at guest address 0x${gpa.toString(16)}`;
  }
  return `guest access of ${len} bytes at 0x${gpa.toString(16)} is outside guest RAM`;
}
