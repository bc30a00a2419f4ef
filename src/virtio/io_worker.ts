/**
 * The I/O Worker: virtqueue processing off the vCPU threads. It sleeps in poll() on the
 * queues' notify eventfds (signalled by KVM through ioeventfd, so a notify never stops a vCPU
 * in user space) and on a control eventfd; it runs the device back-ends and raises MSI-X
 * vectors by writing their irqfds.
 */
import { viewOfAddress } from "../../ffi/libc.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { memoryLayout } from "../memory/layout.ts";
import { PCI_COMMAND_INTX_DISABLE, PciConfigSpace } from "../pci/config_space.ts";
import { VmFd } from "../../ffi/kvm_fds.ts";
import { Msix } from "../pci/msix.ts";
import { FdPoller } from "./fd_poller.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_NO_VECTOR, VirtioPciState } from "./pci_state.ts";
import { SplitQueue, VirtqueueError } from "./queue.ts";
import { BlkRequestError, type BlockBackend, FileBackend, handleBlkRequest } from "./blk.ts";
import { handleRngRequest } from "./rng.ts";
import { RX_QUEUE, TapNet } from "./net.ts";
import { CONSOLE_RX_QUEUE, VirtioConsole } from "./console.ts";
import { InputRing } from "../console/input_ring.ts";
import { FdWriter } from "../machine/fd_writer.ts";
import type { DescriptorChain } from "./queue.ts";
import type { IoDevicePlan, IoWorkerInit, IoWorkerReport } from "./io_worker_protocol.ts";

/** ISR bits (§4.1.4.5). */
const ISR_QUEUE = 1;
const ISR_CONFIG = 2;

type Handler = (chain: DescriptorChain) => number;

/** What a device does with its queues: a handler per request queue, and for virtio-net a
 * receive side that the tap drives. */
interface DeviceModel {
  handle: Handler;
  net?: TapNet;
  console?: VirtioConsole;
}

/** One device as the I/O Worker runs it. */
class DeviceRunner {
  readonly state: VirtioPciState;
  readonly msix: Msix;
  readonly #notify: EventFd[];
  readonly #irq: EventFd[];
  #queues: Array<SplitQueue | undefined> = [];
  #generation = -1;

  /** Called with whether the tap should be polled (virtio-net: only while RX has buffers). */
  onRxStarved: (starved: boolean) => void = () => {};

  readonly config: PciConfigSpace;

  constructor(
    readonly plan: IoDevicePlan,
    private readonly mem: GuestMemory,
    private readonly model: DeviceModel,
    private readonly vm: VmFd,
  ) {
    const p = plan.plan;
    this.config = new PciConfigSpace(p.pciState);
    this.state = new VirtioPciState(p.virtioState);
    this.#notify = plan.notifyFds.map((fd) => new EventFd(fd));
    this.#irq = plan.irqFds.map((fd) => new EventFd(fd));
    this.msix = new Msix(p.msixState, p.vectors, this.config, p.msixCapOffset, {
      signal: (vector) => this.#irq[vector]?.signal(),
    });
  }

  get notifyFds(): number[] {
    return this.plan.notifyFds;
  }

  /** Catch up with resets and newly enabled queues. */
  sync(): void {
    const gen = this.state.resetGeneration;
    if (gen !== this.#generation) {
      this.#generation = gen;
      this.#queues = [];
    }
    for (let q = 0; q < this.state.numQueues; q++) {
      if (this.#queues[q] === undefined && this.state.queueEnabled(q)) {
        const a = this.state.queueAddresses(q);
        try {
          this.#queues[q] = new SplitQueue(this.mem, {
            ...a,
            eventIdx: (this.state.driverFeatures & VIRTIO_F_RING_EVENT_IDX) !== 0n,
          });
        } catch (e) {
          if (!(e instanceof VirtqueueError)) throw e;
          this.#broken(e);
          return;
        }
        this.process(q);
      }
    }
  }

  /** The driver notified queue `q` (or may have): run what it made available. */
  process(q: number): void {
    this.#notify[q]?.drain();
    const queue = this.#queues[q];
    if (queue === undefined) return;
    if (this.model.net && q === RX_QUEUE) return this.receive();
    if (this.model.console && q === CONSOLE_RX_QUEUE) return this.consoleInput();
    try {
      do {
        for (let chain = queue.pop(); chain; chain = queue.pop()) {
          queue.pushUsed(chain.head, this.model.handle(chain));
        }
      } while (queue.armAvailEvent());
    } catch (e) {
      if (!(e instanceof VirtqueueError || e instanceof BlkRequestError)) throw e;
      this.#broken(e);
      return;
    }
    if (queue.needsNotification()) this.#interrupt(this.state.queueVector(q), ISR_QUEUE);
  }

  /** virtio-net: frames from the tap into receive buffers, while both last. */
  receive(): void {
    const queue = this.#queues[RX_QUEUE];
    const net = this.model.net;
    if (queue === undefined || net === undefined) return this.onRxStarved(true);
    let starved;
    try {
      starved = net.receive(queue);
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      return this.#broken(e);
    }
    if (queue.needsNotification()) this.#interrupt(this.state.queueVector(RX_QUEUE), ISR_QUEUE);
    this.onRxStarved(starved);
  }

  /** virtio-console: typed bytes into the receive queue. */
  consoleInput(): void {
    const queue = this.#queues[CONSOLE_RX_QUEUE];
    const console = this.model.console;
    if (queue === undefined || console === undefined) return;
    try {
      do {
        console.receive(queue);
      } while (queue.armAvailEvent() && console.pending());
      if (queue.needsNotification()) {
        this.#interrupt(this.state.queueVector(CONSOLE_RX_QUEUE), ISR_QUEUE);
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.#broken(e);
    }
  }

  /** §2.1.2: a device that meets a malformed queue sets DEVICE_NEEDS_RESET and says so. */
  #broken(e: Error): void {
    console.error(`denovmm: ${this.plan.plan.name}: ${e.message}; device needs reset`);
    this.#queues = [];
    this.state.markNeedsReset();
    this.#interrupt(this.state.configVector, ISR_CONFIG);
  }

  /** MSI-X when the driver enabled it (§4.1.5.1.2), else ISR plus INTx (§4.1.4.5). */
  #interrupt(vector: number, isr: number): void {
    if (this.msix.enabled()) {
      this.state.raiseIsr(isr);
      if (vector !== VIRTIO_NO_VECTOR) this.msix.trigger(vector);
      return;
    }
    const intxOff = (this.config.command() & PCI_COMMAND_INTX_DISABLE) !== 0;
    this.state.raiseIsr(
      isr,
      intxOff ? undefined : () => this.vm.irqLine(this.plan.plan.intxGsi, true),
    );
  }
}

