/**
 * The CPUID a vCPU sees: what KVM supports (KVM_GET_SUPPORTED_CPUID), with the
 * per-vCPU fields filled in, since KVM leaves the topology to the VMM.
 */
import type { KvmCpuid2 } from "../../../ffi/kvm_vm_structs.ts";

/** Leaf 1: EBX[31:24] is the initial APIC id. */
const LEAF_FEATURES = 0x1;
/**
 * Leaf 1 ECX bit 31, "running under a hypervisor". KVM_GET_SUPPORTED_CPUID leaves it clear
 * (it describes the CPU, not the VM); without it Linux never looks at KVM's own leaves
 * (0x40000000: "KVMKVMKVM" and the paravirtual features), so it has no kvm-clock: it then
 * calibrates the TSC against the PIT, fails, marks the TSC unstable, calibrates a delay loop
 * and keeps time on jiffies, which costs seconds of boot under an emulated CPU.
 */
const CPUID_1_ECX_HYPERVISOR = 1 << 31;
/**
 * Leaf 1 ECX bit 24, the TSC-deadline timer. KVM's in-kernel LAPIC emulates it when
 * KVM_CAP_TSC_DEADLINE_TIMER says so, but KVM_GET_SUPPORTED_CPUID does not report it (the VMM
 * decides). Without it Linux calibrates the LAPIC timer against another clock at every boot.
 */
const CPUID_1_ECX_TSC_DEADLINE = 1 << 24;
/** Leaves 0xB and 0x1F (extended topology): EDX is the x2APIC id for every sub-leaf. */
const LEAF_TOPOLOGY = 0xb;
const LEAF_TOPOLOGY_V2 = 0x1f;

/** Rewrite `cpuid` in place for the vCPU whose APIC id is `apicId`. */
export function patchCpuidForVcpu(
  cpuid: KvmCpuid2,
  apicId: number,
  opts: { tscDeadline?: boolean } = {},
): void {
  for (let i = 0; i < cpuid.nent; i++) {
    const fn = cpuid.function(i);
    if (fn === LEAF_FEATURES) {
      const ebx = cpuid.reg(i, "ebx");
      cpuid.setReg(i, "ebx", ((ebx & 0x00ff_ffff) | (apicId << 24)) >>> 0);
      const deadline = opts.tscDeadline ? CPUID_1_ECX_TSC_DEADLINE : 0;
      cpuid.setReg(i, "ecx", (cpuid.reg(i, "ecx") | CPUID_1_ECX_HYPERVISOR | deadline) >>> 0);
    } else if (fn === LEAF_TOPOLOGY || fn === LEAF_TOPOLOGY_V2) {
      cpuid.setReg(i, "edx", apicId);
    }
  }
}

/** Leaf 0x80000008: EAX[7:0] is the physical-address width (MAXPHYADDR). */
const LEAF_ADDRESS_SIZES = 0x8000_0008;
/** MAXPHYADDR when leaf 0x80000008 is absent (Intel SDM vol. 3A §4.1.4: 36 with PAE). */
const DEFAULT_PHYS_ADDR_BITS = 36;

/**
 * The guest's physical-address width: what the CPUID it is given says in leaf 0x80000008
 * (KVM passes the host's on, less what memory encryption takes). No guest address above
 * 2^bits is reachable, so the 64-bit PCI window ends there (src/arch/x86_64/memory_map.ts).
 */
export function physAddrBits(cpuid: KvmCpuid2): number {
  for (let i = 0; i < cpuid.nent; i++) {
    if (cpuid.function(i) !== LEAF_ADDRESS_SIZES) continue;
    const bits = cpuid.reg(i, "eax") & 0xff;
    return bits === 0 ? DEFAULT_PHYS_ADDR_BITS : bits;
  }
  return DEFAULT_PHYS_ADDR_BITS;
}
