/**
 * A vCPU thread (a Worker): one per application processor, because a synchronous KVM_RUN
 * blocks its JavaScript thread (the boot vCPU runs on the main thread: ./boot_vcpu.ts). It
 * builds its vCPU's side of the machine (./vcpu_context.ts), waits at the start gate, runs the
 * exit loop until the VM ends, and reports the outcome to the main thread.
 */
import { libc } from "../../ffi/libc.ts";
import { runLoop } from "../vcpu/exit_loop.ts";
import { describeError } from "../log.ts";
import { vcpuContext } from "./vcpu_context.ts";
import type { VcpuWorkerInit, VcpuWorkerReport } from "./vcpu_thread_protocol.ts";

declare const self: {
  onmessage: ((e: MessageEvent<VcpuWorkerInit>) => void) | null;
  postMessage(m: VcpuWorkerReport): void;
};

self.onmessage = (e: MessageEvent<VcpuWorkerInit>) => {
  const init = e.data;
  self.onmessage = null;
  // The outcome, with the mark vCPU 0's slices look for (VcpuWorkerInit.mail).
  const report = (r: VcpuWorkerReport) => {
    self.postMessage(r);
    Atomics.store(new Int32Array(init.mail), 0, 1);
  };
  try {
    const outcome = runVcpu(init);
    report({ type: "done", vcpuId: init.vcpuId, ...outcome });
  } catch (err) {
    // A device or the loop threw: a bug in denovmm, not the guest's doing. One line, and with
    // --debug the stack that says where.
    report({ type: "error", vcpuId: init.vcpuId, message: describeError(err, init.debug) });
  }
};

function runVcpu(init: VcpuWorkerInit) {
  const c = vcpuContext(init);
  // No vCPU enters the guest before every AP's thread is ready to enter KVM_RUN: an AP whose
  // Worker is still loading when Linux sends INIT/SIPI misses the kernel's bring-up timeout and
  // later runs a trampoline that has moved on, which ends the VM in a triple fault.
  self.postMessage({ type: "ready", vcpuId: init.vcpuId, tid: libc.gettid() });
  const gate = new Int32Array(init.startGate);
  while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0);
  return runLoop(c.vcpu, c.pio, c.mmio, c.stats, c.stop, c.opts);
}