function deviceModel(d: IoDevicePlan, mem: GuestMemory): DeviceModel {
  const b = d.backend;
  if (b.kind === "blk") {
    const disk: BlockBackend = new FileBackend(b.path, { readOnly: b.readOnly });
    return { handle: (chain) => handleBlkRequest(mem, chain, disk, b.id) };
  }
  if (b.kind === "console") {
    const out = new FdWriter(b.outFd);
    const c = new VirtioConsole(mem, new InputRing(b.ring), (bytes) => out.write(bytes));
    return { handle: (chain) => c.transmit(chain), console: c };
  }
  if (b.kind === "net") {
    const net = new TapNet(b.tapFd, mem);
    return { handle: (chain) => net.transmit(chain), net };
  }
  return { handle: (chain) => handleRngRequest(mem, chain) };
}

declare const self: {
  onmessage: ((e: MessageEvent<IoWorkerInit>) => void) | null;
  postMessage(m: IoWorkerReport): void;
};

self.onmessage = (e: MessageEvent<IoWorkerInit>) => {
  self.onmessage = null;
  try {
    run(e.data);
  } catch (err) {
    self.postMessage({ type: "error", message: (err as Error).message });
  }
};

function run(init: IoWorkerInit): void {
  const mem = new GuestMemory(
    viewOfAddress(init.ramHva, init.ramBytes),
    memoryLayout(init.ramBytes),
  );
  const vm = new VmFd(init.vmFd);
  const devices = init.devices.map((d) => new DeviceRunner(d, mem, deviceModel(d, mem), vm));
  const control = new EventFd(init.controlFd);
  // Device-side inputs: a tap's frames, the console's typed bytes.
  const inputFds = init.devices.flatMap((d) =>
    d.backend.kind === "net"
      ? [d.backend.tapFd]
      : d.backend.kind === "console"
      ? [d.backend.inputFd]
      : []
  );
  // MSI-X of passed-through devices: the device's eventfd per vector, relayed to the irqfd
  // unless the guest masked the vector (then it stays pending in the PBA).
  const relays = init.vfio.flatMap((v) => {
    if (!v.msix) return [];
    const irq = v.irqFds.map((fd) => new EventFd(fd));
    const msix = new Msix(
      v.msix.state,
      v.msix.vectors,
      new PciConfigSpace(v.shadow),
      v.msix.shadowCapOffset,
      {
        signal: (vector) => irq[vector]?.signal(),
      },
    );
    return v.deviceFds.map((fd, vector) => ({ fd, ev: new EventFd(fd), msix, vector }));
  });
  const poller = new FdPoller([
    init.controlFd,
    ...devices.flatMap((d) => d.notifyFds),
    ...inputFds,
    ...relays.map((r) => r.fd),
  ]);
  // fd → what to do when it is readable.
  const actions = new Map<number, () => void>();
  actions.set(init.controlFd, () => {
    control.drain();
    for (const d of devices) d.sync();
  });
  for (const d of devices) {
    d.notifyFds.forEach((fd, q) => actions.set(fd, () => d.process(q)));
    const b = d.plan.backend;
    if (b.kind === "net") {
      actions.set(b.tapFd, () => d.receive());
      d.onRxStarved = (starved) => poller.setEnabled(b.tapFd, !starved);
      poller.setEnabled(b.tapFd, false); // until the driver posts receive buffers
    } else if (b.kind === "console") {
      const wake = new EventFd(b.inputFd);
      actions.set(b.inputFd, () => {
        wake.drain();
        d.consoleInput();
      });
    }
  }
  for (const r of relays) {
    actions.set(r.fd, () => {
      if (r.ev.drain() > 0) r.msix.trigger(r.vector);
    });
  }
  self.postMessage({ type: "ready" });
  for (const d of devices) d.sync();
  for (;;) {
    for (const fd of poller.wait()) actions.get(fd)!();
  }
}
