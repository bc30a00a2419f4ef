/**
 * A bus maps address ranges to devices and nothing else (port I/O and MMIO each get one).
 * Lookups are on the vCPU exit path: no allocation, a binary search over sorted ranges.
 */
import type { BusDevice } from "./device.ts";

export class BusConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BusConflictError";
  }
}

export interface BusEntry {
  readonly base: number;
  readonly size: number;
  readonly device: BusDevice;
  readonly name: string;
}

export class Bus {
  #entries: BusEntry[] = [];
  #bases: number[] = [];

  constructor(readonly name: string, readonly limit: number) {}

  /** Claim [base, base+size) for `device`; overlapping another device is a programming error. */
  register(base: number, size: number, device: BusDevice, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new BusConflictError(`${this.name}: bad range for ${name}`);
    }
    if (base + size > this.limit) {
      throw new BusConflictError(`${this.name}: ${name} at ${hex(base)} runs past the bus`);
    }
    for (const e of this.#entries) {
      if (base < e.base + e.size && e.base < base + size) {
        throw new BusConflictError(
          `${this.name}: ${name} at ${hex(base)}+${hex(size)} overlaps ${e.name} at ${hex(e.base)}`,
        );
      }
    }
    this.#entries.push({ base, size, device, name });
    this.#entries.sort((a, b) => a.base - b.base);
    this.#bases = this.#entries.map((e) => e.base);
  }

  /** Release the range registered at `base` (a moved BAR, an unplugged device). */
  unregister(base: number): boolean {
    const i = this.#entries.findIndex((e) => e.base === base);
    if (i < 0) return false;
    this.#entries.splice(i, 1);
    this.#bases = this.#entries.map((e) => e.base);
    return true;
  }

  /** The entry whose range holds [addr, addr+len), or undefined. */
  find(addr: number, len: number): BusEntry | undefined {
    const bases = this.#bases;
    let lo = 0;
    let hi = bases.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (bases[mid] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi < 0) return undefined;
    const e = this.#entries[hi];
    return addr + len <= e.base + e.size ? e : undefined;
  }

  get entries(): readonly BusEntry[] {
    return this.#entries;
  }
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}
