/**
 * Creating a KVM VM for an x86-64 PC: the capabilities we rely on, the TSS and identity-map
 * pages KVM needs on Intel hosts, the in-kernel PIC/IOAPIC/LAPIC and PIT, and guest RAM as
 * one anonymous mapping registered as one memory slot per RAM region of the layout.
 */
import { Kvm, VmFd } from "../../ffi/kvm_fds.ts";
import { mmapAnonymous } from "../../ffi/libc.ts";
import { KVM_PIT_SPEAKER_DUMMY } from "../../ffi/kvm_vm_structs.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { type MemoryLayout, memoryLayout } from "../memory/layout.ts";

/** Three pages for the TSS and one for the identity map, just below the BIOS ROM at 4 GiB,
 * inside the MMIO hole so they never collide with RAM (the addresses kvmtool and
 * Firecracker use as well). */
export const TSS_GPA = 0xfffb_d000;
export const IDENTITY_MAP_GPA = 0xfffb_c000;

export const REQUIRED_CAPS = [
  "IRQCHIP",
  "HLT",
  "USER_MEMORY",
  "SET_TSS_ADDR",
  "EXT_CPUID",
  "PIT2",
  "SET_IDENTITY_MAP_ADDR",
] as const;

/** Guest RAM, mapped but not yet given to a VM. */
export interface GuestRam {
  layout: MemoryLayout;
  memory: GuestMemory;
  ramHva: bigint;
}

export interface CreatedVm extends GuestRam {
  kvm: Kvm;
  vm: VmFd;
}

/**
 * Map guest RAM, apart from creating the VM: machine.ts starts copying the kernel into it (on a
 * pool thread) before KVM is asked for anything, and hands it to createVm afterwards.
 */
export function allocateGuestRam(ramBytes: number): GuestRam {
  const layout = memoryLayout(ramBytes);
  const { hva, buffer } = mmapAnonymous(ramBytes);
  return { layout, memory: new GuestMemory(buffer, layout), ramHva: hva };
}

/**
 * A VM with `ram` (or that many bytes of new RAM) as its memory.
 * `DENOVMM_KVM_DEVICE` overrides the device path (for tests of a missing or unusable one).
 */
export function createVm(
  ram: GuestRam | number,
  kvmPath = Deno.env.get("DENOVMM_KVM_DEVICE") ?? "/dev/kvm",
): CreatedVm {
  const kvm = Kvm.open([...REQUIRED_CAPS], kvmPath);
  const vm = kvm.createVm();
  vm.setTssAddr(TSS_GPA);
  vm.setIdentityMapAddr(IDENTITY_MAP_GPA);
  vm.createIrqchip();
  // A dummy speaker port (0x61) keeps Linux's PIT calibration inside the kernel.
  vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
  const guest = typeof ram === "number" ? allocateGuestRam(ram) : ram;
  guest.layout.regions.forEach((r, slot) => {
    vm.setUserMemoryRegion(slot, r.gpa, r.size, guest.ramHva + BigInt(r.hostOffset));
  });
  return { ...guest, kvm, vm };
}
