/** The register dump printed when a guest dies: enough to find where and in which mode. */
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import { exitReasonName, KVM_EXIT } from "../../ffi/kvm_run.ts";

const hex = (v: bigint) => "0x" + v.toString(16).padStart(16, "0");

export function registerDump(vcpu: VcpuFd): string {
  const reason = vcpu.run.exit_reason;
  let why = exitReasonName(reason);
  if (reason === KVM_EXIT.INTERNAL_ERROR) why += ` (suberror ${vcpu.run.internal_suberror})`;
  const lines = [`exit reason: ${why}`];
  try {
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    lines.push(
      `rip ${hex(r.get("rip"))}  rsp ${hex(r.get("rsp"))}  rflags ${hex(r.get("rflags"))}`,
      `rax ${hex(r.get("rax"))}  rbx ${hex(r.get("rbx"))}  rcx ${hex(r.get("rcx"))}`,
      `cr0 ${hex(s.get("cr0"))}  cr3 ${hex(s.get("cr3"))}  cr4 ${hex(s.get("cr4"))}`,
      `efer ${hex(s.get("efer"))}  cr2 ${hex(s.get("cr2"))}  cs ${s.getSegment("cs").selector}`,
    );
  } catch (e) {
    lines.push(`(registers unavailable: ${(e as Error).message})`);
  }
  return lines.join("\n");
}
