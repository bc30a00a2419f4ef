/**
 * arm64 vCPUs: KVM's preferred target for this host's CPU with PSCI 0.2, so the guest starts
 * and stops secondary vCPUs and powers the machine off through KVM's own PSCI firmware; every
 * vCPU but the boot one starts powered off, waiting for a PSCI CPU_ON. The boot vCPU enters the
 * kernel as booting.rst asks: PC at the Image, x0 the device tree's address, x1-x3 zero, EL1h
 * with interrupts masked (KVM's reset state), MMU and caches off.
 *
 * @module
 */
import type { VcpuFd, VmFd } from "../../../ffi/kvm_fds.ts";
import {
  ARM64_REG_PC,
  armCoreRegX,
  KVM_ARM_VCPU_POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2,
  KvmVcpuInit,
} from "../../../ffi/kvm_arm64.ts";
import type { VcpuModel } from "../platform.ts";
import type { Arm64Entry } from "./boot/linux.ts";

/** A VM of KVM_CREATE_VM type 0 has a 40-bit IPA space (KVM_CAP_ARM_VM_IPA_SIZE aside). */
export const DEFAULT_IPA_BITS = 40;

export function arm64VcpuModel(vm: VmFd): VcpuModel<Arm64Entry> {
  const target = vm.armPreferredTarget().target;
  return {
    physAddrBits: DEFAULT_IPA_BITS,
    configure(vcpu: VcpuFd, id: number) {
      const init = new KvmVcpuInit();
      init.target = target;
      init.setFeature(KVM_ARM_VCPU_PSCI_0_2);
      if (id !== 0) init.setFeature(KVM_ARM_VCPU_POWER_OFF);
      vcpu.armVcpuInit(init);
    },
    enter(vcpu: VcpuFd, entry: Arm64Entry) {
      vcpu.setOneReg(ARM64_REG_PC, BigInt(entry.pc));
      vcpu.setOneReg(armCoreRegX(0), BigInt(entry.x0));
    },
  };
}
