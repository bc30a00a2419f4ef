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
} as const;
const COUNT = Object.keys(STAT).length;

export function createStats(): SharedArrayBuffer {
  return new SharedArrayBuffer(COUNT * 4);
}

export class ExitStats {
  readonly counters: Int32Array;
  constructor(sab: SharedArrayBuffer) {
    this.counters = new Int32Array(sab);
  }
  bump(which: number): void {
    Atomics.add(this.counters, which, 1);
  }
  get(which: number): number {
    return Atomics.load(this.counters, which);
  }
  summary(): string {
    return Object.entries(STAT).map(([name, i]) => `${name}=${this.get(i)}`).join(" ");
  }
}
