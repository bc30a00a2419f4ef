/**
 * MSI-X (PCI Local Bus 3.0 §6.8.2): the capability, the vector table and the Pending Bit
 * Array, written once for emulated devices and VFIO passthrough alike.
 *
 * Sizes follow the device, never the host page: the table is 16 bytes per vector and the PBA
 * one bit per vector rounded up to a qword (`msixTableSize`, `msixPbaSize`). `msixRegions`
 * lays both out inside their BARs for VFIO, where the host page size only says which page to
 * trap, clamped to the BAR.
 *
 * Table entries and pending bits live in a SharedArrayBuffer guarded by a spin lock: a vCPU
 * Worker runs the guest's table accesses while the I/O Worker triggers vectors. Every thread
 * attaches its own `Msix` to the same `MsixPlan` and its own `PciConfigSpace`. Lock order is
 * MSI-X, then config space; the vector group is called outside both locks.
 *
 * Delivery goes through an `MsiVectorGroup` (src/bus/interrupt.ts): the table says which
 * vectors are deliverable, and only those are routed. A vector is routed when it becomes
 * deliverable (MSI-X enabled, the function and the vector unmasked) or when its message
 * changes while it is; masking a vector or the function routes nothing (a masked vector
 * raises its pending bit here instead of its route), and disabling MSI-X releases the
 * group's routes. So a driver that masks, programs and unmasks a vector (as Linux does)
 * costs one routing change at the unmask, not one per dword it wrote.
 *
 * @example
 * ```ts
 * const { body, writable } = msixCapabilityBody(3, 1, 0, 1, 0x800);
 * const capOffset = cfg.addCapability(PCI_CAP_ID_MSIX, body, writable);
 * const msix = new Msix(planMsix(3, capOffset), cfg, vectors); // vectors: an MsiVectorGroup
 * // BAR 1 accesses: [0, 0x30) is the table, [0x800, 0x808) the PBA.
 * msix.tableWrite(0x0c, Uint8Array.of(0, 0, 0, 0)); // guest unmasks vector 0: routed
 * if (!msix.trigger(0)) intx.setLevel(true); // MSI-X disabled: fall back to INTx
 * ```
 */
import { PCI_BAR_COUNT, type PciConfigSpace } from "./config_space.ts";
import type { MsiMessage, MsiVectorGroup } from "../bus/interrupt.ts";
import { spinLock, spinUnlock } from "../spin_lock.ts";

/** Capability ID of MSI-X (PCI 3.0 Appendix H). */
export const PCI_CAP_ID_MSIX = 0x11;
/** Message Control bits (PCI 3.0 §6.8.2.3). */
export const MSIX_CONTROL_TABLE_SIZE = 0x07ff;
export const MSIX_CONTROL_FUNCTION_MASK = 0x4000;
export const MSIX_CONTROL_ENABLE = 0x8000;
/** Bytes per table entry: Message Address, Message Upper Address, Message Data, Vector Control. */
export const MSIX_ENTRY_SIZE = 16;
/** Vector Control bit 0; the other 31 bits are reserved. */
export const MSIX_VECTOR_MASKED = 0x1;
/** Table Size is 11 bits of N - 1. */
export const MSIX_MAX_VECTORS = 2048;

/** A bad MSI-X layout or vector count. */
export class MsixError extends Error {
  override name = "MsixError";
}

function checkVectors(vectors: number): void {
  if (!Number.isInteger(vectors) || vectors < 1 || vectors > MSIX_MAX_VECTORS) {
    throw new MsixError(`MSI-X vector count ${vectors} is outside 1..${MSIX_MAX_VECTORS}`);
  }
}

function checkBir(what: string, bar: number): void {
  if (!Number.isInteger(bar) || bar < 0 || bar >= PCI_BAR_COUNT) {
    throw new MsixError(`MSI-X ${what} BAR ${bar} is outside 0..5`);
  }
}

function checkOffset(what: string, offset: number): void {
  // The low 3 bits of the offset/BIR dword hold the BIR: offsets are qword-aligned (§6.8.2.4).
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffff_fff8 || offset % 8 !== 0) {
    throw new MsixError(`MSI-X ${what} offset 0x${offset.toString(16)} is not 8-byte aligned`);
  }
}

/** Bytes of the MSI-X table: 16 per vector (already a multiple of 8). */
export function msixTableSize(vectors: number): number {
  checkVectors(vectors);
  return MSIX_ENTRY_SIZE * vectors;
}

