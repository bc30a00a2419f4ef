/**
 * A PC's interrupt wiring as KVM emulates it: the in-kernel PIC pair, IOAPIC and local APICs
 * (KVM_CREATE_IRQCHIP), the PIT (KVM_CREATE_PIT2), and which GSI each line is. GSIs 0-15 are the
 * ISA IRQs, on both PICs and the IOAPIC; IOAPIC pins 16-23 take the PCI slots' INTx#; MSIs take
 * GSIs from 24 up. The facts live here; src/machine/ asks for them through the platform.
 *
 * @module
 */
import type { VmFd } from "../../../ffi/kvm_fds.ts";
import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
} from "../../../ffi/kvm_irq_structs.ts";
import { KVM_PIT_SPEAKER_DUMMY } from "../../../ffi/kvm_vm_structs.ts";
import type { IrqLine } from "../../bus/interrupt.ts";
import type { IrqchipRoute } from "../platform.ts";

export const IOAPIC_PINS = 24;
export const ISA_IRQS = 16;
/** The first GSI past the IOAPIC's pins: where MSI routes start. */
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** IOAPIC pins the PCI slots' INTx# share (16-23). */
const PCI_INTX_FIRST_PIN = ISA_IRQS;
const PCI_INTX_PINS = IOAPIC_PINS - ISA_IRQS;

/** Three pages for the TSS and one for the identity map, just below the BIOS ROM at 4 GiB,
 * inside the MMIO hole so they never collide with RAM (the addresses kvmtool and
 * Firecracker use as well). */
export const TSS_GPA = 0xfffb_d000;
export const IDENTITY_MAP_GPA = 0xfffb_c000;

/** What KVM must offer for this: HLT in the kernel, the TSS and identity map (Intel), CPUID,
 * the PIT. */
export const X86_REQUIRED_CAPS = [
  "HLT",
  "SET_TSS_ADDR",
  "EXT_CPUID",
  "PIT2",
  "SET_IDENTITY_MAP_ADDR",
] as const;

/**
 * The routes KVM sets up by itself, which a VMM's KVM_SET_GSI_ROUTING must repeat (it replaces
 * the whole table): ISA IRQs on their PIC (master for 0-7, slave for 8-15) and the IOAPIC, then
 * pins 16-23 on the IOAPIC only. 40 entries.
 */
export const DEFAULT_GSI_ROUTES: readonly IrqchipRoute[] = Object.freeze(
  Array.from({ length: IOAPIC_PINS }, (_, gsi) => {
    const ioapic = { gsi, chip: KVM_IRQCHIP_IOAPIC, pin: gsi };
    if (gsi >= ISA_IRQS) return [ioapic];
    const pic = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
    return [{ gsi, chip: pic, pin: gsi % 8 }, ioapic];
  }).flat().map((r) => Object.freeze(r)),
);

/** IOAPIC pins 16-23 take the PCI slots' INTx# in turn (pins 0-15 are the ISA IRQs), the
 * usual swizzle: INTB# of a slot is INTA# of the next. Slots more than 8 apart share a pin,
 * which a level-triggered line allows, though with one KVM_IRQ_LINE source per pin a shared
 * line is only as good as its last writer. */
export function intxPin(slot: number, pin = 1): number {
  return PCI_INTX_FIRST_PIN + ((slot - 1 + pin - 1) % PCI_INTX_PINS);
}

/** An ISA interrupt line (GSI 0-15) as a device sees it. */
export function isaLine(irq: (gsi: number, high: boolean) => void, gsi: number): IrqLine {
  return { setLevel: (high) => irq(gsi, high) };
}

/**
 * The in-kernel PIC/IOAPIC/LAPIC and PIT, and the TSS and identity-map pages KVM needs on Intel
 * hosts, before any vCPU exists.
 */
export function createPcIrqchip(vm: VmFd): () => void {
  vm.setTssAddr(TSS_GPA);
  vm.setIdentityMapAddr(IDENTITY_MAP_GPA);
  vm.createIrqchip();
  // A dummy speaker port (0x61) keeps Linux's PIT calibration inside the kernel.
  vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
  // Nothing to do once the vCPUs exist: each LAPIC comes with its vCPU.
  return () => {};
}
