/**
 * The machine's PCI side: plan (main thread, once) and wiring (every vCPU thread). The plan
 * is plain data: the host bridge and each virtio device's shared state, their BAR addresses
 * from the MMIO hole (large 64-bit BARs: from the 64-bit window above RAM), and the eventfds
 * that connect them to KVM (ioeventfd for notifies, irqfd per MSI-X vector) and to the I/O
 * Worker.
 */
import { EventFd } from "../../ffi/eventfd.ts";
import type { VmFd } from "../../ffi/kvm_fds.ts";
import type { Bus } from "../bus/bus.ts";
import type { BusDevice } from "../bus/device.ts";
import { PCI_CONF1_ADDRESS_PORT, PCI_CONF1_PORTS, PciBus, type PciFunction } from "../pci/bus.ts";
import { type PciBarKind, PciConfigSpace } from "../pci/config_space.ts";
import {
  type GuestRange,
  MMIO_HOLE_START,
  PCI_ECAM_SIZE,
  PCI_ECAM_START,
} from "../arch/x86_64/memory_map.ts";
import {
  BAR0_SIZE,
  BAR1_SIZE,
  NOTIFY_MULTIPLIER,
  planVirtioPci,
  type VirtioDeviceDescription,
  VirtioPciFunction,
} from "../virtio/pci_transport.ts";
import type { IoDevicePlan, VirtioBackendPlan } from "../virtio/io_worker_protocol.ts";
import { GsiRouter, type MsiRoute, MsiVectors } from "./gsi_router.ts";
import { KVM_CAP } from "../../ffi/kvm.ts";
import type { Msix } from "../pci/msix.ts";
import type { PciIrqRoute } from "../arch/x86_64/boot/mptable.ts";
import { hostPageSize } from "../../ffi/libc.ts";

const ENOENT = 2;
const EEXIST = 17;

/** What the PCI side asks of the VM (a VmFd; a fake in tests). */
export type PciVm = Pick<
  VmFd,
  | "trySetUserMemoryRegion"
  | "tryIoeventfd"
  | "tryIrqfd"
  | "trySetGsiRouting"
  | "setGsiRouting"
  | "irqfd"
  | "irqfdResample"
  | "irqLine"
  | "checkExtension"
>;
import { type OpenedVfioDevice, setIntxUnmaskEventfd, setIrqEventfds } from "../vfio/container.ts";
import {
  planVfioFunction,
  type VfioMapping,
  type VfioOptions,
  VfioPciFunction,
  type VfioPlan,
} from "../vfio/vfio_function.ts";
import { RateLimitedLog, rateLimitedLog } from "../log.ts";
import { errnoName, SyscallError } from "../../ffi/libc.ts";
import { IRQ_INTX, VfioIrqModes } from "../vfio/irq_modes.ts";

/** BARs go from the start of the 32-bit hole up to the ECAM region (then the IOAPIC). */
export const PCI_MMIO_START = MMIO_HOLE_START;
export const PCI_MMIO_END = PCI_ECAM_START;
/**
 * 64-bit memory BARs this large or larger go to the 64-bit window above RAM; smaller ones stay in
 * the 32-bit hole (as every BAR did before there was a window) and go up only when it is full.
 * The hole has 1004 MiB for every device: a 256 MiB BAR would take a quarter of it, and a BAR
 * of 1 GiB or more cannot fit at all. Cloud Hypervisor puts every 64-bit BAR above 4 GiB;
 * SeaBIOS keeps them below until the hole runs out. Keeping the small ones low keeps the
 * addresses of today's devices (virtio's BARs are 32-bit anyway).
 */
export const PCI_LARGE_BAR_BYTES = 256 * 1024 * 1024;
/** Port I/O space for I/O BARs: everything above the ISA/legacy range. */
export const PCI_IO_START = 0x1000;
export const PCI_IO_END = 0x10000;
/** A host bridge so Linux's conf1 sanity check finds a known class on bus 0. */
const HOST_BRIDGE_CLASS = 0x06_00_00;
const REDHAT_VENDOR = 0x1b36;
const HOST_BRIDGE_DEVICE = 0x0008;

export interface PciDevicePlan extends IoDevicePlan {
  /** The GSIs its MSI-X vectors have while the guest enables them (MsiVectors). */
  routes: SharedArrayBuffer;
}

