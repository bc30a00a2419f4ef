import { equal } from "../../assert.ts";
import { KvmCpuid2 } from "../../../ffi/kvm_vm_structs.ts";
import { patchCpuidForVcpu, physAddrBits } from "../../../src/arch/x86_64/cpuid.ts";

/** Entries (function, ebx, ecx, edx) laid out as KVM_GET_SUPPORTED_CPUID would return them. */
function cpuid(entries: Array<[number, number, number, number]>): KvmCpuid2 {
  const c = new KvmCpuid2(entries.length);
  const dv = new DataView(c.bytes.buffer, c.bytes.byteOffset);
  entries.forEach(([fn, ebx, ecx, edx], i) => {
    const at = 8 + 40 * i; // struct kvm_cpuid2 header, then kvm_cpuid_entry2 of 40 bytes
    dv.setUint32(at, fn, true);
    c.setReg(i, "ebx", ebx);
    c.setReg(i, "ecx", ecx);
    c.setReg(i, "edx", edx);
  });
  return c;
}

Deno.test("cpuid: leaf 1 gets the vCPU's APIC id and the hypervisor bit; topology leaves the x2APIC id", () => {
  const c = cpuid([[0x1, 0x0801_0800, 0x7ed8_320b, 0x178b_fbff], [0xb, 0, 0, 0], [0x1f, 0, 0, 0]]);
  patchCpuidForVcpu(c, 5);
  equal(c.reg(0, "ebx"), 0x0501_0800, "APIC id in EBX[31:24], the rest kept");
  equal(c.reg(0, "ecx"), 0xfed8_320b, "ECX bit 31: Linux then finds KVM's leaves (kvm-clock)");
  equal(c.reg(0, "edx"), 0x178b_fbff);
  equal(c.reg(1, "edx"), 5);
  equal(c.reg(2, "edx"), 5);
});

Deno.test("cpuid: the TSC-deadline timer bit only when KVM emulates it", () => {
  const c = cpuid([[0x1, 0, 0x0000_0001, 0]]);
  patchCpuidForVcpu(c, 0);
  equal(c.reg(0, "ecx"), 0x8000_0001, "hypervisor bit, no deadline timer by default");
  patchCpuidForVcpu(c, 0, { tscDeadline: true });
  equal(c.reg(0, "ecx"), 0x8100_0001);
});

Deno.test("cpuid: the guest's physical-address width is leaf 0x80000008 EAX[7:0], else 36", () => {
  const c = cpuid([[0x1, 0, 0, 0], [0x8000_0008, 0, 0, 0]]);
  c.setReg(1, "eax", 0x0000_3028); // 48 linear bits, 40 physical
  equal(physAddrBits(c), 40);
  equal(physAddrBits(cpuid([[0x1, 0, 0, 0]])), 36, "no leaf: 36 (Intel SDM, with PAE)");
});
