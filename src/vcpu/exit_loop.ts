/**
 * The vCPU run loop: enter the guest, dispatch the exit to the bus, repeat. This is the hot
 * path, so it allocates nothing per exit: the data views for each access size are built once
 * over the kvm_run page, and bus lookups are a binary search.
 */
import { KVM_EXIT, KVM_EXIT_IO_OUT, KvmRun } from "../../ffi/kvm_run.ts";
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import type { Bus } from "../bus/bus.ts";
import { ExitStats, STAT } from "./exit_stats.ts";
import { registerDump } from "./register_dump.ts";

/** Why a vCPU loop ended. `status` is the process exit status the VM ends with. */
export interface LoopOutcome {
  status: number;
  /** A message for stderr (a fatal exit with its register dump), if any. */
  message?: string;
  /** The main thread stopped this vCPU (the VM ended elsewhere); `status` means nothing. */
  stoppedByHost?: boolean;
}

/**
 * Devices end the VM through this (debug-exit, i8042 reset); the main thread through
 * `hostStop` (Int32[0] set to 1), which is read once per exit.
 */
export class StopRequest {
  #outcome: LoopOutcome | undefined;

  constructor(private readonly hostStop?: Int32Array) {}

  get outcome(): LoopOutcome | undefined {
    if (this.#outcome === undefined && this.hostStop && Atomics.load(this.hostStop, 0) !== 0) {
      this.#outcome = { status: 0, stoppedByHost: true };
    }
    return this.#outcome;
  }

  stop(status: number, message?: string): void {
    this.#outcome ??= { status, message };
  }
}

export interface LoopOptions {
  debug: boolean;
  log: (line: string) => void;
  /** The architecture's register lines for a fatal exit's dump (PlatformWiring.registers). */
  registers?: (vcpu: VcpuFd) => string[];
}

/** How many exits between two looks at the clock, in slices. */
const SLICE_CHECK_EXITS = 1024;

const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
const KVM_SYSTEM_EVENT_RESET = 2;

/**
 * Run the vCPU until the VM ends (a thread of its own, which blocks in KVM_RUN).
 *
 * The loop is a few lines and each exit's work is a call ({@link ExitHandler.handle}), which V8
 * optimizes once as any hot function; with all of it in one big loop function, V8's optimizing
 * compilers took 0.4-1.5 s of CPU per compile under the sandbox's emulated CPU, while the exits
 * ran in slower code.
 */
export function runLoop(
  vcpu: VcpuFd,
  pio: Bus,
  mmio: Bus,
  stats: ExitStats,
  stop: StopRequest,
  opts: LoopOptions,
): LoopOutcome {
  const handler = new ExitHandler(vcpu, pio, mmio, stats, stop, opts);
  while (stop.outcome === undefined) {
    // EINTR (a signal such as the stop kick): go back in; the stop flag is read above.
    if (vcpu.runOnce()) handler.handle();
    else stats.bump(STAT.interrupted);
  }
  return stop.outcome;
}

/**
 * A slice with at least this many exits is a guest busy with exits, whose slice the tick does not
 * end before `busySliceMs`. An idle guest (a shell waiting for a key) has next to none per tick.
 */
export const BUSY_SLICE_EXITS = 64;

