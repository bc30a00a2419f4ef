/**
 * The hostile-guest fuzz harness: what every device model's fuzz test shares.
 *
 * A fuzz test runs fast-check properties in batches until it has made
 * `DENOVMM_FUZZ_ACCESSES` hostile accesses (an access is one register read or write, one
 * notify, or one descriptor chain the device processed), then prints one line per model:
 * accesses, crashes, stray writes. A crash (an exception the device let escape that is not one
 * of its documented error classes) or a stray write fails the property, and fast-check prints
 * the shrunk input that reproduces it.
 *
 * Guest RAM is a {@link FuzzRam}: a GuestMemory over a plain buffer with a small low region
 * (so every byte can be compared after each run) and a small region at 4 GiB (so the MMIO
 * hole and the 4 GiB boundary are edges a descriptor can straddle). Every write the fake
 * driver makes goes to a shadow copy too; at the end of a run any byte that differs from the
 * shadow must lie in a range the device was allowed to write: a writable buffer of a chain it
 * popped, or its used ring.
 *
 * Operations are tuples of small non-negative integers that each test decodes with
 * {@link pick} and the edge lists below, so fast-check generates them cheaply, shrinks them,
 * and still hits the edges (RAM end, 4 GiB, 2^53, ring and BAR boundaries).
 */
import fc from "fast-check";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import type { RamLayout, RamRegion } from "../../src/memory/regions.ts";

/** Accesses per model: `DENOVMM_FUZZ_ACCESSES`, or a count that keeps `deno test` quick. */
export function fuzzAccesses(fallback = 20_000): number {
  const env = Deno.env.get("DENOVMM_FUZZ_ACCESSES");
  const n = env === undefined ? fallback : Number(env);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RangeError(`DENOVMM_FUZZ_ACCESSES=${env} is not a positive count`);
  }
  return n;
}

/** One model's tally, printed when its test ends. */
export class FuzzStats {
  accesses = 0;
  crashes = 0;
  strayWrites = 0;
  runs = 0;
  /** Extra per-model counters (chains processed, interrupts, resets...), printed too. */
  readonly counts = new Map<string, number>();
  readonly #start = performance.now();

  constructor(readonly model: string) {}

