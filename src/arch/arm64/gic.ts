/**
 * The arm64 machine's interrupt controller: KVM's in-kernel GICv3 (distributor and one
 * redistributor per vCPU) with an ITS, which turns MSI writes into LPIs by device and event ID.
 * The architected timer needs nothing here: its PPIs are the vGIC's. Created before the vCPUs,
 * initialised once they all exist (KVM requires both orders).
 *
 * @module
 */
import type { VmFd } from "../../../ffi/kvm_fds.ts";
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_DEV_TYPE_ARM_VGIC_ITS,
  KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_VGIC_ITS_ADDR_TYPE,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from "../../../ffi/kvm_arm64.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import { ENODEV } from "../../../ffi/errno.ts";
import { KvmUnavailableError } from "../../../ffi/kvm_fds.ts";
import { GIC_NR_IRQS } from "./interrupts.ts";
import { GIC_DIST, GIC_ITS, GIC_REDIST_START } from "./memory_map.ts";

export function createGic(vm: VmFd): () => void {
  let gic;
  try {
    gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === ENODEV) {
      throw new KvmUnavailableError(
        "this host's KVM cannot emulate a GICv3 (its own interrupt controller is not a GICv3)",
      );
    }
    throw e;
  }
  gic.setAttr(
    "vGIC distributor",
    KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_VGIC_V3_ADDR_TYPE_DIST,
    GIC_DIST.gpa,
  );
  // One base; each vCPU's redistributor follows the previous one (memory_map.ts leaves room).
  gic.setAttr(
    "vGIC redistributors",
    KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_VGIC_V3_ADDR_TYPE_REDIST,
    GIC_REDIST_START,
  );
  gic.setAttr("vGIC interrupt count", KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, GIC_NR_IRQS);
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
  its.setAttr("vGIC ITS", KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, GIC_ITS.gpa);
  return () => {
    gic.setAttr("vGIC init", KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    its.setAttr("vGIC ITS init", KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  };
}