/**
 * The boot vCPU's slices as one generator (../machine/boot_vcpu.ts): each `next()` runs the vCPU
 * until KVM_RUN is interrupted (EINTR), or `busySliceMs` of back-to-back exits have passed, and
 * yields; it returns the outcome once the VM has ended. The slices' state lives in the generator's
 * frame from one slice to the next; the exits between two looks run in `runExits`, entered at each
 * look (every `SLICE_CHECK_EXITS` exits or tick), which V8 optimizes as a function called often. A
 * function entered only once a slice cost an exit 20-45 µs more than a Worker's loop on a trivial
 * guest in the sandbox (2026-12-01), as did, on 2026-12-03, the generator's own loop once resumed
 * (see `runExits`).
 *
 * Where `needsTurn` is given (it says whether the event loop has work), it is asked at every tick's
 * EINTR and every `SLICE_CHECK_EXITS` exits, and the slice ends when it says yes, when the slice
 * is `busySliceMs` old, or at an idle tick once the slice is `idleSliceMs` old (which bounds how
 * long work that `needsTurn` cannot see waits while the guest idles): each turn of the event
 * loop costs the exits after it (on a Linux guest in the sandbox, 10-20 µs an exit with a turn
 * every 20 ms, none if the loop never leaves: README "Benchmarks"), and a turn with nothing to
 * do costs the same. The boot of a Linux guest has an idle tick (fewer than `BUSY_SLICE_EXITS`
 * exits in the slice) at nearly every tick, 150-250 of them, and next to none with work. Without
 * `needsTurn` a guest busy with exits keeps running through the tick until its slice is
 * `busySliceMs` old, and an idle one yields at every tick, whose turn serves what cannot be
 * asked about. The host's stop request is read at every KVM_RUN's return, slice or not. Each
 * slice's end is counted by why: the clock (`sliceClock`), an idle tick with work, or any idle
 * tick where the event loop cannot be asked (`sliceIdle`), work for the event loop at a busy
 * tick or the clock (`sliceWoken`).
 */
export function* slices(
  vcpu: VcpuFd,
  pio: Bus,
  mmio: Bus,
  stats: ExitStats,
  stop: StopRequest,
  opts: LoopOptions,
  busySliceMs: number,
  needsTurn?: () => boolean,
  idleSliceMs = busySliceMs,
): Generator<undefined, LoopOutcome, void> {
  // Without a way to ask, an idle tick always yields (the event loop's work is not seen), and
  // a busy guest's ticks and looks at the clock never end a slice early.
  const asks = needsTurn !== undefined;
  const hasWork = needsTurn ?? (() => false);
  const handler = new ExitHandler(vcpu, pio, mmio, stats, stop, opts);
  // The first exit takes the path of a look at the clock (see below).
  let untilClock = 1;
  while (stop.outcome === undefined) {
    // One slice. All that runs from here to the yield but the yield itself runs at the first
    // exit's look at the clock, so V8 has type feedback for all of it before it optimizes the
    // loop: a site without feedback (a STAT name not read yet, a comparison not made yet)
    // throws the optimized loop away when it is first reached, and under the sandbox's emulated
    // CPU compiling it again costs 0.3-0.9 s, while the exits run in slower code (2026-12-03:
    // three such deopts on a trivial guest whose first slice ended after the compile).
    const sliceStart = performance.now();
    let exits = 0;
    let reason = GO_ON;
    while (stop.outcome === undefined) {
      let idleTick = false;
      const ran = runExits(vcpu, handler, stop, untilClock);
      if (ran >= 0) {
        exits += ran;
        untilClock -= ran;
        // Fewer than asked: the VM is to end (the loop's condition).
        if (untilClock !== 0) continue;
        untilClock = SLICE_CHECK_EXITS;
        if (stop.outcome !== undefined) continue;
      } else {
        exits += -ran - 1;
        untilClock -= -ran - 1;
        stats.bump(INTERRUPTED);
        idleTick = exits < BUSY_SLICE_EXITS;
      }
      // One place decides and counts, for the tick and for the look at the clock alike.
      const age = performance.now() - sliceStart;
      const clockOver = age >= busySliceMs;
      const idleOver = age >= idleSliceMs;
      reason = clockOver
        ? SLICE_CLOCK
        : idleTick && !asks
        ? SLICE_IDLE
        : hasWork()
        ? (idleTick ? SLICE_IDLE : SLICE_WOKEN)
        : idleTick && idleOver
        ? SLICE_CLOCK
        : GO_ON;
      // Counted by one call whether the slice ends or not (adding 0), for the same reason.
      const ends = reason !== GO_ON;
      stats.add(ends ? reason : SLICE_CLOCK, ends ? 1 : 0);
      if (ends) break;
    }
    if (reason === GO_ON) continue; // the VM ended
    yield;
    untilClock = SLICE_CHECK_EXITS;
  }
  return stop.outcome;
}

