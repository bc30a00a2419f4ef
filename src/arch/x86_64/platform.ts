/**
 * The PC: denovmm's x86_64 machine as one {@link Platform}. Each fact is in its own module in
 * this folder; this one only says which of them answer the machine's questions.
 *
 * @module
 */
import type { Kvm, VcpuFd } from "../../../ffi/kvm_fds.ts";
import { KVM_CAP } from "../../../ffi/kvm.ts";
import type { Platform, VcpuModel } from "../platform.ts";
import type { GuestMemory } from "../../memory/guest_memory.ts";
import { SERIAL_COM1_IRQ } from "../../devices/serial.ts";
import { writeAcpiTables } from "./acpi/description.ts";
import {
  type KernelImage,
  type KernelPlacement,
  loadLinux,
  parseKernel,
  placeKernel,
} from "./boot/linux.ts";
import type { VcpuEntryState } from "./boot/long_mode.ts";
import { patchCpuidForVcpu, physAddrBits } from "./cpuid.ts";
import { applyEntryState } from "./entry.ts";
import {
  createPcIrqchip,
  DEFAULT_GSI_ROUTES,
  FIRST_MSI_GSI,
  intxPin,
  isaLine,
  X86_REQUIRED_CAPS,
} from "./interrupts.ts";
import { registerLegacyDevices } from "./legacy_devices.ts";
import { type MemoryLayout, memoryLayout, pciMmio64Window } from "./memory_map.ts";
import { PCI_ECAM, PCI_IO, PCI_MMIO32, registerConfigAccess } from "./pci.ts";

/** KVM's supported CPUID, with each vCPU's APIC id and the flags KVM leaves to the VMM. */
function vcpuModel(kvm: Kvm): VcpuModel<VcpuEntryState> {
  const cpuid = kvm.supportedCpuid();
  const tscDeadline = kvm.checkExtension(KVM_CAP.TSC_DEADLINE_TIMER) > 0;
  return {
    physAddrBits: physAddrBits(cpuid),
    configure(vcpu: VcpuFd, id: number, entry?: VcpuEntryState) {
      patchCpuidForVcpu(cpuid, id, { tscDeadline });
      vcpu.setCpuid(cpuid);
      // Only the boot processor starts at the kernel's entry; the others wait for INIT/SIPI
      // from the guest, which the in-kernel LAPIC handles.
      if (entry) applyEntryState(vcpu, entry);
    },
  };
}

export const x86_64: Platform<MemoryLayout, KernelImage, KernelPlacement, VcpuEntryState> = {
  name: "x86_64",
  memoryLayout,
  pciMmio64Window,
  pciIo: PCI_IO,
  pciMmio32: PCI_MMIO32,
  pciEcam: PCI_ECAM,
  requiredCaps: X86_REQUIRED_CAPS,
  createIrqchip: createPcIrqchip,
  defaultGsiRoutes: DEFAULT_GSI_ROUTES,
  firstMsiGsi: FIRST_MSI_GSI,
  intxGsi: intxPin,
  consoleIrq: (irq) => isaLine(irq, SERIAL_COM1_IRQ),
  registerConfigAccess,
  parseKernel,
  placeKernel,
  loadKernel(mem: GuestMemory, layout: MemoryLayout, kernel: KernelPlacement, boot) {
    // The ACPI tables first: the zero page carries the RSDP's address.
    const acpiRsdpGpa = writeAcpiTables(mem, boot.cpus, boot.mmio64);
    return loadLinux(
      mem,
      layout,
      kernel,
      boot.initrd,
      boot.cmdline,
      boot.cpus,
      boot.pciIntx.map((r) => ({ slot: r.slot, pin: r.pin, ioapicPin: r.gsi })),
      { elfPiecesWritten: boot.copiesMade, acpiRsdpGpa },
    );
  },
  vcpuModel,
  registerDevices: (pio, _mmio, wiring) => registerLegacyDevices(pio, wiring),
};
