/**
 * The I/O Worker: virtqueue processing off the vCPU threads. It sleeps in poll() on the
 * queues' notify eventfds (signalled by KVM through ioeventfd, so a notify never stops a vCPU
 * in user space) and on a control eventfd; it runs the device back-ends and raises MSI-X
 * vectors by writing their irqfds. Each device is a DeviceRunner (device_runner.ts), which
 * carries out the device error policy (device_fault.ts); this module is the thread's wiring.
 */
import { viewOfAddress } from "../../ffi/libc.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { memoryLayout } from "../arch/x86_64/memory_map.ts";
import { PciConfigSpace } from "../pci/config_space.ts";
import { VmFd } from "../../ffi/kvm_fds.ts";
import { Msix } from "../pci/msix.ts";
import { describeError } from "../log.ts";
import { FdPoller } from "./fd_poller.ts";
import { Backlog, type Serve } from "./backlog.ts";
import { DeviceRunner, type VirtioDevice } from "./device_runner.ts";
import { BlkDevice, FileBackend } from "./blk.ts";
import { handleRngRequest } from "./rng.ts";
import { RX_QUEUE, TapNet } from "./net.ts";
import { CONSOLE_RX_QUEUE, VirtioConsole } from "./console.ts";
import { InputRing } from "../console/input_ring.ts";
import { FdWriter } from "../machine/fd_writer.ts";
import type { IoDevicePlan, IoWorkerInit, IoWorkerReport } from "./io_worker_protocol.ts";

/** The device model behind each planned device; the runner does the rest. */
function deviceModel(d: IoDevicePlan, mem: GuestMemory): VirtioDevice {
  const b = d.backend;
  if (b.kind === "blk") {
    return new BlkDevice(mem, new FileBackend(b.path, { readOnly: b.readOnly }), b.id);
  }
  if (b.kind === "console") {
    const out = new FdWriter(b.outFd);
    return new VirtioConsole(mem, new InputRing(b.ring), (bytes) => out.write(bytes));
  }
  if (b.kind === "net") return new TapNet(b.tapFd, mem, d.plan.name);
  return { handle: (_queue, chain) => handleRngRequest(mem, chain) };
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
    self.postMessage({ type: "error", message: describeError(err, e.data.debug === true) });
  }
};

function run(init: IoWorkerInit): void {
  const mem = new GuestMemory(
    viewOfAddress(init.ramHva, init.ramBytes),
    memoryLayout(init.ramBytes),
  );
  const vm = new VmFd(init.vmFd);
  const devices = init.devices.map((d) => {
    const irq = d.irqFds.map((fd) => new EventFd(fd));
    return new DeviceRunner(d.plan, mem, deviceModel(d, mem), {
      signal: (vector) => irq[vector]?.signal(),
      intx: () => vm.irqLine(d.plan.intxGsi, true),
    });
  });
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
    ...init.devices.flatMap((d) => d.notifyFds),
    ...inputFds,
    ...relays.map((r) => r.fd),
  ]);
  // Work left over when a device hit its budget: served again after the fds had their turn.
  const backlog = new Backlog();
  const task = (serve: Serve) => () => backlog.run(serve);
  // fd → what to do when it is readable.
  const actions = new Map<number, () => void>();
  const syncAll = devices.map((d) => task(() => d.sync()));
  actions.set(init.controlFd, () => {
    control.drain();
    for (const s of syncAll) s();
  });
  init.devices.forEach((plan, i) => {
    const d = devices[i];
    plan.notifyFds.forEach((fd, q) => {
      const notify = new EventFd(fd);
      const serve = task(() => d.process(q));
      actions.set(fd, () => {
        notify.drain();
        serve();
      });
    });
    const b = plan.backend;
    if (b.kind === "net") {
      actions.set(b.tapFd, task(() => d.process(RX_QUEUE)));
      d.onFillStarved = (_q, starved) => poller.setEnabled(b.tapFd, !starved);
      poller.setEnabled(b.tapFd, false); // until the driver posts receive buffers
    } else if (b.kind === "console") {
      const wake = new EventFd(b.inputFd);
      const serve = task(() => d.process(CONSOLE_RX_QUEUE));
      actions.set(b.inputFd, () => {
        wake.drain();
        serve();
      });
    }
  });
  for (const r of relays) {
    actions.set(r.fd, () => {
      if (r.ev.drain() > 0) r.msix.trigger(r.vector);
    });
  }
  self.postMessage({ type: "ready" });
  for (const s of syncAll) s();
  for (;;) {
    for (const fd of poller.wait(backlog.busy ? 0 : -1)) actions.get(fd)!();
    backlog.round();
  }
}
