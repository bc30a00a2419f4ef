/**
 * Fairness for the I/O Worker. A device serves a bounded amount per call (DeviceRunner's
 * budget) and says whether work is left; such calls wait here and are run again, one turn each,
 * after every readable fd had its turn. A queue with endless work then costs the others one
 * budget's worth of latency per round, never their service.
 *
 * @module
 */

/** A unit of device work: runs one budget's worth, returns whether work is left. */
export type Serve = () => boolean;

export class Backlog {
  readonly #pending = new Set<Serve>();

  /** Whether work is waiting (the Worker then polls its fds without sleeping). */
  get busy(): boolean {
    return this.#pending.size > 0;
  }

  /** Run `serve` now, and keep it for another turn if it left work. */
  run(serve: Serve): void {
    if (serve()) this.#pending.add(serve);
  }

  /** Give every waiting unit one more turn; drop the ones that finished. */
  round(): void {
    for (const serve of this.#pending) if (!serve()) this.#pending.delete(serve);
  }
}
