/**
 * Creating a KVM VM: the capabilities we rely on (the platform's among them), the platform's
 * in-kernel interrupt controller (on a PC: PIC/IOAPIC/LAPIC and PIT, with the TSS and
 * identity-map pages KVM needs on Intel hosts), and guest RAM as one anonymous mapping
 * registered as one memory slot per RAM region of the platform's layout.
 */
import { Kvm, VmFd } from "../../ffi/kvm_fds.ts";
import { mmapAnonymous } from "../../ffi/libc.ts";
import type { KVM_CAP } from "../../ffi/kvm.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { platform } from "./arch_boot.ts";

/** What every machine needs of KVM, then what its platform needs. */
export const REQUIRED_CAPS: readonly (keyof typeof KVM_CAP)[] = [
  "IRQCHIP",
  "USER_MEMORY",
  ...platform.requiredCaps,
];

/** The platform's memory map. */
export type Layout = ReturnType<typeof platform.memoryLayout>;

/** Guest RAM, mapped but not yet given to a VM. */
export interface GuestRam {
  layout: Layout;
  memory: GuestMemory;
  ramHva: bigint;
}

export interface CreatedVm extends GuestRam {
  kvm: Kvm;
  vm: VmFd;
  /** Call once every vCPU exists and is configured (the platform's irqchip finishes then). */
  irqchipReady: () => void;
}

/**
 * Map guest RAM, apart from creating the VM: machine.ts starts copying the kernel into it (on a
 * pool thread) before KVM is asked for anything, and hands it to createVm afterwards.
 */
export function allocateGuestRam(ramBytes: number): GuestRam {
  const layout = platform.memoryLayout(ramBytes);
  const { hva, buffer } = mmapAnonymous(ramBytes);
  return { layout, memory: new GuestMemory(buffer, layout), ramHva: hva };
}

/**
 * A VM with `ram` (or that many bytes of new RAM) as its memory.
 * `DENOVMM_KVM_DEVICE` overrides the device path (for tests of a missing or unusable one).
 */
export function createVm(
  ram: GuestRam | number,
  cpus: number,
  kvmPath = Deno.env.get("DENOVMM_KVM_DEVICE") ?? "/dev/kvm",
): CreatedVm {
  const kvm = Kvm.open([...REQUIRED_CAPS], kvmPath);
  const vm = kvm.createVm();
  const irqchipReady = platform.createIrqchip(vm, cpus);
  const guest = typeof ram === "number" ? allocateGuestRam(ram) : ram;
  guest.layout.regions.forEach((r, slot) => {
    vm.setUserMemoryRegion(slot, r.gpa, r.size, guest.ramHva + BigInt(r.hostOffset));
  });
  return { ...guest, kvm, vm, irqchipReady };
}
