/**
 * A virtio-pci device as the guest and the I/O Worker see it, without KVM or threads: the
 * driver's register accesses go through the real VirtioPciFunction (BAR 0 common config, ISR,
 * notify), the device side is the real DeviceRunner, and guest RAM is a plain ArrayBuffer.
 * Kicks and notifies are recorded; the test decides when the "Worker" runs.
 */
import { RecordingVectors } from "../bus/recording_vectors.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import {
  COMMON_OFFSET,
  ISR_OFFSET,
  NOTIFY_OFFSET,
  planVirtioPci,
  type VirtioDeviceDescription,
  VirtioPciFunction,
  type VirtioPciPlan,
} from "../../src/virtio/pci_transport.ts";
import { DeviceRunner, type QueueHandler } from "../../src/virtio/device_runner.ts";
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_VERSION_1,
} from "../../src/virtio/pci_state.ts";
import { AVAIL_GPA, DESC_GPA, FakeDriver, ram, USED_GPA } from "./fake_driver.ts";

export { FakeDriver };

export const BAR0_GPA = 0xe000_0000;
export const BAR1_GPA = 0xe000_4000;

export function description(
  numQueues: number,
  features = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX,
): VirtioDeviceDescription {
  return {
    name: "test-device",
    deviceType: 4,
    classCode: 0xff00,
    numQueues,
    queueMaxSize: 256,
    features,
    config: new Uint8Array(8),
  };
}

/** Each queue's table, rings and buffers sit 16 MiB above the previous queue's. */
const QUEUE_STRIDE = 0x100_0000;

export class VirtioHarness {
  readonly mem: GuestMemory;
  readonly plan: VirtioPciPlan;
  readonly fn: VirtioPciFunction;
  readonly runner: DeviceRunner;
  kicks = 0;
  notifies: number[] = [];
  signals: number[] = [];
  intx: boolean[] = [];
  /** The machine's routes, as the vCPU side's MSI-X makes them. */
  readonly vectors = new RecordingVectors();

  constructor(
    device: QueueHandler,
    numQueues = 1,
    mem: GuestMemory = ram(),
    features?: bigint,
  ) {
    this.mem = mem;
    this.plan = planVirtioPci(description(numQueues, features), 1, BAR0_GPA, BAR1_GPA, 10);
    const line = { setLevel: (high: boolean) => void this.intx.push(high) };
    this.fn = new VirtioPciFunction(
      this.plan,
      {
        notify: (q) => this.notifies.push(q),
        kick: () => this.kicks++,
        notifyMoved: () => {},
      },
      this.vectors,
      line,
    );
    this.runner = new DeviceRunner(this.plan, mem, device, {
      trigger: (v) => this.signals.push(v),
      route: (first, end, message) => this.vectors.route(first, end, message),
      release: () => this.vectors.release(),
    }, line);
  }

  write(offset: number, size: number, value: number): void {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (value / 256 ** i) & 0xff;
    this.fn.barWrite(0, COMMON_OFFSET + offset, data);
  }

  read(offset: number, size: number): number {
    const data = new Uint8Array(size);
    this.fn.barRead(0, COMMON_OFFSET + offset, data);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + data[i];
    return v;
  }

  status(): number {
    return this.read(0x14, 1);
  }

  readIsr(): number {
    const data = new Uint8Array(1);
    this.fn.barRead(0, ISR_OFFSET, data);
    return data[0];
  }

  notify(q: number): void {
    this.fn.barWrite(0, NOTIFY_OFFSET + 4 * q, new Uint8Array(2));
  }

  /** Negotiate `features` (all offered ones by default); returns the status read back. */
  negotiate(features = this.runner.state.deviceFeatures): number {
    this.write(0x14, 1, 0);
    this.write(0x14, 1, STATUS_ACKNOWLEDGE);
    this.write(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.write(0x08, 4, 0);
    this.write(0x0c, 4, Number(features & 0xffff_ffffn));
    this.write(0x08, 4, 1);
    this.write(0x0c, 4, Number(features >> 32n));
    this.write(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return this.status();
  }

  /** Place queue `q` where a FakeDriver of `size` lays it out, vector `q`, and enable it;
   * returns that driver. */
  setupQueue(q: number, size = 256, eventIdx = true): FakeDriver {
    const shift = q * QUEUE_STRIDE;
    this.write(0x16, 2, q);
    this.write(0x18, 2, size);
    this.write(0x1a, 2, q);
    this.write(0x20, 4, DESC_GPA + shift);
    this.write(0x28, 4, AVAIL_GPA + shift);
    this.write(0x30, 4, USED_GPA + shift);
    this.write(0x1c, 2, 1);
    return new FakeDriver(this.mem, size, eventIdx, shift);
  }

  driverOk(): void {
    this.write(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** Bring-up as Linux does it, with one driver per queue. */
  bringUp(queues = 1, size = 256): FakeDriver[] {
    this.negotiate();
    const drivers = [];
    for (let q = 0; q < queues; q++) drivers.push(this.setupQueue(q, size));
    this.driverOk();
    return drivers;
  }
}

/** Records the chains a device was handed; answers with `written` bytes. */
export class RecordingDevice implements QueueHandler {
  handled: Array<{ queue: number; head: number }> = [];
  onHandle: (queue: number) => void = () => {};
  constructor(readonly written = 0) {}
  handle(queue: number, chain: { head: number }): number {
    this.handled.push({ queue, head: chain.head });
    this.onHandle(queue);
    return this.written;
  }
}

/** Run `fn` with console.error silenced (the rate-limited lines a hostile test provokes). */
export function quietly<T>(fn: () => T): T {
  const original = console.error;
  console.error = () => {};
  try {
    return fn();
  } finally {
    console.error = original;
  }
}
