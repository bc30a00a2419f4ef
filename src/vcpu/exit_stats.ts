/**
 * Counters the vCPU loops share with the main thread (one SharedArrayBuffer for all vCPUs):
 * exits by kind and the unclaimed accesses the issue asks us to count.
 */
export const STAT = {
  exits: 0,
  pio: 1,
  mmio: 2,
  pioReadUnclaimed: 3,
  pioWriteUnclaimed: 4,
  mmioReadUnclaimed: 5,
  mmioWriteUnclaimed: 6,
  /** PCI config accesses by mechanism: conf1 takes two exits (address, data), ECAM one. */
  pciConf1: 7,
  pciEcam: 8,
  /** KVM_RUN ended by a signal (EINTR): the boot vCPU's tick, a stop kick. */
  interrupted: 9,
  /** Slices of the boot vCPU (../machine/boot_vcpu.ts) ended by the clock (busySliceMs). */
  sliceClock: 10,
  /** Slices of a guest busy with exits ended early because the event loop had work. */
  sliceWoken: 11,
  /** Slices ended at a tick that found the guest idle (fewer than BUSY_SLICE_EXITS exits). */
  sliceIdle: 12,
  /**
   * Microseconds the boot vCPU spent out of its slices, in the event loop's turns: the guest's
   * clock runs on meanwhile, so a turn is time a guest's measurement of its exits includes.
   */
  turnUs: 13,
  /** The longest of those turns, in microseconds. */
  turnMaxUs: 14,
} as const;
const COUNT = Object.keys(STAT).length;

/** Rows: one per vCPU (at most 255) and one spare, so no two threads bump the same cell. */
const ROWS = 256;

export function createStats(): SharedArrayBuffer {
  return new SharedArrayBuffer(ROWS * COUNT * 4);
}

/**
 * A thread's handle on the counters. Each vCPU bumps only its own row, with plain increments:
 * an atomic read-modify-write per exit would cost more than the rest of the exit's bookkeeping
 * (and under the emulated sandbox, much more), and a counter with one writer needs none.
 * Readers sum the rows; a count read while a vCPU runs may be a few exits behind.
 */
export class ExitStats {
  readonly counters: Int32Array;
  readonly #base: number;
  constructor(sab: SharedArrayBuffer, row = 0) {
    if (!Number.isInteger(row) || row < 0 || row >= ROWS) {
      throw new RangeError(`stats row ${row} is not in 0..${ROWS - 1}`);
    }
    this.counters = new Int32Array(sab);
    this.#base = row * COUNT;
  }
  bump(which: number): void {
    this.counters[this.#base + which]++;
  }
  /** Adds `n` to a counter of sums (turnUs). */
  add(which: number, n: number): void {
    this.counters[this.#base + which] += n;
  }
  /** Raises a counter of maxima (turnMaxUs) to `n`. */
  max(which: number, n: number): void {
    const i = this.#base + which;
    if (n > this.counters[i]) this.counters[i] = n;
  }
  get(which: number): number {
    let sum = 0;
    for (let r = 0; r < ROWS; r++) sum += Atomics.load(this.counters, r * COUNT + which);
    return sum;
  }
  summary(): string {
    return Object.entries(STAT).map(([name, i]) => `${name}=${this.get(i)}`).join(" ");
  }
}
