/**
 * Logging for what a guest (or an ordinary host state) can make happen over and over: a bad
 * access, a dropped frame, a BAR that cannot be placed. Each cause prints at most one line a
 * second to stderr, with how many were held back since its last line, so a hostile guest cannot
 * flood the user's terminal or slow the VMM down with writes to it.
 *
 * @module
 */

/** Milliseconds between two lines of one cause. */
export const LOG_INTERVAL_MS = 1000;

/** Anything lines go to by cause: a RateLimitedLog, or a test's recorder. */
export interface CauseLog {
  log(cause: string, message: string): unknown;
}

interface CauseState {
  lastMs: number;
  suppressed: number;
}

/**
 * One line per cause per {@link LOG_INTERVAL_MS}. The cause is a short stable key (a device
 * name and what went wrong); the message says the rest.
 *
 * @example
 * ```ts
 * const log = new RateLimitedLog();
 * log.log("virtio-net tap0: tap write", "virtio-net tap0: frame dropped: write to tap: EIO");
 * ```
 */
export class RateLimitedLog implements CauseLog {
  readonly #causes = new Map<string, CauseState>();

  constructor(
    private readonly write: (line: string) => void = (line) => console.error(line),
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Print `message` (prefixed "denovmm: ") unless `cause` printed within the interval. */
  log(cause: string, message: string): boolean {
    const t = this.now();
    const s = this.#causes.get(cause);
    if (s !== undefined && t - s.lastMs < LOG_INTERVAL_MS) {
      s.suppressed++;
      return false;
    }
    const more = s !== undefined && s.suppressed > 0 ? ` (${s.suppressed} more not shown)` : "";
    this.write(`denovmm: ${message}${more}`);
    if (s === undefined) this.#causes.set(cause, { lastMs: t, suppressed: 0 });
    else {
      s.lastMs = t;
      s.suppressed = 0;
    }
    return true;
  }
}

/** The process's (or Worker's) shared limiter. */
export const rateLimitedLog = new RateLimitedLog();

/** Shorthand for {@link rateLimitedLog}.log. */
export function logRateLimited(cause: string, message: string): boolean {
  return rateLimitedLog.log(cause, message);
}

/**
 * An error as the one line that ends the VM: its message, or with --debug its stack (where a
 * device handler threw, for the bug report).
 */
export function describeError(err: unknown, debug: boolean): string {
  if (!(err instanceof Error)) return String(err);
  return debug && err.stack ? err.stack : err.message;
}
