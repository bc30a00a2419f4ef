/** A dead x86 vCPU's registers: where it was (rip, rsp), in which mode (cr0/cr4/efer, cs). */
import type { VcpuFd } from "../../../ffi/kvm_fds.ts";

const hex = (v: bigint) => "0x" + v.toString(16).padStart(16, "0");

export function x86Registers(vcpu: VcpuFd): string[] {
  const r = vcpu.getRegs();
  const s = vcpu.getSregs();
  return [
    `rip ${hex(r.get("rip"))}  rsp ${hex(r.get("rsp"))}  rflags ${hex(r.get("rflags"))}`,
    `rax ${hex(r.get("rax"))}  rbx ${hex(r.get("rbx"))}  rcx ${hex(r.get("rcx"))}`,
    `cr0 ${hex(s.get("cr0"))}  cr3 ${hex(s.get("cr3"))}  cr4 ${hex(s.get("cr4"))}`,
    `efer ${hex(s.get("efer"))}  cr2 ${hex(s.get("cr2"))}  cs ${s.getSegment("cs").selector}`,
  ];
}
