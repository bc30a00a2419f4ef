/** What the main thread hands the I/O Worker: plain data only (SABs, fd numbers, paths). */
import type { VirtioPciPlan } from "../virtio/pci_transport.ts";
import type { BackendPlan } from "../virtio/device.ts";
import type { VfioPlan } from "../vfio/vfio_function.ts";
import type { MsiVectorsPlan } from "../bus/interrupt.ts";

export interface IoDevicePlan {
  plan: VirtioPciPlan;
  /** What the device's back-end opens from; its `type` picks the device (virtio/registry.ts). */
  backend: BackendPlan;
  /** One eventfd per queue, signalled by KVM (ioeventfd) or by a vCPU on a notify exit. */
  notifyFds: number[];
  /** Its MSI-X vectors: an irqfd each, routed while the guest has the vector deliverable. */
  vectors: MsiVectorsPlan;
}

export interface IoWorkerInit {
  ramHva: bigint;
  ramBytes: number;
  /** Wakes the worker to look at queue enables and resets. */
  controlFd: number;
  /** For INTx (KVM_IRQ_LINE) while a driver has MSI-X off. */
  vmFd: number;
  /** The VM's GSI routing state (src/machine/gsi_router.ts), which vector groups share. */
  routerState: SharedArrayBuffer;
  devices: IoDevicePlan[];
  /** Passed-through devices whose MSI-X signals the worker relays (masking, pending). */
  vfio: VfioPlan[];
  /** --debug: an error that ends the VM is reported with its stack. */
  debug?: boolean;
}

export type IoWorkerReport = { type: "ready" } | { type: "error"; message: string };
