/**
 * Stops the vCPU threads of a running VM from the main thread, the way Firecracker does: a
 * flag each exit loop reads once per exit, `kvm_run.immediate_exit` (a KVM_RUN entered from
 * now on returns EINTR before running the guest), and a signal to each vCPU thread, which
 * makes a KVM_RUN in progress return EINTR. The signal is SIGURG, which nothing else here
 * uses and which is harmless when it comes from elsewhere; it needs a handler (a no-op, in C:
 * ../../ffi/signal_action.ts), since a signal whose action is to be ignored is discarded before
 * it could interrupt anything.
 *
 * Once every loop has ended, no guest instruction runs again: whatever the guest saw
 * completed (a disk write acknowledged, a line printed) happened before that point.
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import type { KvmRun } from "../../ffi/kvm_run.ts";
import { interruptOnly } from "../../ffi/signal_action.ts";

const SIGURG = 23;

export class VcpuStopper {
  /** The flag the vCPU Workers read (VcpuWorkerInit.hostStop). */
  readonly flag = new SharedArrayBuffer(4);
  readonly #flag = new Int32Array(this.flag);
  readonly #tids: number[] = [];

  /** `runs`: each vCPU's kvm_run page, mapped on this thread. */
  constructor(private readonly runs: KvmRun[]) {
    interruptOnly(SIGURG);
  }

  get requested(): boolean {
    return Atomics.load(this.#flag, 0) !== 0;
  }

  /** The vCPU's thread, once its Worker reports it. */
  setThread(vcpuId: number, tid: number): void {
    this.#tids[vcpuId] = tid;
    if (this.requested) this.#kick(tid);
  }

  /** Ask every vCPU loop to end, and kick those in KVM_RUN out of it. Repeating is harmless. */
  request(): void {
    Atomics.store(this.#flag, 0, 1);
    for (const run of this.runs) run.immediate_exit = 1;
    for (const tid of this.#tids) if (tid !== undefined) this.#kick(tid);
  }

  #kick(tid: number): void {
    // ESRCH (the thread has already ended) is fine.
    libc.tgkill(Deno.pid, tid, SIGURG);
  }
}
