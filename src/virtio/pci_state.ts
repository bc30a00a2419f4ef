/**
 * The register state of one virtio-pci device (virtio 1.2 §4.1.4.3, struct
 * virtio_pci_common_cfg), in a SharedArrayBuffer: vCPU threads run the driver's register
 * accesses, the I/O Worker reads queue addresses and writes the status on errors.
 */
import { spinLock, spinUnlock } from "../spin_lock.ts";

export const VIRTIO_NO_VECTOR = 0xffff;

// Device status bits (§2.1).
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

/** VIRTIO_F_VERSION_1 (§6): a modern-only device requires it. */
export const VIRTIO_F_VERSION_1 = 1n << 32n;
/** VIRTIO_F_RING_EVENT_IDX (§6). */
export const VIRTIO_F_RING_EVENT_IDX = 1n << 29n;

// Int32 word indexes.
const LOCK = 0;
const DEVICE_FEATURES_LO = 1;
const DEVICE_FEATURES_HI = 2;
const DEVICE_FEATURE_SELECT = 3;
const DRIVER_FEATURE_SELECT = 4;
const DRIVER_FEATURES_LO = 5;
const DRIVER_FEATURES_HI = 6;
const CONFIG_MSIX_VECTOR = 7;
const STATUS = 8;
const CONFIG_GENERATION = 9;
const QUEUE_SELECT = 10;
const NUM_QUEUES = 11;
const ISR = 12;
/** Bumped on every reset, so the I/O Worker drops its queue state. */
const RESET_GENERATION = 13;
const NUM_VECTORS = 14;
/** Where the notify ioeventfds sit now (0: not placed), shared so any thread can move them. */
const IOEVENTFD_BASE_LO = 15;
const IOEVENTFD_BASE_HI = 16;
/**
 * Set while the I/O Worker runs this device's queues (it touches guest memory then). A reset
 * the driver asks for meanwhile waits in RESET_PENDING, and the status keeps reading non-zero
 * until the Worker has stopped: §4.1.4.3.2, the driver waits for status to read 0.
 */
const WORKER_ACTIVE = 17;
const RESET_PENDING = 18;
const HEADER = 19;

// Per queue.
const Q_MAX_SIZE = 0;
const Q_SIZE = 1;
const Q_MSIX_VECTOR = 2;
const Q_ENABLE = 3;
const Q_DESC_LO = 4;
const Q_DESC_HI = 5;
const Q_DRIVER_LO = 6;
const Q_DRIVER_HI = 7;
const Q_DEVICE_LO = 8;
const Q_DEVICE_HI = 9;
const Q_WORDS = 10;

export interface QueueAddresses {
  size: number;
  descGpa: number;
  availGpa: number;
  usedGpa: number;
}

export class VirtioPciState {
  readonly s: Int32Array;

  static create(numQueues: number, queueMaxSize: number, vectors: number, features: bigint) {
    const sab = new SharedArrayBuffer((HEADER + numQueues * Q_WORDS) * 4);
    const s = new Int32Array(sab);
    s[DEVICE_FEATURES_LO] = Number(features & 0xffff_ffffn) | 0;
    s[DEVICE_FEATURES_HI] = Number(features >> 32n) | 0;
    s[NUM_QUEUES] = numQueues;
    s[NUM_VECTORS] = vectors;
    for (let q = 0; q < numQueues; q++) s[HEADER + q * Q_WORDS + Q_MAX_SIZE] = queueMaxSize;
    new VirtioPciState(sab).#resetLocked();
    return sab;
  }

  constructor(sab: SharedArrayBuffer) {
    this.s = new Int32Array(sab);
  }

