/**
 * The machine's PCI side: plan (main thread, once) and wiring (every vCPU thread). The plan
 * is plain data: the host bridge and each virtio device's shared state, their BAR addresses
 * from the MMIO hole (large 64-bit BARs: from the 64-bit window above RAM), and the eventfds
 * that connect them to KVM (ioeventfd for notifies, a vector group of irqfds per MSI or MSI-X
 * function: src/machine/msi_vectors.ts) and to the I/O Worker.
 */
import { EventFd } from "../../ffi/eventfd.ts";
import type { VmFd } from "../../ffi/kvm_fds.ts";
import type { Bus } from "../bus/bus.ts";
import type { BusDevice } from "../bus/device.ts";
import { PciBus, type PciFunction } from "../pci/bus.ts";
import { type PciBarKind, PciConfigSpace } from "../pci/config_space.ts";
import type { GuestRange } from "../memory/regions.ts";
import { wiring } from "./arch.ts";
import type { PciIntxRoute } from "../arch/platform.ts";
import {
  BAR0_SIZE,
  BAR1_SIZE,
  NOTIFY_MULTIPLIER,
  planVirtioPci,
  type VirtioDeviceDescription,
  VirtioPciFunction,
} from "../virtio/pci_transport.ts";
import type { IoDevicePlan } from "./io_thread_protocol.ts";
import type { BackendPlan } from "../virtio/device.ts";
import { GsiRouter } from "./gsi_router.ts";
import { eventfds, kvmInterrupts, planMsiVectors } from "./interrupts.ts";
import type { MsiMessage } from "../bus/interrupt.ts";
import { KVM_CAP } from "../../ffi/kvm.ts";
import { hostPageSize } from "../../ffi/libc.ts";
import { EEXIST, ENOENT } from "../../ffi/errno.ts";

/** What the PCI side asks of the VM (a VmFd; a fake in tests). */
export type PciVm = Pick<
  VmFd,
  | "trySetUserMemoryRegion"
  | "tryIoeventfd"
  | "tryIrqfd"
  | "trySetGsiRouting"
  | "setGsiRouting"
  | "irqfd"
  | "irqLine"
  | "checkExtension"
>;
import { type OpenedVfioDevice, setIntxUnmaskEventfd, setIrqEventfds } from "../vfio/container.ts";
import {
  planVfioFunction,
  type VfioInterrupts,
  type VfioMapping,
  type VfioOptions,
  VfioPciFunction,
  type VfioPlan,
} from "../vfio/vfio_function.ts";
import { RateLimitedLog, rateLimitedLog } from "../log.ts";
import { errnoName, SyscallError } from "../../ffi/libc.ts";
import { IRQ_INTX, VfioIrqModes } from "../vfio/irq_modes.ts";

/**
 * 64-bit memory BARs this large or larger go to the 64-bit window above RAM; smaller ones stay in
 * the 32-bit hole (as every BAR did before there was a window) and go up only when it is full.
 * The hole has 1004 MiB for every device: a 256 MiB BAR would take a quarter of it, and a BAR
 * of 1 GiB or more cannot fit at all. Cloud Hypervisor puts every 64-bit BAR above 4 GiB;
 * SeaBIOS keeps them below until the hole runs out. Keeping the small ones low keeps the
 * addresses of today's devices (virtio's BARs are 32-bit anyway).
 */
export const PCI_LARGE_BAR_BYTES = 256 * 1024 * 1024;
/** A host bridge so Linux's conf1 sanity check finds a known class on bus 0. */
const HOST_BRIDGE_CLASS = 0x06_00_00;
const REDHAT_VENDOR = 0x1b36;
const HOST_BRIDGE_DEVICE = 0x0008;

export type PciDevicePlan = IoDevicePlan;

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

export interface VirtioDeviceRequest {
  description: VirtioDeviceDescription;
  backend: BackendPlan;
}

/** Where each function's INTx goes, for the platform's description of the machine. */
export function pciIntxRoutes(plan: PciMachinePlan): PciIntxRoute[] {
  return [
    ...plan.devices.map((d) => ({ slot: d.plan.slot, pin: 1, gsi: d.plan.intxGsi })),
    ...plan.vfio.flatMap((v) => {
      const intx = v.interrupts.intx;
      return intx ? [{ slot: v.slot, pin: v.intxPin, gsi: intx.gsi }] : [];
    }),
  ];
}

const { pciMmio32, pciIo } = wiring;

/** VFIO calls for one device's interrupt mechanisms. */
function irqControl(deviceFd: number) {
  return {
    setEventfds: (index: number, fds: number[]) => setIrqEventfds(deviceFd, index, fds),
    setIntxUnmask: (fd: number) => setIntxUnmaskEventfd(deviceFd, fd),
  };
}