/** Bytes of the PBA: one bit per vector, rounded up to 8 bytes for qword access (§6.8.2.10). */
export function msixPbaSize(vectors: number): number {
  checkVectors(vectors);
  return Math.ceil(vectors / 64) * 8;
}

/**
 * The MSI-X capability body for `PciConfigSpace.addCapability(PCI_CAP_ID_MSIX, body,
 * writable)`: the 10 bytes after ID and next pointer (12 with them). Message Control carries
 * N - 1 read-only, with Function Mask and MSI-X Enable writable; then the table and PBA
 * offset/BIR dwords, read-only.
 */
export function msixCapabilityBody(
  vectors: number,
  tableBar: number,
  tableOffset: number,
  pbaBar: number,
  pbaOffset: number,
): { body: Uint8Array; writable: Uint8Array } {
  checkVectors(vectors);
  checkBir("table", tableBar);
  checkBir("PBA", pbaBar);
  checkOffset("table", tableOffset);
  checkOffset("PBA", pbaOffset);
  const body = new Uint8Array(10);
  const view = new DataView(body.buffer);
  view.setUint16(0, vectors - 1, true);
  view.setUint32(2, (tableOffset | tableBar) >>> 0, true);
  view.setUint32(6, (pbaOffset | pbaBar) >>> 0, true);
  const writable = new Uint8Array(10);
  writable[1] = (MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK) >> 8;
  return { body, writable };
}

/**
 * What every thread needs to attach to one function's MSI-X: the vector count, the shared
 * table and PBA, and where the capability sits in the config space it is attached with.
 */
export interface MsixPlan {
  vectors: number;
  state: SharedArrayBuffer;
  capOffset: number;
}

/** Main thread: the plan for `vectors` vectors whose capability is at `capOffset`. */
export function planMsix(vectors: number, capOffset: number): MsixPlan {
  return { vectors, state: Msix.createState(vectors), capOffset };
}

/** MSI-X enable, function unmask and vector unmask events a plan's function has seen. */
export function msixEvents(plan: MsixPlan): number {
  return Atomics.load(new Int32Array(plan.state, 0, HEADER_BYTES / 4), S_EVENTS);
}

/** One table entry as the guest programmed it: its message and its Vector Control mask bit. */
export interface MsixEntry extends MsiMessage {
  masked: boolean;
}

// Shared state: a 16-byte header (Int32: lock, events, the Message Control last acted on), the
// table as Uint32 words, then the PBA.
const S_LOCK = 0;
const S_EVENTS = 1;
const S_CONTROL = 2;
const HEADER_BYTES = 16;
const W_ADDR_LO = 0, W_ADDR_HI = 1, W_DATA = 2, W_CONTROL = 3;

function stateBytes(vectors: number): number {
  return HEADER_BYTES + msixTableSize(vectors) + msixPbaSize(vectors);
}

/** Defined accesses (§6.8.2): an aligned DWORD or an aligned QWORD fully inside `limit`. */
function definedAccess(offset: number, width: number, limit: number): boolean {
  return Number.isInteger(offset) && offset >= 0 && offset + width <= limit &&
    ((width === 4 && offset % 4 === 0) || (width === 8 && offset % 8 === 0));
}

/** The little-endian dword at `data[at..at+4)`. */
function leWord(data: Uint8Array, at: number): number {
  return (data[at] | data[at + 1] << 8 | data[at + 2] << 16 | data[at + 3] << 24) >>> 0;
}

function readWords(words: Uint32Array, first: number, data: Uint8Array): void {
  for (let i = 0; i < data.length; i++) {
    data[i] = (words[first + (i >> 2)] >>> (8 * (i & 3))) & 0xff;
  }
}

/** A function's MSI-X table and PBA over shared state; see the module doc. */
export class Msix {
  readonly vectors: number;
  readonly tableSize: number;
  readonly pbaSize: number;
  readonly #s: Int32Array;
  readonly #table: Uint32Array;
  readonly #pba: Uint32Array;
  readonly #config: PciConfigSpace;
  readonly #controlOffset: number;
  readonly #group: MsiVectorGroup;

  /** Allocate the state for `vectors` entries, each reset to address 0, data 0, masked. */
  static createState(vectors: number): SharedArrayBuffer {
    const state = new SharedArrayBuffer(stateBytes(vectors));
    const table = new Uint32Array(state, HEADER_BYTES, msixTableSize(vectors) / 4);
    for (let v = 0; v < vectors; v++) table[4 * v + W_CONTROL] = MSIX_VECTOR_MASKED;
    return state;
  }

