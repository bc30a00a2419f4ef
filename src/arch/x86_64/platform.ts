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
import { createPcIrqchip, X86_REQUIRED_CAPS } from "./interrupts.ts";
import { type MemoryLayout, pciMmio64Window } from "./memory_map.ts";
import { x86_64Wiring } from "./wiring.ts";
import { BASE_CMDLINE } from "./cmdline.ts";

/** KVM's supported CPUID, with each vCPU's APIC id and the flags KVM leaves to the VMM. */
function vcpuModel(kvm: Kvm): VcpuModel<VcpuEntryState> {
  const cpuid = kvm.supportedCpuid();
  const tscDeadline = kvm.checkExtension(KVM_CAP.TSC_DEADLINE_TIMER) > 0;
  return {
    physAddrBits: physAddrBits(cpuid),
    configure(vcpu: VcpuFd, id: number) {
      patchCpuidForVcpu(cpuid, id, { tscDeadline });
      vcpu.setCpuid(cpuid);
    },
    // Only the boot processor starts at the kernel's entry; the others wait for INIT/SIPI
    // from the guest, which the in-kernel LAPIC handles.
    enter: applyEntryState,
  };
}

export const x86_64: Platform<MemoryLayout, KernelImage, KernelPlacement, VcpuEntryState> = {
  ...x86_64Wiring,
  pciMmio64Window,
  requiredCaps: X86_REQUIRED_CAPS,
  baseCmdline: BASE_CMDLINE,
  // APIC ids are 8 bits and 0xff is broadcast.
  maxCpus: 255,
  createIrqchip: createPcIrqchip,
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
};