function irqModes(v: VfioPlan, log: RateLimitedLog): VfioIrqModes {
  const { intx, msi, msix, modes } = v.interrupts;
  return new VfioIrqModes(
    modes,
    { intx, msi: msi?.irqFds ?? [], msix: msix?.deviceFds ?? [] },
    irqControl(v.deviceFd),
    v.bdf,
    log,
  );
}

const hex = (n: number) => `0x${n.toString(16)}`;
/** An MSI address for a line: the upper dword only when it is not 0. */
const msiAddress = (m: MsiMessage) =>
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
 * is the 64-bit window above RAM (the platform's pciMmio64Window); without it every BAR
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
  const low = windowAllocator(pciMmio32.gpa, pciMmio32.gpa + pciMmio32.size);
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
          `(32-bit hole ${hex(pciMmio32.gpa)}-${
            hex(pciMmio32.gpa + pciMmio32.size)
          }, 64-bit window ${
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
      wiring.intxGsi(slot),
    );
    return {
      plan,
      backend: r.backend,
      notifyFds: eventfds(plan.numQueues),
      vectors: planMsiVectors(plan.msix.vectors, plan.name, slot),
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
    // MSI-X: the device's eventfds, relayed (masking, pending bits) to the group's irqfds.
    const msix = base.msix && {
      deviceFds: eventfds(base.msix.vectors),
      vectors: planMsiVectors(base.msix.vectors, `vfio ${base.bdf} MSI-X`, base.slot),
    };
    // MSI: VFIO signals the group's irqfds itself (no masking to emulate, so no relay).
    const msi = base.msi && planMsiVectors(base.msi.vectors, `vfio ${base.bdf} MSI`, base.slot);
    // INTx: VFIO masks the line as it fires; the guest's EOI makes KVM signal the resample
    // eventfd, which VFIO takes as "unmask". All in the kernel.
    let intx: VfioInterrupts["intx"];
    if (base.intxPin !== 0 && (d.irqCounts[IRQ_INTX] ?? 0) > 0) {
      const gsi = wiring.intxGsi(base.slot, base.intxPin);
      const triggerFd = EventFd.create().fd;
      const resampleFd = EventFd.create().fd;
      vm.irqfd(triggerFd, gsi, { resampleFd });
      intx = { gsi, triggerFd, resampleFd };
    }
    const plan: VfioPlan = {
      ...base,
      interrupts: { intx, msi, msix, modes: VfioIrqModes.createState() },
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
  const irq = kvmInterrupts(vm, new GsiRouter(plan.routerState, vm, log));
  const control = new EventFd(plan.controlFd);
  const functions = plan.devices.map((d) => {
    const notify = d.notifyFds.map((fd) => new EventFd(fd));
    const fn = new VirtioPciFunction(
      d.plan,
      {
        notify: (q) => notify[q]?.signal(),
        kick: () => control.signal(),
        notifyMoved: (oldGpa, newGpa) =>
          moveNotify(vm, d.plan.name, d.notifyFds, oldGpa, newGpa, log),
      },
      irq.vectors(d.vectors),
      irq.line(d.plan.intxGsi),
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
    const modes = irqModes(v, log);
    const { msi, msix } = v.interrupts;
    const fn = new VfioPciFunction(
      v,
      {
        // The capability routed its vectors before this, and releases them after.
        msixEnabled: (on) => {
          trace?.(`vfio ${v.bdf}: MSI-X ${on ? "on" : "off"}`);
          return modes.msix(on);
        },
        msiChanged: (vectors, messages) => {
          trace?.(
            `vfio ${v.bdf}: MSI ${vectors === 0 ? "off" : `on, ${vectors} vector(s)`}` +
              messages.map((m) => ` ${msiAddress(m)}/0x${m.data.toString(16)}`)
                .join(""),
          );
          return modes.msi(vectors);
        },
        placeSlot: (m, gpa) => placeSlot(vm, v.bdf, m, gpa, log),
        slotsRemoved: () => placeOthersAgain(fn),
      },
      {
        msix: msix && irq.vectors(msix.vectors),
        msi: msi && irq.vectors(msi),
      },
    );
    vfioFunctions.push(fn);
    bus.add(v.slot, fn);
  }
  wiring.registerConfigAccess(pio, mmio, {
    conf1: counted(bus.conf1, false),
    ecam: counted(bus.ecam, true),
  });
  // I/O BARs (a passed-through device's) live above the legacy ports; Linux assigns them.
  pio.register(
    pciIo.gpa,
    pciIo.size,
    bus.window(pciIo.gpa, "io", unclaimedPio),
    "pci io window",
  );
  mmio.register(
    pciMmio32.gpa,
    pciMmio32.size,
    bus.window(pciMmio32.gpa, "memory", unclaimed),
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
