/**
 * denovmm's arm64 machine as one {@link Platform}: the wiring (./wiring.ts) plus the boot side:
 * the vGIC with its ITS, the vCPUs with PSCI, and Linux's Image protocol with a device tree.
 *
 * @module
 */
import type { Platform } from "../platform.ts";
import type { GuestMemory } from "../../memory/guest_memory.ts";
import { BASE_CMDLINE } from "./cmdline.ts";
import { createGic } from "./gic.ts";
import {
  type Arm64Entry,
  type Arm64Kernel,
  type Arm64PlacedKernel,
  loadLinux,
  parseKernel,
  placeKernel,
} from "./boot/linux.ts";
import { type Arm64Layout, checkIpaFits, MAX_CPUS, pciMmio64Window } from "./memory_map.ts";
import { arm64VcpuModel } from "./vcpu.ts";
import { arm64Wiring } from "./wiring.ts";

export const arm64: Platform<Arm64Layout, Arm64Kernel, Arm64PlacedKernel, Arm64Entry> = {
  ...arm64Wiring,
  pciMmio64Window(layout, ipaBits) {
    checkIpaFits(layout, ipaBits);
    return pciMmio64Window(layout, ipaBits);
  },
  // The vGIC and its ITS (KVM_CREATE_DEVICE), vCPU registers by id, PSCI 0.2 for secondary
  // vCPUs and power-off. (KVM_CAP_MSI_DEVID is no question for /dev/kvm: KVM answers it per
  // VM, yes once an ITS exists, and EINVAL before.)
  requiredCaps: ["ONE_REG", "DEVICE_CTRL", "ARM_PSCI_0_2", "IRQ_ROUTING", "IRQFD"],
  baseCmdline: BASE_CMDLINE,
  maxCpus: MAX_CPUS,
  createIrqchip: (vm) => createGic(vm),
  parseKernel,
  placeKernel,
  loadKernel(mem: GuestMemory, layout: Arm64Layout, kernel: Arm64PlacedKernel, boot) {
    return loadLinux(mem, layout, kernel, boot);
  },
  vcpuModel: (_kvm, vm) => arm64VcpuModel(vm),
};
