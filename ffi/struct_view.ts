/**
 * Base of the typed views over kernel structs: one view per C struct, fields as getters and
 * setters named like the C fields, offsets from a table that tests check against the kernel
 * headers. The bytes are owned by the view (or borrowed, e.g. from the mmap'd kvm_run), and
 * the pointer handed to ioctl is computed once.
 */
export abstract class StructView {
  readonly bytes: Uint8Array<ArrayBuffer>;
  protected readonly dv: DataView<ArrayBuffer>;
  #ptr: Deno.PointerValue | undefined;

  constructor(size: number, bytes?: Uint8Array<ArrayBuffer>) {
    if (bytes && bytes.byteLength < size) {
      throw new RangeError(`${new.target.name} needs ${size} bytes, got ${bytes.byteLength}`);
    }
    this.bytes = bytes ?? new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** Pointer to the struct, for an ioctl argument. */
  get pointer(): Deno.PointerValue {
    return this.#ptr ??= Deno.UnsafePointer.of(this.bytes);
  }

  protected u8(off: number): number {
    return this.dv.getUint8(off);
  }
  protected setU8(off: number, v: number): void {
    this.dv.setUint8(off, v);
  }
  protected u16(off: number): number {
    return this.dv.getUint16(off, true);
  }
  protected setU16(off: number, v: number): void {
    this.dv.setUint16(off, v, true);
  }
  protected u32(off: number): number {
    return this.dv.getUint32(off, true);
  }
  protected setU32(off: number, v: number): void {
    this.dv.setUint32(off, v >>> 0, true);
  }
  /** A u64 known to stay below 2^53 (guest-physical addresses, sizes), without a BigInt. */
  protected u64n(off: number): number {
    return this.dv.getUint32(off, true) + this.dv.getUint32(off + 4, true) * 0x1_0000_0000;
  }
  protected setU64n(off: number, v: number): void {
    this.dv.setUint32(off, v % 0x1_0000_0000, true);
    this.dv.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
  }
  /** A full-width u64 (register contents, kernel virtual addresses). */
  protected u64(off: number): bigint {
    return this.dv.getBigUint64(off, true);
  }
  protected setU64(off: number, v: bigint): void {
    this.dv.setBigUint64(off, BigInt.asUintN(64, v), true);
  }
}