  get numQueues(): number {
    return this.s[NUM_QUEUES];
  }
  get status(): number {
    return Atomics.load(this.s, STATUS);
  }
  get resetGeneration(): number {
    return Atomics.load(this.s, RESET_GENERATION);
  }
  /**
   * The features in force: what the driver accepted of the offer once FEATURES_OK stuck, else
   * none. A bit the device did not offer is never in force, whatever the driver wrote.
   */
  get negotiatedFeatures(): bigint {
    if (!(this.status & STATUS_FEATURES_OK)) return 0n;
    return this.driverFeatures & this.deviceFeatures;
  }
  /** Whether the device may serve its queues: DRIVER_OK set, not broken, no reset pending. */
  get live(): boolean {
    const s = this.status;
    return (s & STATUS_DRIVER_OK) !== 0 && (s & STATUS_DEVICE_NEEDS_RESET) === 0 &&
      Atomics.load(this.s, RESET_PENDING) === 0;
  }
  get driverFeatures(): bigint {
    return (BigInt(this.s[DRIVER_FEATURES_HI] >>> 0) << 32n) |
      BigInt(this.s[DRIVER_FEATURES_LO] >>> 0);
  }
  get deviceFeatures(): bigint {
    return (BigInt(this.s[DEVICE_FEATURES_HI] >>> 0) << 32n) |
      BigInt(this.s[DEVICE_FEATURES_LO] >>> 0);
  }
  get configVector(): number {
    return this.s[CONFIG_MSIX_VECTOR];
  }

  queueEnabled(q: number): boolean {
    return this.#inRange(q) && Atomics.load(this.s, this.#q(q) + Q_ENABLE) === 1;
  }
  queueVector(q: number): number {
    return this.#inRange(q) ? this.s[this.#q(q) + Q_MSIX_VECTOR] : VIRTIO_NO_VECTOR;
  }
  queueAddresses(q: number): QueueAddresses {
    const at = this.#q(q);
    const s = this.s;
    const u64 = (lo: number) => (s[at + lo] >>> 0) + (s[at + lo + 1] >>> 0) * 0x1_0000_0000;
    return {
      size: s[at + Q_SIZE],
      descGpa: u64(Q_DESC_LO),
      availGpa: u64(Q_DRIVER_LO),
      usedGpa: u64(Q_DEVICE_LO),
    };
  }

  /** The I/O Worker found the device broken (§2.1.2): set DEVICE_NEEDS_RESET. */
  markNeedsReset(): void {
    this.lock();
    this.s[STATUS] |= STATUS_DEVICE_NEEDS_RESET;
    this.s[CONFIG_GENERATION]++;
    this.unlock();
  }

  /**
   * The I/O Worker is about to run this device's queues: returns the reset generation it runs
   * under. While it runs (until {@link leaveWorker}), a reset the driver writes is held back.
   */
  enterWorker(): number {
    this.lock();
    Atomics.store(this.s, WORKER_ACTIVE, 1);
    const gen = this.s[RESET_GENERATION];
    this.unlock();
    return gen;
  }

  /** The I/O Worker is done with the queues for now: carry out a reset that waited. */
  leaveWorker(): void {
    this.lock();
    Atomics.store(this.s, WORKER_ACTIVE, 0);
    if (this.s[RESET_PENDING] !== 0) this.#resetLocked();
    this.unlock();
  }

  /**
   * Set ISR bits and, while holding the lock, let the caller raise INTx: a concurrent ISR read
   * (which lowers the line) then happens wholly before or after, so no interrupt is lost.
   */
  raiseIsr(bits: number, raise?: () => void): void {
    this.lock();
    try {
      this.s[ISR] |= bits;
      raise?.();
    } finally {
      this.unlock();
    }
  }

  ioeventfdBase(): number {
    return (this.s[IOEVENTFD_BASE_LO] >>> 0) + (this.s[IOEVENTFD_BASE_HI] >>> 0) * 0x1_0000_0000;
  }
  setIoeventfdBase(gpa: number): void {
    this.s[IOEVENTFD_BASE_LO] = gpa % 0x1_0000_0000;
    this.s[IOEVENTFD_BASE_HI] = Math.floor(gpa / 0x1_0000_0000);
  }

  // --- common configuration registers (§4.1.4.3), as the driver reads and writes them ---