  count(what: string, n = 1): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + n);
  }

  line(): string {
    const s = ((performance.now() - this.#start) / 1000).toFixed(1);
    const extra = [...this.counts].map(([k, v]) => `${k} ${v}`).join(", ");
    return `fuzz ${this.model}: ${this.accesses} accesses, ${this.crashes} crashes, ` +
      `${this.strayWrites} stray writes, ${this.runs} runs, ${s} s` + (extra ? ` (${extra})` : "");
  }
}

/** An exception a device is documented to throw, which its caller turns into a device error. */
export type Expected = (e: unknown) => boolean;

/**
 * Run `property` over `arb` in batches until `stats.accesses` reaches the target. The property
 * returns the accesses it made. Unexpected exceptions count as crashes and fail the test with
 * fast-check's counterexample.
 */
export function fuzz<T>(
  stats: FuzzStats,
  arb: fc.Arbitrary<T>,
  property: (input: T) => number,
  options: { target?: number; batch?: number } = {},
): void {
  const target = options.target ?? fuzzAccesses();
  const batch = options.batch ?? 200;
  const seedEnv = Deno.env.get("DENOVMM_FUZZ_SEED");
  let seed = seedEnv === undefined ? Date.now() % 2 ** 31 : Number(seedEnv);
  let failure: unknown;
  try {
    let numRuns = 20;
    while (stats.accesses < target) {
      fc.assert(
        fc.property(arb, (input) => {
          stats.runs++;
          try {
            stats.accesses += property(input);
          } catch (e) {
            failure = e;
            throw e;
          }
        }),
        { numRuns, seed: seed++ },
      );
      // Size the next batch to what is left, from the accesses a run has made so far.
      const perRun = stats.accesses / Math.max(stats.runs, 1);
      numRuns = Math.max(1, Math.min(batch, Math.ceil((target - stats.accesses) / perRun)));
    }
  } catch (e) {
    // Counted once, however many times fast-check replayed it while shrinking.
    if (failure instanceof StrayWriteError) stats.strayWrites += failure.bytes;
    else stats.crashes++;
    throw e;
  } finally {
    console.log(stats.line());
  }
}

/** Bytes the device wrote where it had no right to. */
export class StrayWriteError extends Error {
  override name = "StrayWriteError";
  constructor(readonly bytes: number, message: string) {
    super(message);
  }
}

export const KiB = 1024;
/** Guest RAM below the hole: small, so a whole-RAM diff after each run is cheap. */
export const LOW_RAM_BYTES = 512 * KiB;
/** Where RAM resumes above the 32-bit hole. */
export const HIGH_RAM_GPA = 0x1_0000_0000;
export const HIGH_RAM_BYTES = 64 * KiB;
export const RAM_BYTES = LOW_RAM_BYTES + HIGH_RAM_BYTES;

/** The machine's real split (low RAM, hole, RAM at 4 GiB) shrunk to fuzzing size. */
function fuzzLayout(): RamLayout {
  const regions: RamRegion[] = [
    { gpa: 0, size: LOW_RAM_BYTES, hostOffset: 0 },
    { gpa: HIGH_RAM_GPA, size: HIGH_RAM_BYTES, hostOffset: LOW_RAM_BYTES },
  ];
  return {
    ramBytes: RAM_BYTES,
    regions,
  };
}

/**
 * Guest addresses a hostile driver likes: RAM edges, the hole, 4 GiB, 2^53 and beyond. Each
 * is a base; tests add a small signed offset.
 */
export const EDGE_GPAS: readonly number[] = [
  0,
  LOW_RAM_BYTES,
  HIGH_RAM_GPA,
  HIGH_RAM_GPA + HIGH_RAM_BYTES,
  0xc000_0000,
  0xfee0_0000,
  0xffff_f000,
  2 ** 52,
  2 ** 53,
  2 ** 64,
];

/** Lengths a hostile driver likes. */
export const EDGE_LENGTHS: readonly number[] = [
  0,
  1,
  2,
  11,
  12,
  13,
  15,
  16,
  17,
  511,
  512,
  513,
  4095,
  4096,
  65535,
  65536,
  65548,
  LOW_RAM_BYTES,
  0x7fff_ffff,
  0x8000_0000,
  0xffff_ffff,
];

/** `list[n mod list.length]` (for any integer n, negative too). */
export function pick<T>(list: readonly T[], n: number): T {
  return list[((n % list.length) + list.length) % list.length];
}

/** A half-open guest range [gpa, gpa + len). */
interface Range {
  gpa: number;
  len: number;
}

/** Guest RAM with a shadow of every driver write; see the module doc. */
export class FuzzRam {
  readonly mem: GuestMemory;
  readonly bytes: Uint8Array;
  readonly #shadow: Uint8Array;
  readonly #words: Int32Array;
  readonly #shadowWords: Int32Array;
  readonly #allowed: Range[] = [];

  constructor() {
    const buffer = new ArrayBuffer(RAM_BYTES);
    this.mem = new GuestMemory(buffer, fuzzLayout());
    this.bytes = new Uint8Array(buffer);
    this.#shadow = new Uint8Array(RAM_BYTES);
    this.#words = new Int32Array(buffer);
    this.#shadowWords = new Int32Array(this.#shadow.buffer);
  }

  /** Host offset of [gpa, gpa + len) if it lies in RAM, else -1. */
  offset(gpa: number, len: number): number {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || len < 0) return -1;
    if (gpa + len <= LOW_RAM_BYTES) return gpa;
    if (gpa >= HIGH_RAM_GPA && gpa + len <= HIGH_RAM_GPA + HIGH_RAM_BYTES) {
      return LOW_RAM_BYTES + gpa - HIGH_RAM_GPA;
    }
    return -1;
  }

  /** The driver writes `data` at `gpa` (dropped where it is not RAM, as a DMA-less CPU would fault). */
  write(gpa: number, data: Uint8Array): void {
    const at = this.offset(gpa, data.length);
    if (at < 0) return;
    this.bytes.set(data, at);
    this.#shadow.set(data, at);
  }

  #scratch = new DataView(new ArrayBuffer(8));

  w8(gpa: number, v: number): void {
    this.#scratch.setUint8(0, v);
    this.write(gpa, new Uint8Array(this.#scratch.buffer, 0, 1));
  }
  w16(gpa: number, v: number): void {
    this.#scratch.setUint16(0, v, true);
    this.write(gpa, new Uint8Array(this.#scratch.buffer, 0, 2));
  }
  w32(gpa: number, v: number): void {
    this.#scratch.setUint32(0, v >>> 0, true);
    this.write(gpa, new Uint8Array(this.#scratch.buffer, 0, 4));
  }
  w64(gpa: number, v: bigint): void {
    this.#scratch.setBigUint64(0, BigInt.asUintN(64, v), true);
    this.write(gpa, new Uint8Array(this.#scratch.buffer, 0, 8));
  }
  r16(gpa: number): number {
    const at = this.offset(gpa, 2);
    return at < 0 ? 0 : this.bytes[at] | (this.bytes[at + 1] << 8);
  }

  /** The device may write [gpa, gpa + len) until the next {@link check}. */
  allow(gpa: number, len: number): void {
    this.#allowed.push({ gpa, len });
  }

  /** The allowed ranges as sorted, merged [start, end) intervals of host offsets. */
  #allowedHost(): number[] {
    const spans: Array<[number, number]> = [];
    const clip = (start: number, end: number, base: number, size: number, host: number) => {
      const s = Math.max(start, base), e = Math.min(end, base + size);
      if (s < e) spans.push([host + s - base, host + e - base]);
    };
    for (const r of this.#allowed) {
      clip(r.gpa, r.gpa + r.len, 0, LOW_RAM_BYTES, 0);
      clip(r.gpa, r.gpa + r.len, HIGH_RAM_GPA, HIGH_RAM_BYTES, LOW_RAM_BYTES);
    }
    spans.sort((a, b) => a[0] - b[0]);
    const flat: number[] = [];
    for (const [s, e] of spans) {
      const n = flat.length;
      if (n > 0 && s <= flat[n - 1]) flat[n - 1] = Math.max(flat[n - 1], e);
      else flat.push(s, e);
    }
    return flat;
  }

  /**
   * Throw StrayWriteError if the device changed a byte outside the allowed ranges since the
   * last check; then take the device's writes into the shadow and forget the ranges.
   */
  check(): void {
    const w = this.#words, s = this.#shadowWords;
    const allowed = this.#allowedHost();
    let stray = 0;
    let first = -1;
    let k = 0; // the first interval that does not end before the byte looked at
    for (let i = 0; i < w.length; i++) {
      if (w[i] === s[i]) continue;
      // Fast path: the whole word inside the current allowed interval.
      while (k < allowed.length && allowed[k + 1] <= 4 * i) k += 2;
      if (k < allowed.length && allowed[k] <= 4 * i && 4 * i + 4 <= allowed[k + 1]) continue;
      for (let b = 4 * i; b < 4 * i + 4; b++) {
        if (this.bytes[b] === this.#shadow[b]) continue;
        while (k < allowed.length && allowed[k + 1] <= b) k += 2;
        if (k < allowed.length && allowed[k] <= b) continue;
        stray++;
        if (first < 0) first = b < LOW_RAM_BYTES ? b : HIGH_RAM_GPA + (b - LOW_RAM_BYTES);
      }
    }
    this.#shadow.set(this.bytes);
    this.#allowed.length = 0;
    if (stray > 0) {
      throw new StrayWriteError(
        stray,
        `${stray} bytes written outside the guest's writable buffers and used rings, ` +
          `first at 0x${first.toString(16)}`,
      );
    }
  }
}

/** Little-endian bytes of the low `width` bytes of lo (then hi). */
export function leBytes(width: number, lo: number, hi = 0): Uint8Array {
  const d = new Uint8Array(width);
  for (let i = 0; i < width; i++) {
    d[i] = i < 4 ? (lo >>> (8 * i)) & 0xff : i < 8 ? (hi >>> (8 * (i - 4))) & 0xff : 0;
  }
  return d;
}

/** Operations as fast-check generates them: [kind, a, b, c], all small non-negative ints. */
export type Op = [number, number, number, number];

/** An array of ops, long enough that a run gets past set-up into the interesting states. */
export function ops(kinds: number, options: { min?: number; max?: number } = {}) {
  return fc.array(
    fc.tuple(
      fc.nat({ max: kinds - 1 }),
      fc.nat(),
      fc.nat(),
      fc.oneof(fc.nat(), fc.constantFrom(0, 0xffff_ffff, 0x8000_0000, 0xffff)),
    ),
    { minLength: options.min ?? 20, maxLength: options.max ?? 200, size: "max" },
  ) as fc.Arbitrary<Op[]>;
}
