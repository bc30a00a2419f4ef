/** A dead arm64 vCPU's registers: where it was (pc, sp, lr), its mode, and its last exception. */
import type { VcpuFd } from "../../../ffi/kvm_fds.ts";
import {
  ARM64_REG_ELR_EL1,
  ARM64_REG_ESR_EL1,
  ARM64_REG_FAR_EL1,
  ARM64_REG_PC,
  ARM64_REG_PSTATE,
  ARM64_REG_SP,
  armCoreRegX,
} from "../../../ffi/kvm_arm64.ts";

const hex = (v: bigint) => "0x" + v.toString(16).padStart(16, "0");

export function arm64Registers(vcpu: VcpuFd): string[] {
  const r = (id: bigint) => hex(vcpu.getOneReg(id));
  return [
    `pc ${r(ARM64_REG_PC)}  sp ${r(ARM64_REG_SP)}  pstate ${r(ARM64_REG_PSTATE)}`,
    `x0 ${r(armCoreRegX(0))}  x1 ${r(armCoreRegX(1))}  lr ${r(armCoreRegX(30))}`,
    `elr_el1 ${r(ARM64_REG_ELR_EL1)}  esr_el1 ${r(ARM64_REG_ESR_EL1)}  far_el1 ${
      r(ARM64_REG_FAR_EL1)
    }`,
  ];
}
