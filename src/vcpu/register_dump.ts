/**
 * The dump printed when a guest dies: the exit reason, then the registers that say where and in
 * which mode, as the architecture reads them (src/arch/<name>/registers.ts).
 */
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import { exitReasonName, KVM_EXIT } from "../../ffi/kvm_run.ts";

export function registerDump(vcpu: VcpuFd, registers?: (vcpu: VcpuFd) => string[]): string {
  const reason = vcpu.run.exit_reason;
  let why = exitReasonName(reason);
  if (reason === KVM_EXIT.INTERNAL_ERROR) why += ` (suberror ${vcpu.run.internal_suberror})`;
  const lines = [`exit reason: ${why}`];
  if (registers) {
    try {
      lines.push(...registers(vcpu));
    } catch (e) {
      lines.push(`(registers unavailable: ${(e as Error).message})`);
    }
  }
  return lines.join("\n");
}
