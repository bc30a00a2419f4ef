/**
 * What a virtio device is to the machine, in one place per device (blk.ts, net.ts, console.ts,
 * rng.ts): how it describes itself to the guest, and how its back-end opens on the I/O thread.
 *
 * The two halves run on different threads, and only plain data crosses between them: the main
 * thread's {@link VirtioDevice.describe} opens and checks what the host must provide (a disk, a
 * tap) so a bad option fails before the guest starts, and hands on a {@link BackendPlan} of fd
 * numbers, paths and SharedArrayBuffers; the I/O thread finds the device again by the plan's
 * `type` (registry.ts) and {@link VirtioDevice.open}s the back-end from it. So the I/O thread
 * knows no device by name, and a new device is one file and one line in the registry.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { QueueHandler } from "./device_runner.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "./pci_state.ts";
import type { VirtioDeviceDescription } from "./pci_transport.ts";

/** The transport features every device offers: modern virtio, and event-index suppression. */
export const TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX;
/** Queue size every device offers: the driver may choose less. */
export const QUEUE_SIZE = 256;

/** Plain data (fd numbers, paths, SharedArrayBuffers) a back-end opens from; `type` names its
 * device in the registry. */
export interface BackendPlan {
  readonly type: string;
}

/** One device as the main thread plans it: what the guest sees, and what its back-end needs. */
export interface PlannedDevice<Plan extends BackendPlan = BackendPlan> {
  description: VirtioDeviceDescription;
  backend: Plan;
}

/** What the I/O thread lends a back-end as it opens. */
export interface BackendHost {
  mem: GuestMemory;
  /** The device's name, as its description gave it (for its log lines). */
  name: string;
  /** A writer to `fd` from this thread that waits while it is full and never throws (the
   * console's output). The thread provides it: how to write an fd is the machine's business. */
  output(fd: number): (bytes: Uint8Array) => void;
}

/**
 * A host-side source the I/O thread polls for a device besides its queue notifies: when `fd` is
 * readable it calls `drain` (if any), then serves fill queue `queue`.
 */
export interface DeviceInput {
  fd: number;
  queue: number;
  /** Consume the readiness itself (an eventfd's count); a tap is read by the fill. */
  drain?(): void;
  /**
   * Poll `fd` only while `queue` has buffers. A tap stays readable while frames wait: without
   * buffers to move them into, polling it would spin.
   */
  pausedWhileStarved?: boolean;
}

/** A back-end as opened on the I/O thread. */
export interface OpenedBackend {
  handler: QueueHandler;
  input?: DeviceInput;
}

/**
 * A kind of virtio device. `Options` are the command line's for one device; `index` counts the
 * devices of this kind (disk ids, default MACs).
 */
export interface VirtioDevice<Options = never, Plan extends BackendPlan = BackendPlan> {
  /** Its name in the registry; every plan it makes carries it as `type`. */
  readonly type: string;
  /** Main thread: the device's description and its back-end's plan; opens and checks the host
   * side it needs, and throws for what cannot be had. */
  describe(options: Options, index: number): PlannedDevice<Plan>;
  /** I/O thread: the back-end, from the plan `describe` made. */
  open(plan: Plan, host: BackendHost): OpenedBackend;
}