export interface PciMachinePlan {
  busState: SharedArrayBuffer;
  hostBridge: SharedArrayBuffer;
  routerState: SharedArrayBuffer;
  controlFd: number;
  devices: PciDevicePlan[];
  vfio: VfioPlan[];
  /** The 64-bit MMIO window above RAM (size 0: none), decoded like the 32-bit hole. */
  mmio64: GuestRange;
}

/** One eventfd per vector: its irqfd, bound to a GSI while the guest has the vector enabled. */
function eventfds(vectors: number): number[] {
  return Array.from({ length: vectors }, () => EventFd.create().fd);
}

/**
 * Which MSI-X vectors have a route: while MSI-X is enabled, each vector the guest has unmasked
 * (a vector masked later keeps its route, following its message); none while it is disabled.
 * So routes are taken as a driver sets its vectors up, not for every vector a device declares.
 */
function msixRoutes(msix: Msix, routes: MsiVectors): (vector: number) => MsiRoute | undefined {
  return (vector) => {
    if (!msix.enabled()) return undefined;
    const e = msix.entry(vector);
    if (e === undefined || (e.masked && routes.gsi(vector) === 0)) return undefined;
    return { addressLo: e.addressLo, addressHi: e.addressHi, data: e.data };
  };
}

export interface VirtioDeviceRequest {
  description: VirtioDeviceDescription;
  backend: VirtioBackendPlan;
}

/** IOAPIC pins 16-23 take the PCI slots' INTx# in turn (pins 0-15 are the ISA IRQs), the
 * usual swizzle: INTB# of a slot is INTA# of the next. Slots more than 8 apart share a pin,
 * which a level-triggered line allows, though with one KVM_IRQ_LINE source per pin a shared
 * line is only as good as its last writer. */
export function intxPin(slot: number, pin = 1): number {
  return 16 + ((slot - 1 + pin - 1) % 8);
}

/** The INTx wiring for the MP table. */
export function pciIrqRoutes(plan: PciMachinePlan): PciIrqRoute[] {
  return [
    ...plan.devices.map((d) => ({ slot: d.plan.slot, pin: 1, ioapicPin: d.plan.intxGsi })),
    ...plan.vfio.flatMap((v) =>
      v.intx ? [{ slot: v.slot, pin: v.intxPin, ioapicPin: v.intx.gsi }] : []
    ),
  ];
}

/** VFIO calls for one device's interrupt mechanisms. */
function irqControl(deviceFd: number) {
  return {
    setEventfds: (index: number, fds: number[]) => setIrqEventfds(deviceFd, index, fds),
    setIntxUnmask: (fd: number) => setIntxUnmaskEventfd(deviceFd, fd),
  };
}

function irqModes(v: VfioPlan, log: RateLimitedLog): VfioIrqModes {
  return new VfioIrqModes(
    v.irqState,
    { intx: v.intx, msi: v.msiFds, msix: v.deviceFds },
    irqControl(v.deviceFd),
    v.bdf,
    log,
  );
}

const hex = (n: number) => `0x${n.toString(16)}`;
/** An MSI address for a line: the upper dword only when it is not 0. */
const msiAddress = (m: MsiRoute) =>
  m.addressHi === 0
    ? hex(m.addressLo)
    : `${hex(m.addressHi)}${m.addressLo.toString(16).padStart(8, "0")}`;

/**
 * Put a virtio device's queue notify ioeventfds at `newGpa` (0: nowhere), off `oldGpa`. The
 * guest decides both: a BAR 0 over another device's leaves KVM refusing (EEXIST) a notify
 * address already taken. Then none of this device's are placed (the ones placed are taken
 * back), one line is logged, and its notifies reach it through MMIO exits until BAR 0 moves.
 */
function moveNotify(
  vm: PciVm,
  name: string,
  notifyFds: number[],
  oldGpa: number,
  newGpa: number,
  log: RateLimitedLog,
): void {
  if (oldGpa !== 0) {
    notifyFds.forEach((fd, q) => {
      const e = vm.tryIoeventfd(oldGpa + q * NOTIFY_MULTIPLIER, 2, fd, { deassign: true });
      // ENOENT: this place had been refused, so there is nothing to take away.
      if (e !== 0 && e !== ENOENT) {
        log.log(
          `${name} notify off`,
          `${name}: KVM_IOEVENTFD cannot remove the notify at ${
            hex(oldGpa + q * NOTIFY_MULTIPLIER)
          }: ${errnoName(e)}`,
        );
      }
    });
  }
  if (newGpa === 0) return;
  for (let q = 0; q < notifyFds.length; q++) {
    const e = vm.tryIoeventfd(newGpa + q * NOTIFY_MULTIPLIER, 2, notifyFds[q], {});
    if (e === 0) continue;
    for (let p = 0; p < q; p++) {
      vm.tryIoeventfd(newGpa + p * NOTIFY_MULTIPLIER, 2, notifyFds[p], { deassign: true });
    }
    log.log(
      `${name} notify on`,
      `${name}: KVM_IOEVENTFD cannot place queue notifies at ${hex(newGpa)}: ${errnoName(e)}${
        e === EEXIST ? " (BAR 0 overlaps another device's)" : ""
      }; they take the MMIO exit path until the guest moves BAR 0`,
    );
    return;
  }
}

