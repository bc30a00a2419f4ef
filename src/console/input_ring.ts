/**
 * A single-producer, single-consumer byte ring in a SharedArrayBuffer: the main thread (stdin)
 * produces, the I/O Worker (virtio-console's receive queue) consumes. Head and tail are
 * free-running counters updated with Atomics, so no lock is needed for one of each.
 */
const HEAD = 0; // bytes ever consumed
const TAIL = 1; // bytes ever produced
const HEADER_BYTES = 8;

export class InputRing {
  readonly #idx: Int32Array;
  readonly #data: Uint8Array;

  static createState(capacity = 4096): SharedArrayBuffer {
    return new SharedArrayBuffer(HEADER_BYTES + capacity);
  }

  constructor(state: SharedArrayBuffer) {
    this.#idx = new Int32Array(state, 0, 2);
    this.#data = new Uint8Array(state, HEADER_BYTES);
  }

  get capacity(): number {
    return this.#data.length;
  }

  /** Bytes waiting to be consumed. */
  count(): number {
    return (Atomics.load(this.#idx, TAIL) - Atomics.load(this.#idx, HEAD)) | 0;
  }

  /** Producer: append what fits; returns how many bytes were taken. */
  push(bytes: Uint8Array): number {
    const tail = Atomics.load(this.#idx, TAIL);
    const n = Math.min(bytes.length, this.capacity - this.count());
    for (let i = 0; i < n; i++) this.#data[((tail + i) >>> 0) % this.capacity] = bytes[i];
    Atomics.store(this.#idx, TAIL, (tail + n) | 0);
    return n;
  }

  /** Consumer: move up to `into.length` bytes out; returns how many. */
  pop(into: Uint8Array): number {
    const head = Atomics.load(this.#idx, HEAD);
    const n = Math.min(into.length, this.count());
    for (let i = 0; i < n; i++) into[i] = this.#data[((head + i) >>> 0) % this.capacity];
    Atomics.store(this.#idx, HEAD, (head + n) | 0);
    return n;
  }
}
