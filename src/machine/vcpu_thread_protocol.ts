/** Messages between the main thread and a vCPU Worker (plain data: fds, addresses, SABs). */
import type { PciMachinePlan } from "./pci_devices.ts";

export interface VcpuWorkerInit {
  vcpuId: number;
  vcpuFd: number;
  runSize: number;
  vmFd: number;
  serialState: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  debug: boolean;
  consoleFd: number;
  pci: PciMachinePlan;
  /** Int32[0] turns 1 when every vCPU thread is ready: none enters the guest before then. */
  startGate: SharedArrayBuffer;
  /**
   * Int32[0] turns 1 when the main thread stops the VM (a signal, or the VM ending on another
   * vCPU): the loop ends at its next exit. The main thread also sets kvm_run.immediate_exit
   * and kicks the thread out of KVM_RUN with a signal (src/machine/vcpu_stop.ts).
   */
  hostStop: SharedArrayBuffer;
  /**
   * Int32[0] turns 1 as the Worker posts its outcome ("done" or "error"). vCPU 0's slices on the
   * main thread look at it between exits (./boot_vcpu.ts): a Worker's message wakes the main
   * thread's event loop in memory only, where a busy thread's probe of the loop does not always
   * see it (../../ffi/event_loop_probe.ts).
   */
  mail: SharedArrayBuffer;
}

export type VcpuWorkerReport =
  /** `tid`: the thread's id, which the main thread signals to kick it out of KVM_RUN. */
  | { type: "ready"; vcpuId: number; tid: number }
  | { type: "done"; vcpuId: number; status: number; message?: string; stoppedByHost?: boolean }
  | { type: "error"; vcpuId: number; message: string };
