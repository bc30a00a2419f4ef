/**
 * The 256-byte configuration space of one PCI function with a type 0 header (PCI Local Bus
 * 3.0 §6.1–6.2), shared by every thread that touches the function.
 *
 * Each vCPU Worker answers the guest's config cycles, the I/O Worker asks which BAR an access
 * hits, and the main thread set the function up; so the bytes, a write mask per byte and the
 * BAR layout live in a SharedArrayBuffer guarded by a spinlock in that buffer, and every thread
 * builds its own `PciConfigSpace` over the same state. Change listeners (`onWrite`) belong to
 * one instance, so each thread hears about the writes it performed.
 *
 * A guest write changes only the bits the write mask allows: `new = old & ~mask | value & mask`.
 * That single rule gives BAR sizing (the address bits below the size are not writable, so an
 * all-ones write reads back the size mask), fixed BAR type bits, read-only IDs and the command
 * register's writable subset. Status has no RW1C bit we ever set, so its mask is zero.
 *
 * The guest is hostile: `read` and `write` never throw, whatever the offset or size.
 *
 * @example
 * ```ts
 * const state = PciConfigSpace.createState();
 * const cfg = new PciConfigSpace(state);
 * cfg.setIds({ vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x018000, revision: 1,
 *   subsystemVendorId: 0x1af4, subsystemId: 0x40 });
 * cfg.addBar(0, { kind: "mem64", size: 0x4000 });
 * cfg.write(0x10, 4, 0xffffffff);
 * cfg.read(0x10, 4); // 0xffffc004: size mask | 64-bit type
 * ```
 */
import { spinLock, spinUnlock } from "../spin_lock.ts";

/** Config-space register offsets (PCI 3.0 Figure 6-1). */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
/** Size of a conventional PCI function's configuration space. */
export const PCI_CONFIG_SPACE_SIZE = 256;
/** Number of BAR slots in a type 0 header. */
export const PCI_BAR_COUNT = 6;
/** Just past BAR 5 (where a type 0 header has its CardBus CIS pointer). */
export const PCI_BAR_END = PCI_BAR0 + 4 * PCI_BAR_COUNT;

/** Command register bits (PCI 3.0 §6.2.2). */
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;
/** The command bits a guest may change; all others are hardwired to 0. */
export const PCI_COMMAND_WRITABLE = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
/** Status bit 4: the capability pointer at 0x34 is valid. */
export const PCI_STATUS_CAP_LIST = 0x0010;

/** First offset available to capabilities: the header ends at 0x3f. */
const CAP_START = 0x40;

/** The three kinds of base address register (PCI 3.0 §6.2.5.1). */
export type PciBarKind = "mem32" | "mem64" | "io";
/** Which decoder an access goes through: memory space or I/O space. */
export type PciAddressSpace = "memory" | "io";

/** What `addBar` declares. */
export interface PciBarSpec {
  kind: PciBarKind;
  /** Bytes, a power of two: at least 16 for memory BARs, at least 4 for I/O BARs. */
  size: number;
  /** Memory BARs only: reads without side effects (bit 3). */
  prefetchable?: boolean;
}

/** A BAR as the guest has programmed it. */
export interface PciBarInfo {
  kind: PciBarKind;
  size: number;
  /** Programmed base with the type bits stripped; for mem64 both dwords as one number. */
  address: number;
}

/** Where an access landed: BAR `index`, `offset` bytes from its base. */
export interface PciBarHit {
  index: number;
  offset: number;
}