  /**
   * Attach to `plan` in this thread: `plan.capOffset` is what `addCapability` returned for the
   * MSI-X capability in `config`. Listens on `config` for writes to Message Control.
   */
  constructor(plan: MsixPlan, config: PciConfigSpace, group: MsiVectorGroup) {
    const { vectors, state, capOffset } = plan;
    checkVectors(vectors);
    if (state.byteLength !== stateBytes(vectors)) {
      throw new RangeError(
        `MSI-X state is ${state.byteLength} bytes, want ${
          stateBytes(vectors)
        } for ${vectors} vectors`,
      );
    }
    if (config.read(capOffset, 1) !== PCI_CAP_ID_MSIX) {
      throw new MsixError(`no MSI-X capability at config offset 0x${capOffset.toString(16)}`);
    }
    const declared = (config.read(capOffset + 2, 2) & MSIX_CONTROL_TABLE_SIZE) + 1;
    if (declared !== vectors) {
      throw new MsixError(`MSI-X capability declares ${declared} vectors, state has ${vectors}`);
    }
    this.vectors = vectors;
    this.tableSize = msixTableSize(vectors);
    this.pbaSize = msixPbaSize(vectors);
    this.#s = new Int32Array(state, 0, HEADER_BYTES / 4);
    this.#table = new Uint32Array(state, HEADER_BYTES, this.tableSize / 4);
    this.#pba = new Uint32Array(state, HEADER_BYTES + this.tableSize, this.pbaSize / 4);
    this.#config = config;
    this.#controlOffset = capOffset + 2;
    this.#group = group;
    config.onWrite(this.#controlOffset, this.#controlOffset + 2, () => this.controlChanged());
  }

  /**
   * Guest read of the table at `offset` from its start; `data.length` is the access width.
   * Undefined accesses (not an aligned DWORD/QWORD inside the table) read all-ones.
   * Returns whether the access was defined, so the caller can count the others.
   */
  tableRead(offset: number, data: Uint8Array): boolean {
    if (!definedAccess(offset, data.length, this.tableSize)) {
      data.fill(0xff);
      return false;
    }
    spinLock(this.#s, S_LOCK);
    readWords(this.#table, offset / 4, data);
    spinUnlock(this.#s, S_LOCK);
    return true;
  }

  /**
   * Guest write of the table; undefined accesses are dropped (returns false). An entry that
   * is deliverable after the write is routed when its message or mask changed; an unmasked
   * entry whose pending bit is set is delivered at once when MSI-X is enabled and the
   * function unmasked (§6.8.2.9).
   */
  tableWrite(offset: number, data: Uint8Array): boolean {
    if (!definedAccess(offset, data.length, this.tableSize)) return false;
    const t = this.#table;
    const vector = offset >> 4; // a qword write never crosses a 16-byte entry
    const e = 4 * vector;
    let changed = false, deliver = false, route = false;
    let lo = 0, hi = 0, msgData = 0;
    spinLock(this.#s, S_LOCK);
    try {
      const wasMasked = (t[e + W_CONTROL] & MSIX_VECTOR_MASKED) !== 0;
      for (let w = offset / 4, i = 0; i < data.length; w++, i += 4) {
        let value = leWord(data, i);
        if ((w & 3) === W_CONTROL) value &= MSIX_VECTOR_MASKED; // reserved bits read 0
        if (t[w] !== value) changed = true;
        t[w] = value;
      }
      lo = t[e + W_ADDR_LO];
      hi = t[e + W_ADDR_HI];
      msgData = t[e + W_DATA];
      const masked = (t[e + W_CONTROL] & MSIX_VECTOR_MASKED) !== 0;
      if (wasMasked && !masked) this.#s[S_EVENTS]++;
      const deliverable = !masked && this.#deliverable();
      route = changed && deliverable;
      if (deliverable && this.#isPending(vector)) {
        this.#clearPending(vector);
        deliver = true;
      }
    } finally {
      spinUnlock(this.#s, S_LOCK);
    }
    if (route) {
      this.#group.route(
        vector,
        vector + 1,
        () => ({ addressLo: lo, addressHi: hi, data: msgData }),
      );
    }
    if (deliver) this.#group.trigger(vector);
    return true;
  }

  /** Guest read of the PBA: aligned DWORD/QWORD of pending bits; anything else reads all-ones. */
  pbaRead(offset: number, data: Uint8Array): boolean {
    if (!definedAccess(offset, data.length, this.pbaSize)) {
      data.fill(0xff);
      return false;
    }
    spinLock(this.#s, S_LOCK);
    readWords(this.#pba, offset / 4, data);
    spinUnlock(this.#s, S_LOCK);
    return true;
  }

  /** Guest write of the PBA: read-only, so dropped. Returns whether the access was defined. */
  pbaWrite(offset: number, data: Uint8Array): boolean {
    return definedAccess(offset, data.length, this.pbaSize);
  }

  /**
   * Raise `vector`. Returns false when MSI-X is disabled (the caller falls back to INTx) or
   * the vector is out of range. While the function or the vector is masked the pending bit
   * is set instead of signalling. Allocates nothing.
   */
  trigger(vector: number): boolean {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return false;
    spinLock(this.#s, S_LOCK);
    try {
      const control = this.#config.read(this.#controlOffset, 2);
      if ((control & MSIX_CONTROL_ENABLE) === 0) return false;
      if (
        (control & MSIX_CONTROL_FUNCTION_MASK) !== 0 ||
        (this.#table[4 * vector + W_CONTROL] & MSIX_VECTOR_MASKED)
      ) {
        this.#pba[vector >> 5] |= 1 << (vector & 31);
        return true;
      }
    } finally {
      spinUnlock(this.#s, S_LOCK);
    }
    this.#group.trigger(vector);
    return true;
  }

  /**
   * Message Control was written: disabling MSI-X releases the routes; once MSI-X is enabled
   * and the function unmasked, every unmasked vector is routed (one routing change, none when
   * the routes already match) and every pending one delivered. Registered by the
   * constructor; safe to repeat.
   */
  controlChanged(): void {
    const due: number[] = [];
    let release = false, deliverable = false;
    spinLock(this.#s, S_LOCK);
    try {
      const control = this.#config.read(this.#controlOffset, 2);
      const before = this.#s[S_CONTROL];
      this.#s[S_CONTROL] = control;
      const on = (control & MSIX_CONTROL_ENABLE) !== 0;
      const wasOn = (before & MSIX_CONTROL_ENABLE) !== 0;
      const masked = (control & MSIX_CONTROL_FUNCTION_MASK) !== 0;
      if ((on && !wasOn) || (on && !masked && (before & MSIX_CONTROL_FUNCTION_MASK) !== 0)) {
        this.#s[S_EVENTS]++;
      }
      release = !on && wasOn;
      deliverable = on && !masked;
      if (deliverable) {
        const t = this.#table, pba = this.#pba;
        for (let w = 0; w < pba.length; w++) {
          if (pba[w] === 0) continue;
          for (let bit = 0; bit < 32; bit++) {
            const v = 32 * w + bit;
            if ((pba[w] & (1 << bit)) === 0 || (t[4 * v + W_CONTROL] & MSIX_VECTOR_MASKED)) {
              continue;
            }
            this.#clearPending(v);
            due.push(v);
          }
        }
      }
    } finally {
      spinUnlock(this.#s, S_LOCK);
    }
    if (release) this.#group.release();
    if (!deliverable) return;
    this.#group.route(0, this.vectors, (v) => {
      const e = this.entry(v);
      return e === undefined || e.masked ? undefined : e;
    });
    for (const v of due) this.#group.trigger(v);
  }

  /** Message Control's MSI-X Enable bit. */
  enabled(): boolean {
    return (this.#config.read(this.#controlOffset, 2) & MSIX_CONTROL_ENABLE) !== 0;
  }

  /** Message Control's Function Mask bit. */
  functionMasked(): boolean {
    return (this.#config.read(this.#controlOffset, 2) & MSIX_CONTROL_FUNCTION_MASK) !== 0;
  }

  /** Vector Control's mask bit; true for a vector out of range. */
  vectorMasked(vector: number): boolean {
    return this.entry(vector)?.masked ?? true;
  }

  /** The vector's pending bit; false for a vector out of range. */
  pending(vector: number): boolean {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return false;
    spinLock(this.#s, S_LOCK);
    const pending = this.#isPending(vector);
    spinUnlock(this.#s, S_LOCK);
    return pending;
  }

  /** The vector's table entry, or undefined out of range. */
  entry(vector: number): MsixEntry | undefined {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return undefined;
    const t = this.#table, e = 4 * vector;
    spinLock(this.#s, S_LOCK);
    const entry = {
      addressLo: t[e + W_ADDR_LO],
      addressHi: t[e + W_ADDR_HI],
      data: t[e + W_DATA],
      masked: (t[e + W_CONTROL] & MSIX_VECTOR_MASKED) !== 0,
    };
    spinUnlock(this.#s, S_LOCK);
    return entry;
  }

  /** Enabled and not function-masked. Caller holds the MSI-X lock (config's lock nests inside). */
  #deliverable(): boolean {
    const control = this.#config.read(this.#controlOffset, 2);
    return (control & MSIX_CONTROL_ENABLE) !== 0 && (control & MSIX_CONTROL_FUNCTION_MASK) === 0;
  }

  #isPending(vector: number): boolean {
    return (this.#pba[vector >> 5] & (1 << (vector & 31))) !== 0;
  }

  #clearPending(vector: number): void {
    this.#pba[vector >> 5] &= ~(1 << (vector & 31));
  }
}

/** A byte range inside one BAR. */
export interface MsixRegion {
  bar: number;
  offset: number;
  size: number;
}

/** Where a device's MSI-X structures sit, as `msixRegions` is asked. */
export interface MsixLayout {
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
  /** Size in bytes of each BAR by index (0 or missing for an unused one). */
  barSizes: number[];
  /** Host page size: only decides the trap pages, never the emulated sizes. */
  pageSize: number;
}

/** The emulated regions and the host pages that must be trapped to reach them. */
export interface MsixRegions {
  /** Exactly the table: `msixTableSize(vectors)` bytes at the device's offset. */
  table: MsixRegion;
  /** Exactly the PBA: `msixPbaSize(vectors)` bytes at the device's offset. */
  pba: MsixRegion;
  /** The host pages holding the table, clamped to its BAR (they cannot be mmapped). */
  tablePage: MsixRegion;
  /** The host pages holding the PBA, clamped to its BAR. */
  pbaPage: MsixRegion;
}

/**
 * Lay out a device's MSI-X table and PBA for passthrough. Emulated regions are sized by
 * `msixTableSize`/`msixPbaSize` at the offsets the device declares and never rounded to the
 * page size: rounding is what once pushed kvmtool's PBA past a 4 KiB BAR and its regions
 * 112 KiB over the next BARs on a 64 KiB-page host. Refuses a region that overruns its BAR,
 * an unaligned offset, and a table and PBA that overlap (§6.8.2: they must not).
 */
export function msixRegions(layout: MsixLayout): MsixRegions {
  const { vectors, tableBar, tableOffset, pbaBar, pbaOffset, barSizes, pageSize } = layout;
  checkVectors(vectors);
  checkBir("table", tableBar);
  checkBir("PBA", pbaBar);
  checkOffset("table", tableOffset);
  checkOffset("PBA", pbaOffset);
  if (!Number.isSafeInteger(pageSize) || pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw new MsixError(`page size ${pageSize} is not a power of two`);
  }
  const table = region("table", tableBar, tableOffset, msixTableSize(vectors), barSizes);
  const pba = region("PBA", pbaBar, pbaOffset, msixPbaSize(vectors), barSizes);
  if (
    tableBar === pbaBar && table.offset < pba.offset + pba.size &&
    pba.offset < table.offset + table.size
  ) {
    throw new MsixError(
      `MSI-X table 0x${table.offset.toString(16)}+0x${table.size.toString(16)} and PBA ` +
        `0x${pba.offset.toString(16)}+0x${pba.size.toString(16)} overlap in BAR ${tableBar}`,
    );
  }
  return {
    table,
    pba,
    tablePage: trapPages(table, barSizes[tableBar], pageSize),
    pbaPage: trapPages(pba, barSizes[pbaBar], pageSize),
  };
}

function region(
  what: string,
  bar: number,
  offset: number,
  size: number,
  barSizes: number[],
): MsixRegion {
  const barSize = barSizes[bar] ?? 0;
  if (!Number.isSafeInteger(barSize) || barSize <= 0) {
    throw new MsixError(`MSI-X ${what} is in BAR ${bar}, which the device does not implement`);
  }
  if (offset + size > barSize) {
    throw new MsixError(
      `MSI-X ${what} at 0x${offset.toString(16)} of 0x${size.toString(16)} bytes overruns ` +
        `BAR ${bar} of 0x${barSize.toString(16)} bytes`,
    );
  }
  return { bar, offset, size };
}

/** The page-aligned span covering `r`, cut back to its BAR (a BAR may be smaller than a page). */
function trapPages(r: MsixRegion, barSize: number, pageSize: number): MsixRegion {
  const start = Math.floor(r.offset / pageSize) * pageSize;
  const end = Math.min(Math.ceil((r.offset + r.size) / pageSize) * pageSize, barSize);
  return { bar: r.bar, offset: start, size: end - start };
}
