/**
 * The one lock shared state takes: a word of an Int32Array over a SharedArrayBuffer, 0 free
 * and 1 held, taken by spinning. Every critical section it guards is a few loads and stores
 * (a register update, a table entry, a routing-table change), shorter than a futex wait and
 * wake would be, and no thread holds it across a system call that can block for long.
 * Free functions over (array, index), so taking it allocates nothing on the vCPU path.
 *
 * @example
 * ```ts
 * const s = new Int32Array(new SharedArrayBuffer(16));
 * spinLock(s, 0);
 * try { s[1]++; } finally { spinUnlock(s, 0); }
 * ```
 */

/** Take the lock in word `index` of `words`, spinning until it is free. */
export function spinLock(words: Int32Array, index: number): void {
  while (Atomics.compareExchange(words, index, 0, 1) !== 0) { /* short critical sections */ }
}

/** Give the lock back (the caller holds it). */
export function spinUnlock(words: Int32Array, index: number): void {
  Atomics.store(words, index, 0);
}
