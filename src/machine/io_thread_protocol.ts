/** What the main thread hands the I/O Worker: plain data only (SABs, fd numbers, paths). */
import type { VirtioPciPlan } from "../virtio/pci_transport.ts";
import type { BackendPlan } from "../virtio/device.ts";
import type { VfioPlan } from "../vfio/vfio_function.ts";

export interface IoDevicePlan {
  plan: VirtioPciPlan;
  /** What the device's back-end opens from; its `type` picks the device (virtio/registry.ts). */
  backend: BackendPlan;
  /** One eventfd per queue, signalled by KVM (ioeventfd) or by a vCPU on a notify exit. */
  notifyFds: number[];
  /** One eventfd per MSI-X vector, bound to its GSI with KVM_IRQFD. */
  irqFds: number[];
}

export interface IoWorkerInit {
  ramHva: bigint;
  ramBytes: number;
  /** Wakes the worker to look at queue enables and resets. */
  controlFd: number;
  /** For INTx (KVM_IRQ_LINE) while a driver has MSI-X off. */
  vmFd: number;
  devices: IoDevicePlan[];
  /** Passed-through devices whose MSI-X signals the worker relays (masking, pending). */
  vfio: VfioPlan[];
  /** --debug: an error that ends the VM is reported with its stack. */
  debug?: boolean;
}

export type IoWorkerReport = { type: "ready" } | { type: "error"; message: string };