/** The identity registers `setIds` writes. */
export interface PciIds {
  vendorId: number;
  deviceId: number;
  /** class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision: number;
  subsystemVendorId: number;
  subsystemId: number;
}

/** A set-up call the function cannot honour (bad BAR, capability that does not fit, ...). */
export class PciConfigError extends Error {
  override name = "PciConfigError";
}

// BAR kind codes kept in the shared state.
const KIND_NONE = 0;
const KIND_MEM32 = 1;
const KIND_MEM64 = 2;
const KIND_MEM64_HIGH = 3; // upper dword of the mem64 BAR below it
const KIND_IO = 4;
const KIND_NAMES: PciBarKind[] = ["mem32", "mem32", "mem64", "mem64", "io"];

/** Whether a BAR of `kind` decodes in I/O space (`io`) or memory space: its lower dword. */
function decodesIn(kind: number, io: boolean): boolean {
  return io ? kind === KIND_IO : kind === KIND_MEM32 || kind === KIND_MEM64;
}

// Shared state: Int32 slots, then BAR sizes as Float64, then config bytes, then write masks.
const S_LOCK = 0;
const S_CAP_NEXT = 1; // where the next capability goes
const S_CAP_LAST = 2; // offset of the last capability in the list, 0 if none
const S_BAR_KIND = 4; // 6 slots
const HEADER_BYTES = 64;
const SIZES_OFFSET = HEADER_BYTES;
const CONFIG_OFFSET = SIZES_OFFSET + 64;
const MASK_OFFSET = CONFIG_OFFSET + PCI_CONFIG_SPACE_SIZE;
const STATE_BYTES = MASK_OFFSET + PCI_CONFIG_SPACE_SIZE;

const TWO_32 = 0x1_0000_0000;

interface WriteListener {
  start: number;
  end: number;
  fn: (offset: number, size: number) => void;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

function checkRange(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new PciConfigError(`${what} ${value} is outside 0..0x${max.toString(16)}`);
  }
}

/** One function's configuration space over shared state; see the module doc. */
export class PciConfigSpace {
  readonly #s: Int32Array;
  readonly #sizes: Float64Array;
  readonly #cfg: Uint8Array;
  readonly #mask: Uint8Array;
  readonly #cfgView: DataView;
  readonly #maskView: DataView;
  readonly #listeners: WriteListener[] = [];
  // barContaining's answer, reused so the hot path allocates nothing.
  readonly #hit: PciBarHit = { index: 0, offset: 0 };

  /** Allocate the state of one function: all zero, no BARs, no capabilities. */
  static createState(): SharedArrayBuffer {
    const state = new SharedArrayBuffer(STATE_BYTES);
    const s = new Int32Array(state, 0, HEADER_BYTES / 4);
    s[S_CAP_NEXT] = CAP_START;
    const mask = new DataView(state, MASK_OFFSET, PCI_CONFIG_SPACE_SIZE);
    mask.setUint16(PCI_COMMAND, PCI_COMMAND_WRITABLE, true);
    mask.setUint8(PCI_INTERRUPT_LINE, 0xff);
    return state;
  }

  constructor(state: SharedArrayBuffer) {
    if (state.byteLength !== STATE_BYTES) {
      throw new RangeError(`PCI config state is ${state.byteLength} bytes, want ${STATE_BYTES}`);
    }
    this.#s = new Int32Array(state, 0, HEADER_BYTES / 4);
    this.#sizes = new Float64Array(state, SIZES_OFFSET, PCI_BAR_COUNT);
    this.#cfg = new Uint8Array(state, CONFIG_OFFSET, PCI_CONFIG_SPACE_SIZE);
    this.#mask = new Uint8Array(state, MASK_OFFSET, PCI_CONFIG_SPACE_SIZE);
    this.#cfgView = new DataView(state, CONFIG_OFFSET, PCI_CONFIG_SPACE_SIZE);
    this.#maskView = new DataView(state, MASK_OFFSET, PCI_CONFIG_SPACE_SIZE);
  }

  // ---- Set-up: main thread, before other threads use the state. ----

  /** Write the read-only identity registers. Header type stays 0 (single-function, type 0). */
  setIds(ids: PciIds): void {
    checkRange("vendor ID", ids.vendorId, 0xffff);
    checkRange("device ID", ids.deviceId, 0xffff);
    checkRange("class code", ids.classCode, 0xffffff);
    checkRange("revision", ids.revision, 0xff);
    checkRange("subsystem vendor ID", ids.subsystemVendorId, 0xffff);
    checkRange("subsystem ID", ids.subsystemId, 0xffff);
    this.#lock();
    const v = this.#cfgView;
    v.setUint16(PCI_VENDOR_ID, ids.vendorId, true);
    v.setUint16(PCI_DEVICE_ID, ids.deviceId, true);
    v.setUint8(PCI_REVISION_ID, ids.revision);
    v.setUint8(PCI_CLASS_PROG, ids.classCode & 0xff);
    v.setUint16(PCI_CLASS_PROG + 1, ids.classCode >>> 8, true);
    v.setUint16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystemVendorId, true);
    v.setUint16(PCI_SUBSYSTEM_ID, ids.subsystemId, true);
    this.#unlock();
  }