  /** Read a common-config field; accesses that are not a whole field read 0. */
  readCommon(offset: number, size: number): number {
    const s = this.s;
    this.lock();
    try {
      const sel = s[QUEUE_SELECT];
      const q = this.#inRange(sel) ? this.#q(sel) : -1;
      const qf = (word: number, none = 0) => (q < 0 ? none : s[q + word]);
      switch (key(offset, size)) {
        case key(0x00, 4):
          return s[DEVICE_FEATURE_SELECT];
        case key(0x04, 4): {
          const which = s[DEVICE_FEATURE_SELECT];
          return which === 0
            ? s[DEVICE_FEATURES_LO] >>> 0
            : which === 1
            ? s[DEVICE_FEATURES_HI] >>> 0
            : 0;
        }
        case key(0x08, 4):
          return s[DRIVER_FEATURE_SELECT];
        case key(0x0c, 4): {
          const which = s[DRIVER_FEATURE_SELECT];
          return which === 0
            ? s[DRIVER_FEATURES_LO] >>> 0
            : which === 1
            ? s[DRIVER_FEATURES_HI] >>> 0
            : 0;
        }
        case key(0x10, 2):
          return s[CONFIG_MSIX_VECTOR];
        case key(0x12, 2):
          return s[NUM_QUEUES];
        case key(0x14, 1):
          return s[STATUS];
        case key(0x15, 1):
          return s[CONFIG_GENERATION] & 0xff;
        case key(0x16, 2):
          return sel;
        case key(0x18, 2):
          return qf(Q_SIZE);
        case key(0x1a, 2):
          return qf(Q_MSIX_VECTOR, VIRTIO_NO_VECTOR);
        case key(0x1c, 2):
          return qf(Q_ENABLE);
        case key(0x1e, 2):
          return q < 0 ? 0 : sel; // queue_notify_off: one notify slot per queue
        case key(0x20, 4):
          return qf(Q_DESC_LO) >>> 0;
        case key(0x24, 4):
          return qf(Q_DESC_HI) >>> 0;
        case key(0x28, 4):
          return qf(Q_DRIVER_LO) >>> 0;
        case key(0x2c, 4):
          return qf(Q_DRIVER_HI) >>> 0;
        case key(0x30, 4):
          return qf(Q_DEVICE_LO) >>> 0;
        case key(0x34, 4):
          return qf(Q_DEVICE_HI) >>> 0;
        default:
          return 0;
      }
    } finally {
      this.unlock();
    }
  }

  /**
   * Write a common-config field. Returns what the caller must act on (wake the I/O Worker):
   * "reset" (a reset was asked for), "queue" (a queue was enabled), "status" (DRIVER_OK was
   * set: the queues may be served now), or undefined.
   */
  writeCommon(
    offset: number,
    size: number,
    value: number,
  ): "reset" | "queue" | "status" | undefined {
    const s = this.s;
    this.lock();
    try {
      // §4.1.4.3.2: after writing 0 the driver waits for status to read 0 before it writes
      // anything else; until the Worker has stopped, the device ignores it.
      if (s[RESET_PENDING] !== 0) return undefined;
      const sel = s[QUEUE_SELECT];
      const q = this.#inRange(sel) ? this.#q(sel) : -1;
      // Queue fields may change only while the queue is disabled (§4.1.4.3.2).
      const qw = (word: number, v: number) => {
        if (q >= 0 && s[q + Q_ENABLE] === 0) s[q + word] = v;
      };
      switch (key(offset, size)) {
        case key(0x00, 4):
          s[DEVICE_FEATURE_SELECT] = value;
          break;
        case key(0x08, 4):
          s[DRIVER_FEATURE_SELECT] = value;
          break;
        case key(0x0c, 4): {
          // Features are fixed once FEATURES_OK is set.
          if (s[STATUS] & STATUS_FEATURES_OK) break;
          const which = s[DRIVER_FEATURE_SELECT];
          if (which === 0) s[DRIVER_FEATURES_LO] = value;
          else if (which === 1) s[DRIVER_FEATURES_HI] = value;
          break;
        }
        case key(0x10, 2):
          s[CONFIG_MSIX_VECTOR] = this.#vector(value);
          break;
        case key(0x14, 1):
          return this.#writeStatus(value & 0xff);
        case key(0x16, 2):
          s[QUEUE_SELECT] = value;
          break;
        case key(0x18, 2):
          // A power of two no larger than the maximum; anything else is refused (kept as is).
          if (value !== 0 && (value & (value - 1)) === 0 && q >= 0 && value <= s[q + Q_MAX_SIZE]) {
            qw(Q_SIZE, value);
          }
          break;
        case key(0x1a, 2):
          if (q >= 0) s[q + Q_MSIX_VECTOR] = this.#vector(value);
          break;
        case key(0x1c, 2):
          // The driver may only write 1 (§4.1.4.3.2); disabling is done by reset.
          if (value === 1 && q >= 0 && s[q + Q_ENABLE] === 0) {
            Atomics.store(s, q + Q_ENABLE, 1);
            return "queue";
          }
          break;
        case key(0x20, 4):
          qw(Q_DESC_LO, value);
          break;
        case key(0x24, 4):
          qw(Q_DESC_HI, value);
          break;
        case key(0x28, 4):
          qw(Q_DRIVER_LO, value);
          break;
        case key(0x2c, 4):
          qw(Q_DRIVER_HI, value);
          break;
        case key(0x30, 4):
          qw(Q_DEVICE_LO, value);
          break;
        case key(0x34, 4):
          qw(Q_DEVICE_HI, value);
          break;
      }
      return undefined;
    } finally {
      this.unlock();
    }
  }