/**
 * Put a passed-through BAR's memory slot at `gpa`, or remove it (gpa 0). The guest decides
 * where: a BAR over guest RAM or over another slot (another device's BAR, or another of its
 * own) is refused by KVM (EEXIST). Then the slot is not placed, one line is logged, and the
 * BAR's accesses are trapped and forwarded (or reach RAM) until the guest moves it.
 */
function placeSlot(vm: PciVm, bdf: string, m: VfioMapping, gpa: number, log: RateLimitedLog) {
  if (gpa === 0) {
    // Only slots that were placed are removed: a failure is a bug here, not the guest's doing.
    const e = vm.trySetUserMemoryRegion(m.slot, 0, 0, m.hva);
    if (e !== 0) throw new SyscallError(`KVM_SET_USER_MEMORY_REGION (remove slot ${m.slot})`, e);
    return true;
  }
  const e = vm.trySetUserMemoryRegion(m.slot, gpa, m.size, m.hva);
  if (e === 0) return true;
  log.log(
    `vfio ${bdf} BAR ${m.bar} slot`,
    `vfio ${bdf}: BAR ${m.bar} at ${hex(gpa - m.offset)}: cannot map ${hex(m.size)} bytes at ${
      hex(gpa)
    }: ${errnoName(e)}${
      e === EEXIST ? " (it overlaps guest RAM or another BAR)" : ""
    }; its accesses are trapped until the guest moves it`,
  );
  return false;
}

/** Hands out naturally aligned ranges of [start, end) in order; undefined once one does not fit. */
function windowAllocator(start: number, end: number): (size: number) => number | undefined {
  let next = start;
  return (size) => {
    const gpa = Math.ceil(next / size) * size; // BARs are naturally aligned
    if (gpa + size > end) return undefined;
    next = gpa + size;
    return gpa;
  };
}

/**
 * Main thread: lay out bus 0, allocate BARs and GSIs, create and bind the eventfds. `mmio64`
 * is the 64-bit window above RAM (src/memory/layout.ts pciMmio64Window); without it every BAR
 * must fit in the 32-bit hole.
 */
