/**
 * Moves the user's stdin into the guest's console UART, on the main thread (never on a
 * vCPU thread). A TTY is put in raw mode (restored by `restore`, which every exit path
 * calls) and filtered for the Ctrl-A escape. A pipe is copied as is, and its EOF becomes
 * Ctrl-D for the guest's line discipline, which is how a shell on a serial console sees EOF.
 */
import { ESCAPE_HELP, EscapeFilter } from "./escape.ts";

const CTRL_D = 0x04;
const NEWLINE = 0x0a;
/** How long to wait for the guest to drain its input ring when it is full. */
const BACKOFF_MS = 5;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ConsoleInput {
  /** Queue bytes for the guest; returns how many were taken. */
  push(bytes: Uint8Array): number;
  /** Bytes queued that the guest has not read yet. */
  pending?(): number;
}

/** The part of `Deno.stdin` the pump uses; tests pass a fake. */
export interface StdinLike {
  read(p: Uint8Array): Promise<number | null>;
  /** Used once the pump polls (`readBetweenTicks`): called only when a read will not block. */
  readSync(p: Uint8Array): number | null;
  isTerminal(): boolean;
  setRaw(mode: boolean): void;
}

export class StdinPump {
  readonly isTty: boolean;
  #raw = false;
  #stopped = false;
  /** Bytes the guest's input had no room for yet, and what the push waits on. */
  #rest: Uint8Array | undefined;
  #restTaken: () => void = () => {};
  /** After EOF: when the next Ctrl-D is due, and how often (`eofRepeatMs`). */
  #eofDue = Infinity;
  #eofEveryMs = Infinity;
  /** Set by `readBetweenTicks`: whether stdin has something to read now, without taking it. */
  #readable: (() => boolean) | undefined;
  /** The read loop, waiting for `tick` to see stdin readable. */
  #readableSeen: (() => void) | undefined;

  constructor(
    private readonly input: ConsoleInput,
    private readonly onQuit: () => void,
    private readonly stdin: StdinLike = Deno.stdin,
    /** After EOF, send Ctrl-D again this often while the guest has read all input. */
    private readonly eofRepeatMs?: number,
  ) {
    this.isTty = stdin.isTerminal();
  }

  /**
   * Read stdin only once `tick` has seen it readable, with a read that does not wait, instead of
   * keeping a read waiting on Deno's blocking pool. Called before `run` where the boot vCPU's
   * slices call `tick` (../machine/boot_vcpu.ts). A read that waits on the pool takes the input
   * as it comes, and its end wakes the event loop in memory only, where the boot vCPU's probe
   * (../../ffi/event_loop_probe.ts) cannot see it, so typed keys waited for the slice's clock (a
   * second); input left in the kernel is seen by `readable` at the next tick.
   */
  readBetweenTicks(readable: () => boolean): void {
    this.#readable = readable;
  }

