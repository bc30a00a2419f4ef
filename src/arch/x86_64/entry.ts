/**
 * Apply a boot's initial vCPU state (a plain description from src/boot, which knows nothing
 * of KVM) to a vCPU through KVM_SET_SREGS and KVM_SET_REGS.
 */
import type { VcpuFd } from "../../../ffi/kvm_fds.ts";
import type { VcpuEntryState } from "./boot/long_mode.ts";

const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr"] as const;

export function applyEntryState(vcpu: VcpuFd, entry: VcpuEntryState): void {
  const sregs = vcpu.getSregs();
  for (const name of SEGMENTS) sregs.setSegment(name, entry[name]);
  sregs.setDtable("gdt", entry.gdt);
  sregs.setDtable("idt", entry.idt);
  sregs.set("cr0", entry.cr0);
  sregs.set("cr3", entry.cr3);
  sregs.set("cr4", entry.cr4);
  sregs.set("efer", entry.efer);
  vcpu.setSregs();

  const regs = vcpu.regs;
  regs.bytes.fill(0);
  regs.set("rip", entry.regs.rip);
  regs.set("rsi", entry.regs.rsi);
  regs.set("rsp", entry.regs.rsp);
  regs.set("rbp", entry.regs.rbp);
  regs.set("rflags", entry.regs.rflags);
  vcpu.setRegs();
}
