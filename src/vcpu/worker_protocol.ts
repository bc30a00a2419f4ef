/** Messages between the main thread and a vCPU Worker (plain data: fds, addresses, SABs). */
import type { PciMachinePlan } from "../machine/pci_devices.ts";

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
}

export type VcpuWorkerReport =
  | { type: "ready"; vcpuId: number }
  | { type: "done"; vcpuId: number; status: number; message?: string }
  | { type: "error"; vcpuId: number; message: string };