  /** One read of stdin: null at EOF (or a closed, unreadable stdin). */
  async #read(buf: Uint8Array): Promise<number | null> {
    if (this.#readable === undefined) {
      try {
        return await this.stdin.read(buf);
      } catch {
        return null; // a closed or unreadable stdin is the same as EOF
      }
    }
    // Looked at again right before the read, so that it never waits: this thread runs vCPU 0.
    let wait = false;
    for (;;) {
      if (wait || !this.#readable()) {
        await new Promise<void>((resolve) => this.#readableSeen = resolve);
        if (this.#stopped) return null;
        wait = false;
        continue;
      }
      try {
        return this.stdin.readSync(buf);
      } catch (e) {
        // A read that would have waited, or a signal in it: the next tick looks again.
        if (e instanceof Deno.errors.WouldBlock || e instanceof Deno.errors.Interrupted) {
          wait = true;
          continue;
        }
        return null;
      }
    }
  }

  /** Start pumping; resolves at EOF (never for a TTY until quit). */
  async run(): Promise<void> {
    if (this.isTty) {
      this.stdin.setRaw(true);
      this.#raw = true;
    }
    const escape = this.isTty ? new EscapeFilter() : undefined;
    const buf = new Uint8Array(4096);
    let last = NEWLINE;
    while (!this.#stopped) {
      const n = await this.#read(buf);
      if (n === null) break;
      let bytes: Uint8Array = buf.subarray(0, n);
      if (escape) {
        const r = escape.filter(bytes);
        if (r.action === "quit") return this.onQuit();
        if (r.action === "help") await Deno.stdout.write(new TextEncoder().encode(ESCAPE_HELP));
        bytes = r.bytes;
      }
      if (bytes.length > 0) last = bytes[bytes.length - 1];
      await this.#pushAll(bytes);
    }
    if (!this.isTty && !this.#stopped) {
      // One Ctrl-D ends a pending partial line, the next one is the EOF.
      await this.#pushAll(new Uint8Array(last === NEWLINE ? [CTRL_D] : [CTRL_D, CTRL_D]));
      if (this.eofRepeatMs !== undefined) void this.#repeatEof(this.eofRepeatMs);
    }
  }

  /**
   * A serial line has no EOF, and one Ctrl-D is not always enough: if it reaches the guest's
   * tty before the shell takes it into raw mode (busybox ash's line editing), the canonical
   * line discipline consumes it. So while stdin stays at EOF, every read the guest makes
   * after draining its input should see EOF again: repeat Ctrl-D whenever the queue is empty.
   */
  async #repeatEof(everyMs: number): Promise<void> {
    this.#eofEveryMs = everyMs;
    this.#eofDue = performance.now() + everyMs;
    while (!this.#stopped) {
      await sleep(Math.max(0, this.#eofDue - performance.now()));
      this.tick();
    }
  }

  async #pushAll(bytes: Uint8Array): Promise<void> {
    const n = this.input.push(bytes);
    if (n === bytes.length || this.#stopped) return;
    // The rest goes in from `tick`, at the latest BACKOFF_MS from now.
    this.#rest = bytes.subarray(n);
    const taken = new Promise<void>((resolve) => this.#restTaken = resolve);
    while (this.#rest !== undefined && !this.#stopped) {
      await Promise.race([taken, sleep(BACKOFF_MS)]);
      this.tick();
    }
  }

  /**
   * The pump's timed work, done now where it is due: the rest of a push the guest's input had
   * no room for, and the EOF repeat. The pump's own timers call it, and so does the boot vCPU
   * between exits (../machine/boot_vcpu.ts: a guest busy with exits leaves the event loop's
   * timers waiting). Returns whether the pump needs a turn of the event loop: the rest of a
   * push went in, or stdin became readable (`readBetweenTicks`), and the next read of stdin
   * waits for that turn.
   */
  tick(now = performance.now()): boolean {
    if (this.#stopped) return false;
    let turn = false;
    if (this.#readableSeen !== undefined && this.#readable?.()) {
      this.#readableSeen();
      this.#readableSeen = undefined;
      turn = true;
    }
    if (this.#rest !== undefined) {
      this.#rest = this.#rest.subarray(this.input.push(this.#rest));
      if (this.#rest.length === 0) {
        this.#rest = undefined;
        this.#restTaken();
        turn = true;
      }
    }
    // A timer may fire a fraction of a millisecond before performance.now() says it is due.
    if (now + 1 >= this.#eofDue) {
      this.#eofDue = now + this.#eofEveryMs;
      if (this.input.pending?.() === 0) this.input.push(Uint8Array.of(CTRL_D));
    }
    return turn;
  }

  /** Put the terminal back as it was. Safe to call more than once. */
  restore(): void {
    this.#stopped = true;
    this.#readableSeen?.();
    if (this.#raw) {
      this.#raw = false;
      try {
        this.stdin.setRaw(false);
      } catch {
        // stdin already gone: nothing to restore
      }
    }
  }
}
