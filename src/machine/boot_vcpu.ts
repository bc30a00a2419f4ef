/**
 * The boot vCPU, on the main thread. A vCPU's own Worker costs the main thread 10-13 ms natively
 * while its isolate is built (seconds under an emulated CPU) and the memory of a second isolate;
 * the boot vCPU runs first, so it runs here instead, and only application processors get
 * Workers (./vcpu_thread.ts).
 *
 * A synchronous KVM_RUN blocks this thread, whose event loop also serves stdin, the stop
 * signals, the console's timers and the Workers' messages. So the loop runs in slices
 * (`slices`, a generator whose frame lives on from one slice to the next): a POSIX timer sends
 * this thread a signal every TICK_MS, which ends a KVM_RUN in progress (EINTR) however idle the
 * guest is. At each tick, and every 1024 exits, the slice asks whether there is work for this
 * thread: the console pump's timed work and stdin, looked at and done without a turn
 * (StdinPump.tick, StdinPump.readBetweenTicks), an AP's report (VcpuWorkerInit.mail), and what
 * woke the event loop's epoll instance (../../ffi/event_loop_probe.ts: a stop signal or a
 * Worker's message, often, not always). The slice ends when there is work, or at the latest
 * when it is ASKED_SLICE_MS old (IDLE_ASKED_SLICE_MS at an idle tick), which bounds what the
 * probe cannot see (a stop signal, other timers). Between two slices the event loop gets one turn (./event_loop_turn.ts). Where the
 * event loop cannot be asked (no /proc), an idle guest's slice ends at every tick and a busy
 * one's when it is SLICE_MS old.
 *
 * Turns cost: each makes the loop wait for a timer (2-3 ms natively), and under the sandbox's
 * emulated CPU a turn that follows a blocking call costs far more than back-to-back ones. Until
 * 2026-12-03 a boot took a turn at nearly every tick (187-268 of 190-280), because the probe
 * saw a waker that nothing ever read; it now reads it, and a sandbox boot takes 11-15 turns,
 * nearly all of them the idle clock's.
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { interruptOnly } from "../../ffi/signal_action.ts";
import { ThreadTimer } from "../../ffi/thread_timer.ts";
import { type LoopOutcome, slices } from "../vcpu/exit_loop.ts";
import { STAT } from "../vcpu/exit_stats.ts";
import { eventLoopTurn } from "./event_loop_turn.ts";
import { type VcpuContext, vcpuContext } from "./vcpu_context.ts";
import type { VcpuWorkerInit } from "./vcpu_thread_protocol.ts";

/** How often an idle guest's KVM_RUN is interrupted to serve the event loop. */
export const TICK_MS = 20;
/**
 * How long a guest busy with exits may keep the event loop waiting: in the sandbox, a Linux
 * guest's port write cost 86 µs with a turn every 200 ms, 94 with one every 20 ms, 77 with none
 * (medians of 6-10 runs, 2026-12-02; README "Benchmarks").
 */
export const SLICE_MS = 200;
/**
 * The same where the event loop is asked between exits: what the asking does not see waits up
 * to this long while the guest is busy with exits, and up to IDLE_ASKED_SLICE_MS while it idles.
 * That is a stop signal the probe missed, a Worker's failure, and timers; while a VM runs the
 * main thread has none but the console pump's, which the slice serves itself.
 */
export const ASKED_SLICE_MS = 1000;
/**
 * An idle guest's turn costs no exits; this bounds a missed stop signal's wait (SIGTERM to the
 * end of a sandbox VM: 0.4-1.7 s with only ASKED_SLICE_MS, 2026-12-03).
 */
export const IDLE_ASKED_SLICE_MS = 200;
/** The signal that interrupts KVM_RUN; the same as the stop kick's (./vcpu_stop.ts). */
const SIGURG = 23;

export class BootVcpu {
  /** This (the main) thread's id, which the timer and the stop kick signal. */
  readonly tid = libc.gettid();
  readonly #c: VcpuContext;

  /** Builds the vCPU's buses and devices: throws as a vCPU Worker's start would. */
  constructor(init: VcpuWorkerInit) {
    this.#c = vcpuContext(init);
  }

  /**
   * Runs the vCPU until the VM ends; the event loop keeps running between slices. `needsTurn`,
   * where given, says between a busy guest's exits whether the event loop has work;
   * `turnEnded` is called as each turn ends (the probe forgets the turn's own wake-ups).
   */
  async run(needsTurn?: () => boolean, turnEnded?: () => void): Promise<LoopOutcome> {
    const c = this.#c;
    // A signal whose action is to be ignored never interrupts anything: it needs a handler,
    // and one that costs nothing per tick (../../ffi/signal_action.ts).
    interruptOnly(SIGURG);
    const timer = new ThreadTimer(this.tid, SIGURG, TICK_MS);
    try {
      // One generator for all the slices: the exit loop's frame outlives each slice, so V8
      // optimizes it once, as a Worker's (../vcpu/exit_loop.ts, `slices`).
      const busyMs = needsTurn ? ASKED_SLICE_MS : SLICE_MS;
      const idleMs = needsTurn ? IDLE_ASKED_SLICE_MS : SLICE_MS;
      const run = slices(c.vcpu, c.pio, c.mmio, c.stats, c.stop, c.opts, busyMs, needsTurn, idleMs);
      for (;;) {
        const slice = run.next();
        if (slice.done) return slice.value;
        const start = performance.now();
        await eventLoopTurn();
        turnEnded?.();
        const us = Math.round((performance.now() - start) * 1000);
        c.stats.add(STAT.turnUs, us);
        c.stats.max(STAT.turnMaxUs, us);
      }
    } finally {
      timer.delete();
    }
  }
}
