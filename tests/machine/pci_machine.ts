// A machine's PCI side for tests: planPci and registerPci over a fake VM (./fake_vm.ts) with
// guest RAM in its slots, two virtio devices and fake VFIO devices (../vfio/fake_device.ts),
// with config cycles through conf1 as a guest's kernel makes them.
import { Bus } from "../../src/bus/bus.ts";
import { planPci, registerPci } from "../../src/machine/pci_devices.ts";
import { virtioRequests } from "../../src/machine/virtio_devices.ts";
import { RateLimitedLog } from "../../src/log.ts";
import { type GuestRange, memoryLayout } from "../../src/arch/x86_64/memory_map.ts";
import type { OpenedVfioDevice } from "../../src/vfio/container.ts";
import { fakeDevice, type FakeDeviceOptions } from "../vfio/fake_device.ts";
import { FakeVm } from "./fake_vm.ts";

export const VFIO_SLOT = 3; // after the two virtio devices

export interface PciMachineOptions {
  irqCounts?: number[];
  device?: FakeDeviceOptions;
  virtio?: number;
  vfio?: number;
  /** Guest RAM, in the fake VM's slots 0 and 1 as the layout puts it; default 3 GiB. */
  ramBytes?: number;
  /** The 64-bit PCI window handed to planPci (default: none). */
  mmio64?: GuestRange;
}

export function machine(options: PciMachineOptions = {}) {
  const vm = new FakeVm();
  const layout = memoryLayout(options.ramBytes ?? 0xc000_0000);
  layout.regions.forEach((r, slot) => vm.trySetUserMemoryRegion(slot, r.gpa, r.size, 0n));
  const lines: string[] = [];
  let now = 0;
  const log = new RateLimitedLog((line) => lines.push(line), () => now);
  const devs = Array.from({ length: options.vfio ?? 1 }, () => fakeDevice(options.device));
  const dev = devs[0];
  const opened = devs.map((d, i): OpenedVfioDevice => ({
    host: { bdf: `0000:00:1${i}.0`, group: 1 + i, vendorId: 0x10ec, deviceId: 0x8168 },
    containerFd: -1,
    groupFd: -1,
    deviceFd: d.fd,
    regions: d.regions,
    irqCounts: options.irqCounts ?? [0, 1, 4],
  }));
  const requests = Array.from({ length: options.virtio ?? 2 }, () => virtioRequests([], true))
    .flat();
  let plan;
  try {
    plan = planPci(vm, requests, opened, [], log, options.mmio64);
  } catch (e) {
    for (const d of devs) d.close();
    throw e;
  }
  const pio = new Bus("pio", 0x1_0000);
  const mmio = new Bus("mmio", 2 ** 52);
  const configExits = { conf1: 0, ecam: 0 };
  const functions = registerPci(
    pio,
    mmio,
    plan,
    vm,
    () => {},
    () => {},
    undefined,
    log,
    (ecam) => void configExits[ecam ? "ecam" : "conf1"]++,
  );
  const conf1 = pio.find(0xcf8, 4)!.device;
  const select = (slot: number, reg: number) => {
    const a = new Uint8Array(4);
    new DataView(a.buffer).setUint32(0, (0x8000_0000 | (slot << 11) | (reg & 0xfc)) >>> 0, true);
    conf1.write(0, a);
  };
  const cfgWrite = (slot: number, reg: number, size: number, value: number) => {
    select(slot, reg);
    const d = new Uint8Array(size);
    for (let i = 0; i < size; i++) d[i] = (value >>> (8 * i)) & 0xff;
    conf1.write(4 + (reg & 3), d);
  };
  const cfgRead = (slot: number, reg: number, size: number) => {
    select(slot, reg);
    const d = new Uint8Array(size);
    conf1.read(4 + (reg & 3), d);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + d[i];
    return v;
  };
  return {
    vm,
    layout,
    lines,
    plan,
    functions,
    pio,
    configExits,
    dev,
    devs,
    cfgWrite,
    cfgRead,
    mmio,
    tick: () => void (now += 1000),
  };
}

/** The guest-physical start of each VFIO memory slot placed now, by KVM slot number. */
export function vfioSlots(vm: FakeVm): Array<[number, number]> {
  return [...vm.slots].filter(([id]) => id >= 8).map(([id, s]): [number, number] => [id, s.gpa])
    .sort((a, b) => a[0] - b[0]);
}
