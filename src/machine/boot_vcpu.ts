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
 * guest is. At each tick, and every 1024 exits, the slice asks the event loop's epoll instance
 * whether something woke it (a stop signal, console input, a Worker's message:
 * ../../ffi/event_loop_probe.ts) and does the console pump's timed work itself (StdinPump.tick);
 * the slice ends when there is work, or at the latest when it is ASKED_SLICE_MS old, since each
 * turn costs the exits after it and a turn with nothing to do is as dear as one with work. Between
 * two slices the event loop gets one turn (`EventLoopTurn`), and the console and the VM's ending
 * behave as with a Worker: console input and the stop signals are served within a tick. Other
 * timers wait up to the slice's length. Where the event loop cannot be asked (no /proc), an idle
 * guest's slice ends at every tick and a busy one's when it is SLICE_MS old.
 *
 * A turn is cheap natively (2-5 µs) but not under the sandbox's emulated CPU, where one that
 * follows a blocking call costs far more than back-to-back turns do (20-40 µs): a tick cost
 * 0.3-0.4 ms with no turn, 0.6-1.3 ms more with a MessageChannel's (an event dispatched through
 * EventTarget) and 0.3-0.4 ms more with node:timers' `setImmediate` (measured in the sandbox: a 2
 * ms tick interrupting `poll`, CPU time per tick). In the exit bench the ticks were the slow tail
 * of the exits. Since turns are taken only for work, the MessageChannel's price matters less than
 * what importing node:timers costs every start (`EventLoopTurn`).
 *
 * Not yet so in practice (measured 2026-12-03 in the sandbox, `DENOVMM_STATS=1`): a boot still
 * yields at 218-268 of its 250-280 ticks, with stdin at EOF or open. The loop's epoll instance
 * holds Deno's waker (an eventfd, edge-triggered) and its signal socket; a wake-up stays on the
 * ready list until the loop next waits on the instance, and a turn whose task is ready at once (a
 * MessageChannel's message) may never make it wait. Natively such a turn left the probe ready at
 * all 40 of 40 checks in about half of fresh processes (a race at start) and at none in the
 * others; `setTimeout(0)` turns left it clean natively, yet a boot with them still yielded at
 * 147-234 ticks. What else wakes the loop during a boot is not found yet.
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { interruptOnly } from "../../ffi/signal_action.ts";
import { ThreadTimer } from "../../ffi/thread_timer.ts";
import { type LoopOutcome, slices } from "../vcpu/exit_loop.ts";
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
 * The same where the event loop is asked between exits: only its timers wait, and while a VM
 * runs the main thread has none but the console pump's, which the slice serves itself.
 */
export const ASKED_SLICE_MS = 1000;
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
   * where given, says between a busy guest's exits whether the event loop has work.
   */
  async run(needsTurn?: () => boolean): Promise<LoopOutcome> {
    const c = this.#c;
    // A signal whose action is to be ignored never interrupts anything: it needs a handler,
    // and one that costs nothing per tick (../../ffi/signal_action.ts).
    interruptOnly(SIGURG);
    const timer = new ThreadTimer(this.tid, SIGURG, TICK_MS);
    const turn = new EventLoopTurn();
    try {
      // One generator for all the slices: the exit loop's frame outlives each slice, so V8
      // optimizes it once, as a Worker's (../vcpu/exit_loop.ts, `slices`).
      const busyMs = needsTurn ? ASKED_SLICE_MS : SLICE_MS;
      const run = slices(c.vcpu, c.pio, c.mmio, c.stats, c.stop, c.opts, busyMs, needsTurn);
      for (;;) {
        const slice = run.next();
        if (slice.done) return slice.value;
        await turn.take();
      }
    } finally {
      timer.delete();
      turn.close();
    }
  }
}

/**
 * One turn of the event loop when asked for: a message through a MessageChannel to itself, a task
 * of its own, which the loop runs after what is ready before it. A `setTimeout(0)` would take
 * milliseconds (timers are clamped), and node:timers' `setImmediate`, cheaper a turn, costs
 * Deno's Node layer at every start (0.14-0.28 s of CPU in the sandbox, against none for a
 * MessageChannel: web APIs come ready in Deno's snapshot), while turns have become rare (a slice
 * yields when the event loop has work, or once a second).
 */
class EventLoopTurn {
  readonly #channel = new MessageChannel();
  #taken = () => {};

  constructor() {
    this.#channel.port1.onmessage = () => this.#taken();
  }

  take(): Promise<void> {
    return new Promise((resolve) => {
      this.#taken = resolve;
      this.#channel.port2.postMessage(null);
    });
  }

  /** An open port with a listener keeps the process alive. */
  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}