/**
 * The exits of a slice between two looks (`slices`): up to `max` of them, fewer if the VM is to
 * end. Returns how many ran, or -(n + 1) when KVM_RUN was interrupted (EINTR) after n.
 *
 * A function of its own, entered at every look, so that V8 optimizes it as a function called
 * often and each entry runs the optimized code. A generator's own loop is optimized by on-stack
 * replacement only, and a generator resumed after a yield runs its function's code, not the
 * replaced one: in the sandbox (2026-12-03, a trivial guest with the boot vCPU's tick and turns)
 * the first slice ended before TurboFan's replacement was compiled (about 1 s of the emulated
 * CPU for the whole generator), and the loop ran in Maglev's code to the VM's end, since V8 does
 * not replace Maglev's frames with TurboFan's (`--osr-from-maglev` is off). This function's
 * TurboFan code took 0.15 s to compile and ran from then on: per exit, six interleaved rounds,
 * 1.33 of the Worker's loop against 1.50 (median ratios).
 */
function runExits(vcpu: VcpuFd, handler: ExitHandler, stop: StopRequest, max: number): number {
  let n = 0;
  while (n < max && stop.outcome === undefined) {
    if (!vcpu.runOnce()) return -(n + 1);
    handler.handle();
    n++;
  }
  return n;
}

/** `slices`: the slice goes on. */
const GO_ON = -1;
// Read once, here: each `STAT.x` in the loop would be a property read needing type feedback.
const INTERRUPTED = STAT.interrupted;
const SLICE_CLOCK = STAT.sliceClock;
const SLICE_IDLE = STAT.sliceIdle;
const SLICE_WOKEN = STAT.sliceWoken;

/** One exit's work: what KVM_RUN's exit asks of the buses, or the end of the VM. */
class ExitHandler {
  readonly #run: KvmRun;
  readonly #page: Uint8Array;
  // kvm_run.io.data_offset is fixed by KVM (one page in), but read it per exit and rebuild
  // the views only if it ever changes.
  #pioOffset = -1;
  #pioViews: Uint8Array[] = [];
  readonly #mmioViews: Uint8Array[];

  constructor(
    private readonly vcpu: VcpuFd,
    private readonly pio: Bus,
    private readonly mmio: Bus,
    private readonly stats: ExitStats,
    private readonly stop: StopRequest,
    private readonly opts: LoopOptions,
  ) {
    this.#run = vcpu.run;
    this.#page = vcpu.run.bytes;
    this.#mmioViews = sizeViews(this.#page, KvmRun.MMIO_DATA_OFFSET);
  }

  handle(): void {
    const run = this.#run;
    const stats = this.stats;
    stats.bump(STAT.exits);
    const reason = run.exit_reason;
    if (reason === KVM_EXIT.IO) {
      this.#portIo(run, stats);
    } else if (reason === KVM_EXIT.MMIO) {
      this.#mmio(run, stats);
    } else if (reason === KVM_EXIT.INTR || reason === KVM_EXIT.IRQ_WINDOW_OPEN) {
      // A signal or an interrupt window: nothing to emulate, go back in.
    } else {
      this.#other(reason);
    }
  }