  /** Interrupt pin: 0 none, 1..4 INTA#..INTD#. Read-only to the guest; the line byte is not. */
  setInterruptPin(pin: number): void {
    checkRange("interrupt pin", pin, 4);
    this.#cfg[PCI_INTERRUPT_PIN] = pin;
  }

  /** Declare BAR `index`; a mem64 BAR also takes `index + 1`. */
  addBar(index: number, spec: PciBarSpec): void {
    const { kind, size } = spec;
    const slots = kind === "mem64" ? 2 : 1;
    if (kind !== "mem32" && kind !== "mem64" && kind !== "io") {
      throw new PciConfigError(`BAR ${index}: unknown kind ${kind}`);
    }
    if (!Number.isInteger(index) || index < 0 || index + slots > PCI_BAR_COUNT) {
      throw new PciConfigError(`BAR ${index}: a ${kind} BAR needs slots inside 0..5`);
    }
    const min = kind === "io" ? 4 : 16;
    // mem32 decodes below 4 GiB; I/O space is 64 KiB on x86; mem64 stays exact in a number.
    const max = kind === "io" ? 0x1_0000 : kind === "mem32" ? 2 ** 31 : 2 ** 52;
    if (!isPowerOfTwo(size) || size < min || size > max) {
      throw new PciConfigError(
        `BAR ${index}: ${kind} size ${size} must be a power of two in ${min}..0x${
          max.toString(16)
        }`,
      );
    }
    if (spec.prefetchable && kind === "io") {
      throw new PciConfigError(`BAR ${index}: an I/O BAR cannot be prefetchable`);
    }
    this.#lock();
    try {
      for (let i = index; i < index + slots; i++) {
        if (this.#s[S_BAR_KIND + i] !== KIND_NONE) {
          throw new PciConfigError(`BAR ${index}: slot ${i} is already in use`);
        }
      }
      // PCI 3.0 §6.2.5.1: bit 0 is 1 for I/O; bits 2:1 = 10b for 64-bit; bit 3 prefetchable.
      const typeBits = kind === "io" ? 0x1 : (kind === "mem64" ? 0x4 : 0) |
        (spec.prefetchable ? 0x8 : 0);
      const width = kind === "mem64" ? 64n : 32n;
      const fixedLow = kind === "io" ? 0x3n : 0xfn;
      const mask = ((1n << width) - BigInt(size)) & ~fixedLow;
      const at = PCI_BAR0 + 4 * index;
      for (let b = 0; b < 4 * slots; b++) {
        this.#mask[at + b] = Number((mask >> BigInt(8 * b)) & 0xffn);
        this.#cfg[at + b] = 0;
      }
      this.#cfg[at] = typeBits;
      this.#s[S_BAR_KIND + index] = kind === "io"
        ? KIND_IO
        : kind === "mem64"
        ? KIND_MEM64
        : KIND_MEM32;
      if (kind === "mem64") this.#s[S_BAR_KIND + index + 1] = KIND_MEM64_HIGH;
      this.#sizes[index] = size;
    } finally {
      this.#unlock();
    }
  }

  /** Program BAR `index` with `address` (firmware's assignment); it must be size-aligned. */
  setBarAddress(index: number, address: number): void {
    const kind = this.#kindAt(index);
    if (kind === KIND_NONE || kind === KIND_MEM64_HIGH) {
      throw new PciConfigError(`BAR ${index} is not declared`);
    }
    const size = this.#sizes[index];
    const max = kind === KIND_MEM64 ? Number.MAX_SAFE_INTEGER : TWO_32 - 1;
    if (!Number.isSafeInteger(address) || address < 0 || address > max || address % size !== 0) {
      throw new PciConfigError(
        `BAR ${index}: address 0x${address.toString(16)} is not a ${size}-byte aligned base`,
      );
    }
    this.#lock();
    const at = PCI_BAR0 + 4 * index;
    const low = this.#cfgView.getUint32(at, true);
    const typeBits = low & (kind === KIND_IO ? 0x3 : 0xf);
    this.#cfgView.setUint32(at, ((address % TWO_32) | typeBits) >>> 0, true);
    if (kind === KIND_MEM64) this.#cfgView.setUint32(at + 4, Math.floor(address / TWO_32), true);
    this.#unlock();
  }

