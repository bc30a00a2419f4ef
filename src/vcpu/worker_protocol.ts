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
}

export type VcpuWorkerReport =
  | { type: "done"; vcpuId: number; status: number; message?: string }
  | { type: "error"; vcpuId: number; message: string };
