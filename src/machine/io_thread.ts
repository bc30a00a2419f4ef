/**
 * The I/O thread: virtqueue processing off the vCPU threads, on a Worker of its own. It sleeps
 * in poll() on the queues' notify eventfds (signalled by KVM through ioeventfd, so a notify
 * never stops a vCPU in user space), on the devices' host-side inputs (a tap, the console's
 * eventfd), on a control eventfd and on passed-through devices' MSI-X eventfds; it runs the
 * device back-ends and raises MSI-X vectors by writing their irqfds.
 *
 * Each device is a DeviceRunner (device_runner.ts), which carries out the device error policy
 * (device_fault.ts), over the back-end its plan names (virtio/registry.ts): this module knows
 * no device by name, only what every device may ask of it. It is the thread's wiring.
 */
import { viewOfAddress } from "../../ffi/libc.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { VmFd } from "../../ffi/kvm_fds.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { wiring } from "./arch.ts";
import { describeError } from "../log.ts";
import { FdPoller } from "../virtio/fd_poller.ts";
import { Backlog, type Serve } from "../virtio/backlog.ts";
import { DeviceRunner } from "../virtio/device_runner.ts";
import type { BackendHost } from "../virtio/device.ts";
import { openBackend } from "../virtio/registry.ts";
import { msixRelays } from "../vfio/msix_relay.ts";
import { FdWriter } from "../../ffi/fd_writer.ts";
import type { IoWorkerInit, IoWorkerReport } from "./io_thread_protocol.ts";
import { GsiRouter } from "./gsi_router.ts";
import { kvmInterrupts, type ThreadInterrupts } from "./interrupts.ts";

/**
 * The thread's devices over one poll set: built from the plan, then {@link IoThread.turn}
 * again and again.
 */
export class IoThread {
  readonly runners: DeviceRunner[];
  readonly poller: FdPoller;
  /** fd → what to do when it is readable. */
  readonly #actions = new Map<number, () => void>();
  /** Work left over when a device hit its budget: served again after the fds had their turn. */
  readonly #backlog = new Backlog();
  readonly #syncAll: Array<() => void>;

  constructor(
    init: Omit<IoWorkerInit, "ramHva" | "ramBytes" | "vmFd" | "routerState">,
    mem: GuestMemory,
    irq: ThreadInterrupts,
  ) {
    const opened = init.devices.map((d) => {
      const host: BackendHost = {
        mem,
        name: d.plan.name,
        output: (fd) => {
          const out = new FdWriter(fd);
          return (bytes) => out.write(bytes);
        },
      };
      return openBackend(d.backend, host);
    });
    this.runners = init.devices.map((d, i) =>
      new DeviceRunner(
        d.plan,
        mem,
        opened[i].handler,
        irq.vectors(d.vectors),
        irq.line(d.plan.intxGsi),
      )
    );
    const control = new EventFd(init.controlFd);
    const relays = msixRelays(init.vfio, (plan) => irq.vectors(plan));
    this.poller = new FdPoller([
      init.controlFd,
      ...init.devices.flatMap((d) => d.notifyFds),
      ...opened.flatMap((o) => o.input ? [o.input.fd] : []),
      ...relays.map((r) => r.fd),
    ]);
    const task = (serve: Serve) => () => this.#backlog.run(serve);
    const actions = this.#actions;
    this.#syncAll = this.runners.map((d) => task(() => d.sync()));
    actions.set(init.controlFd, () => {
      control.drain();
      this.sync();
    });
    init.devices.forEach((plan, i) => {
      const d = this.runners[i];
      plan.notifyFds.forEach((fd, q) => {
        const notify = new EventFd(fd);
        const serve = task(() => d.process(q));
        actions.set(fd, () => {
          notify.drain();
          serve();
        });
      });
      const input = opened[i].input;
      if (input === undefined) return;
      const serve = task(() => d.process(input.queue));
      actions.set(input.fd, () => {
        input.drain?.();
        serve();
      });
      if (input.pausedWhileStarved) {
        d.onFillStarved = (q, starved) => {
          if (q === input.queue) this.poller.setEnabled(input.fd, !starved);
        };
        this.poller.setEnabled(input.fd, false); // until the driver posts buffers
      }
    });
    for (const r of relays) actions.set(r.fd, () => r.onReadable());
  }

  /** Every device catches up with resets, DRIVER_OK and enabled queues. */
  sync(): void {
    for (const s of this.#syncAll) s();
  }

  /** Wait for readable fds (not at all while work is left over; at most `timeoutMs`), act on
   * each, then give the left-over work its round. */
  turn(timeoutMs = -1): void {
    for (const fd of this.poller.wait(this.#backlog.busy ? 0 : timeoutMs)) {
      this.#actions.get(fd)!();
    }
    this.#backlog.round();
  }
}

declare const self: {
  onmessage: ((e: MessageEvent<IoWorkerInit>) => void) | null;
  postMessage(m: IoWorkerReport): void;
};

// On a Worker only, whose global scope has postMessage: tests import IoThread on the main thread.
if ("postMessage" in globalThis) {
  self.onmessage = (e: MessageEvent<IoWorkerInit>) => {
    self.onmessage = null;
    try {
      run(e.data);
    } catch (err) {
      self.postMessage({ type: "error", message: describeError(err, e.data.debug === true) });
    }
  };
}

function run(init: IoWorkerInit): void {
  const mem = new GuestMemory(
    viewOfAddress(init.ramHva, init.ramBytes),
    wiring.memoryLayout(init.ramBytes),
  );
  const vm = new VmFd(init.vmFd);
  const io = new IoThread(init, mem, kvmInterrupts(vm, new GsiRouter(init.routerState, vm)));
  self.postMessage({ type: "ready" });
  io.sync();
  for (;;) io.turn();
}