export function planPci(
  vm: PciVm,
  requests: VirtioDeviceRequest[],
  passthrough: OpenedVfioDevice[] = [],
  vfioOptions: VfioOptions[] = [],
  log: RateLimitedLog = rateLimitedLog,
  mmio64: GuestRange = { gpa: 0, size: 0 },
): PciMachinePlan {
  const hostBridge = PciConfigSpace.createState();
  new PciConfigSpace(hostBridge).setIds({
    vendorId: REDHAT_VENDOR,
    deviceId: HOST_BRIDGE_DEVICE,
    classCode: HOST_BRIDGE_CLASS,
    revision: 0,
    subsystemVendorId: 0,
    subsystemId: 0,
  });
  const routerState = GsiRouter.createState(vm.checkExtension(KVM_CAP.IRQ_ROUTING));
  /** KVM memory slots after the RAM's (at most 2) for passthrough BAR mappings. */
  let nextSlot = 8;
  const low = windowAllocator(PCI_MMIO_START, PCI_MMIO_END);
  const high = windowAllocator(mmio64.gpa, mmio64.gpa + mmio64.size);
  /** Only a 64-bit BAR can go above 4 GiB; a large one goes there first (PCI_LARGE_BAR_BYTES). */
  const allocate = (size: number, kind: PciBarKind = "mem32") => {
    const gpa = kind !== "mem64"
      ? low(size)
      : size >= PCI_LARGE_BAR_BYTES
      ? high(size) ?? low(size)
      : low(size) ?? high(size);
    if (gpa === undefined) {
      throw new RangeError(
        `PCI MMIO window exhausted: no room for a ${kind} BAR of 0x${size.toString(16)} bytes ` +
          `(32-bit hole ${hex(PCI_MMIO_START)}-${hex(PCI_MMIO_END)}, 64-bit window ${
            mmio64.size > 0 ? `${hex(mmio64.gpa)}-${hex(mmio64.gpa + mmio64.size)}` : "none"
          })`,
      );
    }
    return gpa;
  };
  const devices = requests.map((r, i): PciDevicePlan => {
    const slot = i + 1;
    const plan = planVirtioPci(
      r.description,
      slot,
      allocate(BAR0_SIZE),
      allocate(BAR1_SIZE),
      intxPin(slot),
    );
    const notifyFds = Array.from({ length: plan.numQueues }, () => EventFd.create().fd);
    const irqFds = eventfds(plan.vectors);
    return {
      plan,
      backend: r.backend,
      notifyFds,
      irqFds,
      routes: MsiVectors.createState(plan.vectors),
    };
  });
  const vfio = passthrough.map((d, i): VfioPlan => {
    const base = planVfioFunction(
      d.host.bdf,
      devices.length + 1 + i,
      d.deviceFd,
      d.regions,
      allocate,
      hostPageSize(),
      () => nextSlot++,
      vfioOptions[i],
    );
    const vectors = base.msix?.vectors ?? 0;
    const irqFds = eventfds(vectors);
    const deviceFds = eventfds(vectors);
    // MSI: VFIO signals the irqfds themselves (no masking to emulate, so no relay).
    const msiFds = eventfds(base.msi?.vectors ?? 0);
    // INTx: VFIO masks the line as it fires; the guest's EOI makes KVM signal the resample
    // eventfd, which VFIO takes as "unmask". All in the kernel.
    let intx: VfioPlan["intx"];
    if (base.intxPin !== 0 && (d.irqCounts[IRQ_INTX] ?? 0) > 0) {
      const gsi = intxPin(base.slot, base.intxPin);
      const triggerFd = EventFd.create().fd;
      const resampleFd = EventFd.create().fd;
      vm.irqfdResample(triggerFd, gsi, resampleFd);
      intx = { gsi, triggerFd, resampleFd };
    }
    const plan: VfioPlan = {
      ...base,
      deviceFds,
      irqFds,
      msixRoutes: MsiVectors.createState(vectors),
      msiFds,
      msiRoutes: MsiVectors.createState(msiFds.length),
      intx,
      irqState: VfioIrqModes.createState(),
    };
    irqModes(plan, log).start(); // INTx on until the guest enables MSI or MSI-X
    return plan;
  });
  return {
    busState: PciBus.createState(),
    hostBridge,
    routerState,
    controlFd: EventFd.create().fd,
    devices,
    vfio,
    mmio64: { gpa: mmio64.gpa, size: mmio64.size },
  };
}