  #portIo(run: KvmRun, stats: ExitStats): void {
    stats.bump(STAT.pio);
    const size = run.io_size;
    const port = run.io_port;
    const count = run.io_count;
    const off = run.io_data_offset;
    const page = this.#page;
    if (off !== this.#pioOffset) {
      this.#pioOffset = off;
      this.#pioViews = sizeViews(page, off);
    }
    const out = run.io_direction === KVM_EXIT_IO_OUT;
    const entry = this.pio.find(port, size);
    for (let i = 0; i < count; i++) {
      // String I/O (rep ins/outs) hands over `count` items back to back.
      const data = i === 0
        ? this.#pioViews[size]
        : page.subarray(off + i * size, off + (i + 1) * size);
      if (data === undefined || off + (i + 1) * size > page.length) break;
      if (entry === undefined) {
        unclaimed(stats, out, true, port, data, this.opts);
      } else if (out) {
        entry.device.write(port - entry.base, data);
      } else {
        entry.device.read(port - entry.base, data);
      }
    }
  }

  #mmio(run: KvmRun, stats: ExitStats): void {
    stats.bump(STAT.mmio);
    const addr = run.mmio_phys_addr;
    const len = run.mmio_len;
    const data = this.#mmioViews[len];
    const write = run.mmio_is_write !== 0;
    const entry = data === undefined ? undefined : this.mmio.find(addr, len);
    if (data === undefined) {
      this.opts.log(`mmio access of bad length ${len} at 0x${addr.toString(16)} ignored`);
    } else if (entry === undefined) {
      unclaimed(stats, write, false, addr, data, this.opts);
    } else if (write) {
      entry.device.write(addr - entry.base, data);
    } else {
      entry.device.read(addr - entry.base, data);
    }
  }

  /** The rare exits: the VM's end, or one it cannot go on from. */
  #other(reason: number): void {
    const { vcpu, stop, opts } = this;
    if (reason === KVM_EXIT.SYSTEM_EVENT) {
      const type = this.#run.system_event_type;
      if (type === KVM_SYSTEM_EVENT_SHUTDOWN || type === KVM_SYSTEM_EVENT_RESET) {
        if (opts.debug) opts.log(`KVM_EXIT_SYSTEM_EVENT type ${type}: the VM ends, status 0`);
        stop.stop(0);
      } else {
        stop.stop(1, fatal(vcpu, opts, `KVM_EXIT_SYSTEM_EVENT type ${type}`));
      }
    } else if (reason === KVM_EXIT.SHUTDOWN) {
      stop.stop(1, fatal(vcpu, opts, "guest triple fault (KVM_EXIT_SHUTDOWN)"));
    } else if (reason === KVM_EXIT.HLT) {
      // Only without an in-kernel LAPIC; ours has one, so a HLT exit means the vCPU is done.
      stop.stop(1, fatal(vcpu, opts, "guest halted with interrupts off (KVM_EXIT_HLT)"));
    } else {
      stop.stop(1, fatal(vcpu, opts, "unhandled exit"));
    }
  }
}

/** Views of 1, 2, 4 and 8 bytes at `offset`, indexed by size. */
function sizeViews(page: Uint8Array, offset: number): Uint8Array[] {
  const v: Uint8Array[] = [];
  for (const size of [1, 2, 4, 8]) {
    if (offset + size <= page.length) v[size] = page.subarray(offset, offset + size);
  }
  return v;
}

/** Unclaimed reads see all-ones (a floating bus); writes are dropped. Both are counted. */
function unclaimed(
  stats: ExitStats,
  write: boolean,
  isPio: boolean,
  addr: number,
  data: Uint8Array,
  opts: LoopOptions,
): void {
  if (write) {
    stats.bump(isPio ? STAT.pioWriteUnclaimed : STAT.mmioWriteUnclaimed);
  } else {
    data.fill(0xff);
    stats.bump(isPio ? STAT.pioReadUnclaimed : STAT.mmioReadUnclaimed);
  }
  if (opts.debug) {
    const what = isPio ? "port" : "mmio";
    const dir = write ? "write" : "read";
    opts.log(`unclaimed ${what} ${dir} at 0x${addr.toString(16)} size ${data.length}`);
  }
}

function fatal(vcpu: VcpuFd, opts: LoopOptions, why: string): string {
  return `${why}\n${registerDump(vcpu, opts.registers)}`;
}