  /** ISR status (§4.1.4.5): reading clears it, and (INTx) lowers the line. */
  readIsr(lower?: () => void): number {
    this.lock();
    try {
      const v = this.s[ISR];
      this.s[ISR] = 0;
      if (v !== 0) lower?.();
      return v;
    } finally {
      this.unlock();
    }
  }

  #writeStatus(v: number): "reset" | "status" | undefined {
    const s = this.s;
    if (v === 0) {
      // Now, unless the I/O Worker may be in the queues (only a live device has any): then
      // when it leaves them. Status 0 already means no queue is served.
      if (s[WORKER_ACTIVE] !== 0 && s[STATUS] !== 0) s[RESET_PENDING] = 1;
      else this.#resetLocked();
      return "reset";
    }
    if ((v & STATUS_FEATURES_OK) && !(s[STATUS] & STATUS_FEATURES_OK)) {
      // Accept FEATURES_OK only for a subset of what we offer that includes VERSION_1 (§3.1.1).
      const driver = this.driverFeatures;
      if ((driver & ~this.deviceFeatures) !== 0n || (driver & VIRTIO_F_VERSION_1) === 0n) {
        v &= ~STATUS_FEATURES_OK;
      }
    }
    // §3.1.1: DRIVER_OK only after FEATURES_OK was accepted; a driver that skips it gets no
    // live device (it should read the status back and give up).
    if (!((s[STATUS] | v) & STATUS_FEATURES_OK)) v &= ~STATUS_DRIVER_OK;
    const before = s[STATUS];
    // The driver cannot clear bits except by reset, nor set NEEDS_RESET.
    s[STATUS] = (before | v) & ~(STATUS_DEVICE_NEEDS_RESET & ~before);
    return (s[STATUS] & ~before & STATUS_DRIVER_OK) !== 0 ? "status" : undefined;
  }

  #resetLocked(): void {
    const s = this.s;
    s[DEVICE_FEATURE_SELECT] = 0;
    s[DRIVER_FEATURE_SELECT] = 0;
    s[DRIVER_FEATURES_LO] = 0;
    s[DRIVER_FEATURES_HI] = 0;
    s[CONFIG_MSIX_VECTOR] = VIRTIO_NO_VECTOR;
    s[QUEUE_SELECT] = 0;
    s[ISR] = 0;
    s[RESET_PENDING] = 0;
    Atomics.store(s, STATUS, 0);
    for (let q = 0; q < s[NUM_QUEUES]; q++) {
      const at = this.#q(q);
      s[at + Q_SIZE] = s[at + Q_MAX_SIZE];
      s[at + Q_MSIX_VECTOR] = VIRTIO_NO_VECTOR;
      Atomics.store(s, at + Q_ENABLE, 0);
      for (let w = Q_DESC_LO; w <= Q_DEVICE_HI; w++) s[at + w] = 0;
    }
    Atomics.add(s, RESET_GENERATION, 1);
  }

  /** A vector number the device can honour, or NO_VECTOR (§4.1.5.1.2: reads back NO_VECTOR). */
  #vector(v: number): number {
    return v < this.s[NUM_VECTORS] ? v : VIRTIO_NO_VECTOR;
  }
  #inRange(q: number): boolean {
    return Number.isInteger(q) && q >= 0 && q < this.s[NUM_QUEUES];
  }
  #q(q: number): number {
    return HEADER + q * Q_WORDS;
  }

  lock(): void {
    spinLock(this.s, LOCK);
  }
  unlock(): void {
    spinUnlock(this.s, LOCK);
  }
}

const key = (offset: number, size: number) => offset * 8 + size;