  /**
   * Append a capability with `id` and `body` (the bytes after ID and next pointer) to the list
   * at 0x34; `writable` gives a guest write mask per body byte (default: all read-only).
   * Returns the capability's config offset: dword-aligned, from 0x40 upward.
   */
  addCapability(id: number, body: Uint8Array, writable?: Uint8Array): number {
    checkRange("capability ID", id, 0xff);
    if (writable !== undefined && writable.length !== body.length) {
      throw new PciConfigError(
        `capability 0x${
          id.toString(16)
        }: write mask is ${writable.length} bytes, body ${body.length}`,
      );
    }
    this.#lock();
    try {
      const offset = this.#s[S_CAP_NEXT];
      const end = offset + 2 + body.length;
      if (end > PCI_CONFIG_SPACE_SIZE) {
        throw new PciConfigError(
          `capability 0x${id.toString(16)} (${2 + body.length} bytes) does not fit at ` +
            `0x${offset.toString(16)} below 0x100`,
        );
      }
      this.#cfg[offset] = id;
      this.#cfg[offset + 1] = 0; // end of list
      this.#cfg.set(body, offset + 2);
      if (writable !== undefined) this.#mask.set(writable, offset + 2);
      const last = this.#s[S_CAP_LAST];
      this.#cfg[last === 0 ? PCI_CAPABILITY_LIST : last + 1] = offset;
      this.#cfgView.setUint16(
        PCI_STATUS,
        this.#cfgView.getUint16(PCI_STATUS, true) | PCI_STATUS_CAP_LIST,
        true,
      );
      this.#s[S_CAP_LAST] = offset;
      this.#s[S_CAP_NEXT] = (end + 3) & ~3;
      return offset;
    } finally {
      this.#unlock();
    }
  }

  // ---- Runtime: any thread. ----

  /**
   * Guest read of `size` (1, 2 or 4) bytes at `offset`, little-endian. Bytes outside 0..255
   * read as 0xff; a size other than 1, 2 or 4 (or a non-integer offset) reads 0xffffffff.
   */
  read(offset: number, size: number): number {
    if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(offset)) return 0xffffffff;
    const cfg = this.#cfg;
    let value = 0;
    this.#lock();
    for (let i = size - 1; i >= 0; i--) {
      const at = offset + i;
      value = value * 256 + (at >= 0 && at < PCI_CONFIG_SPACE_SIZE ? cfg[at] : 0xff);
    }
    this.#unlock();
    return value;
  }

  /**
   * Guest write of the low `size` (1, 2 or 4) bytes of `value` at `offset`. Only bits in the
   * write mask change; bytes outside 0..255 and accesses of any other size are dropped.
   * Listeners whose range the write touches run afterwards, outside the lock.
   */
  write(offset: number, size: number, value: number): void {
    if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(offset)) return;
    const first = Math.max(offset, 0);
    const end = Math.min(offset + size, PCI_CONFIG_SPACE_SIZE);
    if (first >= end) return;
    const cfg = this.#cfg, mask = this.#mask;
    const v = value >>> 0;
    this.#lock();
    for (let at = first; at < end; at++) {
      const b = (v >>> (8 * (at - offset))) & 0xff;
      cfg[at] = (cfg[at] & ~mask[at]) | (b & mask[at]);
    }
    this.#unlock();
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      const l = listeners[i];
      if (first < l.end && l.start < end) l.fn(first, end - first);
    }
  }

  /**
   * Call `fn(offset, size)` after every write through this instance that touches
   * [start, end); `offset`/`size` are the in-range part of the write.
   */
  onWrite(start: number, end: number, fn: (offset: number, size: number) => void): void {
    this.#listeners.push({ start, end, fn });
  }

  // ---- Queries: any thread. ----

  /** The command register. */
  command(): number {
    this.#lock();
    const value = this.#cfgView.getUint16(PCI_COMMAND, true);
    this.#unlock();
    return value;
  }

  memoryEnabled(): boolean {
    return (this.command() & PCI_COMMAND_MEMORY) !== 0;
  }

  ioEnabled(): boolean {
    return (this.command() & PCI_COMMAND_IO) !== 0;
  }

  busMasterEnabled(): boolean {
    return (this.command() & PCI_COMMAND_MASTER) !== 0;
  }

  /** BAR `index` as declared and programmed; undefined for an unused slot or a mem64's upper half. */
  barInfo(index: number): PciBarInfo | undefined {
    const kind = this.#kindAt(index);
    if (kind === KIND_NONE || kind === KIND_MEM64_HIGH) return undefined;
    this.#lock();
    const address = this.#barAddress(index, kind);
    this.#unlock();
    return { kind: KIND_NAMES[kind], size: this.#sizes[index], address };
  }

  /**
   * Whether this function has any BAR in `space`. Which BARs exist is fixed at set-up, so this
   * needs no lock, and its answer never changes once other threads use the state.
   */
  declaresBars(space: PciAddressSpace): boolean {
    const io = space === "io";
    for (let i = 0; i < PCI_BAR_COUNT; i++) {
      if (decodesIn(this.#s[S_BAR_KIND + i], io)) return true;
    }
    return false;
  }

  /**
   * The BAR that holds all of [addr, addr + len) in `space`, if its decoder is enabled in the
   * command register and the BAR holds a real address (not 0, not the all-ones sizing value).
   *
   * Hot path (every BAR access): it allocates nothing. The returned object is owned by this
   * instance and overwritten by the next call; read `index` and `offset` before calling again.
   */
  barContaining(
    addr: number,
    len: number,
    space: PciAddressSpace,
  ): Readonly<PciBarHit> | undefined {
    const io = space === "io";
    const s = this.#s;
    const sizes = this.#sizes;
    // Windows only ask functions that declare a BAR in `space` (PciBus.window), so a function
    // without one, like the host bridge, is never asked on the exit path.
    this.#lock();
    try {
      if ((this.#cfg[PCI_COMMAND] & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) === 0) {
        return undefined;
      }
      for (let i = 0; i < PCI_BAR_COUNT; i++) {
        const kind = s[S_BAR_KIND + i];
        if (!decodesIn(kind, io)) continue;
        if (!this.#barAssigned(i, kind)) continue;
        const base = this.#barAddress(i, kind);
        if (addr >= base && addr + len <= base + sizes[i]) {
          this.#hit.index = i;
          this.#hit.offset = addr - base;
          return this.#hit;
        }
      }
      return undefined;
    } finally {
      this.#unlock();
    }
  }

  #kindAt(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= PCI_BAR_COUNT) return KIND_NONE;
    return this.#s[S_BAR_KIND + index];
  }

  /** Base address of a declared BAR, type bits stripped. Caller holds the lock. */
  #barAddress(index: number, kind: number): number {
    const at = PCI_BAR0 + 4 * index;
    const low = this.#cfgView.getUint32(at, true);
    if (kind === KIND_IO) return (low & ~0x3) >>> 0;
    const base = (low & ~0xf) >>> 0;
    if (kind === KIND_MEM32) return base;
    return this.#cfgView.getUint32(at + 4, true) * TWO_32 + base;
  }

  /** The BAR holds neither 0 nor every writable bit set (what sizing leaves). Caller holds the lock. */
  #barAssigned(index: number, kind: number): boolean {
    const at = PCI_BAR0 + 4 * index;
    const cfg = this.#cfgView, mask = this.#maskView;
    const lowMask = mask.getUint32(at, true);
    const low = (cfg.getUint32(at, true) & lowMask) >>> 0;
    if (kind !== KIND_MEM64) return low !== 0 && low !== lowMask;
    const highMask = mask.getUint32(at + 4, true);
    const high = cfg.getUint32(at + 4, true);
    if (low === 0 && high === 0) return false;
    return !(low === lowMask && high === highMask);
  }

  #lock(): void {
    spinLock(this.#s, S_LOCK);
  }

  #unlock(): void {
    spinUnlock(this.#s, S_LOCK);
  }
}