/** Any thread: build this thread's PCI bus over the shared plan and put it on its buses. */
export function registerPci(
  pio: Bus,
  mmio: Bus,
  plan: PciMachinePlan,
  vm: PciVm,
  unclaimed: (write: boolean, addr: number, size: number) => void,
  unclaimedPio: (write: boolean, addr: number, size: number) => void = () => {},
  /** With --debug: interrupt-mode changes of passed-through devices. */
  trace?: (line: string) => void,
  /** Where what the guest gets refused is reported (one line per cause per second). */
  log: RateLimitedLog = rateLimitedLog,
  /** Told of each config-space exit, by mechanism (the exit counters). */
  configExit: (ecam: boolean) => void = () => {},
): VirtioPciFunction[] {
  const bus = new PciBus(plan.busState);
  const counted = (device: BusDevice, ecam: boolean): BusDevice => ({
    read: (offset, data) => (configExit(ecam), device.read(offset, data)),
    write: (offset, data) => (configExit(ecam), device.write(offset, data)),
  });
  const hostBridge: PciFunction = {
    config: new PciConfigSpace(plan.hostBridge),
    barRead: (_i, _o, data) => void data.fill(0xff),
    barWrite: () => {},
  };
  bus.add(0, hostBridge);
  const router = new GsiRouter(plan.routerState, vm, log);
  const control = new EventFd(plan.controlFd);
  const functions = plan.devices.map((d) => {
    const notify = d.notifyFds.map((fd) => new EventFd(fd));
    const irq = d.irqFds.map((fd) => new EventFd(fd));
    const fn = new VirtioPciFunction(d.plan, {
      notify: (q) => notify[q]?.signal(),
      kick: () => control.signal(),
      notifyMoved: (oldGpa, newGpa) =>
        moveNotify(vm, d.plan.name, d.notifyFds, oldGpa, newGpa, log),
      signal: (vector) => irq[vector]?.signal(),
      intx: (high) => vm.irqLine(d.plan.intxGsi, high),
      routeChanged: (vector) => void routes.update(vector, vector + 1, want),
    });
    const routes = new MsiVectors(d.routes, d.irqFds, router, d.plan.name);
    const want = msixRoutes(fn.msix, routes);
    // MSI-X Enable: routes for the unmasked vectors, or none.
    const msixControl = d.plan.msixCapOffset + 2;
    fn.config.onWrite(
      msixControl,
      msixControl + 2,
      () => void routes.update(0, d.irqFds.length, want),
    );
    bus.add(d.plan.slot, fn);
    return fn;
  });
  // A passed-through BAR refused for overlapping another device's gets its place back when
  // that device's BAR moves away; the retry takes each function's lock in turn, none held.
  const vfioFunctions: VfioPciFunction[] = [];
  let retrying = false;
  const placeOthersAgain = (moved: VfioPciFunction) => {
    if (retrying) return;
    retrying = true;
    try {
      for (const f of vfioFunctions) if (f !== moved) f.placeAgain();
    } finally {
      retrying = false;
    }
  };
  for (const v of plan.vfio) {
    const irq = v.irqFds.map((fd) => new EventFd(fd));
    const modes = irqModes(v, log);
    const msixVectors = new MsiVectors(v.msixRoutes, v.irqFds, router, `vfio ${v.bdf} MSI-X`);
    const msiVectors = new MsiVectors(v.msiRoutes, v.msiFds, router, `vfio ${v.bdf} MSI`);
    let want: (vector: number) => MsiRoute | undefined = () => undefined;
    const fn = new VfioPciFunction(v, {
      msixEnabled: (on) => {
        trace?.(`vfio ${v.bdf}: MSI-X ${on ? "on" : "off"}`);
        // Routes before the device may fire; the device quiet before routes go.
        if (!on) {
          modes.msix(false);
          msixVectors.clear();
          return true;
        }
        msixVectors.update(0, v.irqFds.length, want);
        if (modes.msix(true)) return true;
        msixVectors.clear();
        return false;
      },
      msiChanged: (vectors, messages) => {
        trace?.(
          `vfio ${v.bdf}: MSI ${vectors === 0 ? "off" : `on, ${vectors} vector(s)`}` +
            messages.map((m) => ` ${msiAddress(m)}/0x${m.data.toString(16)}`)
              .join(""),
        );
        if (vectors === 0) {
          modes.msi(0);
          msiVectors.clear();
          return true;
        }
        // Every enabled vector routed, or MSI refused: a driver cannot use part of them.
        if (msiVectors.update(0, v.msiFds.length, (i) => messages[i]) && modes.msi(vectors)) {
          return true;
        }
        modes.msi(0);
        msiVectors.clear();
        return false;
      },
      signal: (vector) => irq[vector]?.signal(),
      routeChanged: (vector) => void msixVectors.update(vector, vector + 1, want),
      placeSlot: (m, gpa) => placeSlot(vm, v.bdf, m, gpa, log),
      slotsRemoved: () => placeOthersAgain(fn),
    });
    vfioFunctions.push(fn);
    if (fn.msix) want = msixRoutes(fn.msix, msixVectors);
    bus.add(v.slot, fn);
  }
  pio.register(PCI_CONF1_ADDRESS_PORT, PCI_CONF1_PORTS, counted(bus.conf1, false), "pci conf1");
  mmio.register(PCI_ECAM_START, PCI_ECAM_SIZE, counted(bus.ecam, true), "pci ecam");
  // I/O BARs (a passed-through device's) live above the legacy ports; Linux assigns them.
  pio.register(
    PCI_IO_START,
    PCI_IO_END - PCI_IO_START,
    bus.window(PCI_IO_START, "io", unclaimedPio),
    "pci io window",
  );
  mmio.register(
    PCI_MMIO_START,
    PCI_MMIO_END - PCI_MMIO_START,
    bus.window(PCI_MMIO_START, "memory", unclaimed),
    "pci mmio window",
  );
  // The 64-bit window: large BARs, and any BAR the guest moves there (up to its address width).
  if (plan.mmio64.size > 0) {
    mmio.register(
      plan.mmio64.gpa,
      plan.mmio64.size,
      bus.window(plan.mmio64.gpa, "memory", unclaimed),
      "pci mmio64 window",
    );
  }
  return functions;
}
