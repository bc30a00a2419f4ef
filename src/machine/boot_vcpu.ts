/**
 * The boot vCPU, on the main thread. A vCPU's own Worker costs the main thread 10-13 ms natively
 * while its isolate is built (seconds under an emulated CPU) and the memory of a second isolate;
 * the boot vCPU runs first, so it runs here instead, and only application processors get
 * Workers (./vcpu_thread.ts).
 *
 * A synchronous KVM_RUN blocks this thread, whose event loop also serves stdin, the stop
 * signals, the console's timers and the Workers' messages. So the loop runs in slices
 * (runSlice): a POSIX timer sends this thread a signal every TICK_MS, which ends a KVM_RUN in
 * progress (EINTR) however idle the guest is; a guest busy with exits is let go after SLICE_MS
 * of them. Between two slices the event loop gets one turn, through a MessageChannel (a
 * setTimeout(0) would take milliseconds: timers are clamped), and the console and the VM's
 * ending behave as with a Worker: input within a tick, a stop request at the next slice.
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { ThreadTimer } from "../../ffi/thread_timer.ts";
import { type LoopOutcome, runSlice } from "../vcpu/exit_loop.ts";
import { type VcpuContext, vcpuContext } from "./vcpu_context.ts";
import type { VcpuWorkerInit } from "./vcpu_thread_protocol.ts";

/** How often an idle guest's KVM_RUN is interrupted to serve the event loop. */
export const TICK_MS = 20;
/** How long back-to-back exits may keep the event loop waiting. */
const SLICE_MS = 20;
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

  /** Runs the vCPU until the VM ends; the event loop keeps running between slices. */
  async run(): Promise<LoopOutcome> {
    const c = this.#c;
    // A signal whose action is to be ignored never interrupts anything: it needs a handler.
    const onTick = () => {};
    Deno.addSignalListener("SIGURG", onTick);
    const turn = new MessageChannel();
    let next: () => void = () => {};
    turn.port1.onmessage = () => next();
    const timer = new ThreadTimer(this.tid, SIGURG, TICK_MS);
    try {
      for (;;) {
        const outcome = runSlice(c.vcpu, c.pio, c.mmio, c.stats, c.stop, c.opts, SLICE_MS);
        if (outcome !== undefined) return outcome;
        await new Promise<void>((resolve) => {
          next = resolve;
          turn.port2.postMessage(0);
        });
      }
    } finally {
      timer.delete();
      turn.port1.close();
      Deno.removeSignalListener("SIGURG", onTick);
    }
  }
}
