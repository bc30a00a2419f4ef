/** Messages between the main thread and a vCPU Worker (plain data: fds, addresses, SABs). */
export interface VcpuWorkerInit {
  vcpuId: number;
  vcpuFd: number;
  runSize: number;
  vmFd: number;
  serialState: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  debug: boolean;
  consoleFd: number;
}

export type VcpuWorkerReport =
  | { type: "done"; vcpuId: number; status: number; message?: string }
  | { type: "error"; vcpuId: number; message: string };
