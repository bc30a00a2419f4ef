/**
 * The structs of KVM's eventfd and interrupt-routing ioctls: KVM_IRQFD, KVM_IOEVENTFD,
 * KVM_SET_GSI_ROUTING (struct kvm_irq_routing and its entries).
 */
import { StructView } from "./struct_view.ts";

/** struct kvm_irqfd: an eventfd whose signal raises a GSI. */
export const KVM_IRQFD_OFFSETS = { fd: 0, gsi: 4, flags: 8, resamplefd: 12 } as const;
export const KVM_IRQFD_SIZE = 32;
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;

export class KvmIrqfd extends StructView {
  constructor() {
    super(KVM_IRQFD_SIZE);
  }
  set(fd: number, gsi: number, flags: number, resamplefd = 0): this {
    this.bytes.fill(0);
    this.setU32(KVM_IRQFD_OFFSETS.fd, fd);
    this.setU32(KVM_IRQFD_OFFSETS.gsi, gsi);
    this.setU32(KVM_IRQFD_OFFSETS.flags, flags);
    this.setU32(KVM_IRQFD_OFFSETS.resamplefd, resamplefd);
    return this;
  }
}

/** struct kvm_ioeventfd: a guest write at an address signals an eventfd, without an exit. */
export const KVM_IOEVENTFD_OFFSETS = { datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24 } as const;
export const KVM_IOEVENTFD_SIZE = 64;
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

export class KvmIoeventfd extends StructView {
  constructor() {
    super(KVM_IOEVENTFD_SIZE);
  }
  set(addr: number, len: number, fd: number, flags: number, datamatch = 0): this {
    this.bytes.fill(0);
    this.setU64n(KVM_IOEVENTFD_OFFSETS.datamatch, datamatch);
    this.setU64n(KVM_IOEVENTFD_OFFSETS.addr, addr);
    this.setU32(KVM_IOEVENTFD_OFFSETS.len, len);
    this.setU32(KVM_IOEVENTFD_OFFSETS.fd, fd);
    this.setU32(KVM_IOEVENTFD_OFFSETS.flags, flags);
    return this;
  }
}

/** struct kvm_irq_routing header, then struct kvm_irq_routing_entry[nr]. */
export const KVM_IRQ_ROUTING_HEADER_SIZE = 8;
export const KVM_IRQ_ROUTING_ENTRY_OFFSETS = {
  gsi: 0,
  type: 4,
  flags: 8,
  "u.irqchip.irqchip": 16,
  "u.irqchip.pin": 20,
  "u.msi.address_lo": 16,
  "u.msi.address_hi": 20,
  "u.msi.data": 24,
  "u.msi.devid": 28,
} as const;
export const KVM_IRQ_ROUTING_ENTRY_SIZE = 48;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
/** kvm_irq_routing_entry.flags: the MSI route's devid is valid. */
export const KVM_MSI_VALID_DEVID = 1 << 0;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

/** A GSI routing table with room for `capacity` entries (KVM_SET_GSI_ROUTING replaces all). */
export class KvmIrqRouting extends StructView {
  constructor(readonly capacity: number) {
    super(KVM_IRQ_ROUTING_HEADER_SIZE + capacity * KVM_IRQ_ROUTING_ENTRY_SIZE);
  }
  set nr(v: number) {
    this.setU32(0, v);
  }
  #at(i: number): number {
    if (i < 0 || i >= this.capacity) throw new RangeError(`routing entry ${i} out of range`);
    return KVM_IRQ_ROUTING_HEADER_SIZE + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
  }
  setIrqchip(i: number, gsi: number, irqchip: number, pin: number): void {
    const at = this.#at(i);
    const O = KVM_IRQ_ROUTING_ENTRY_OFFSETS;
    this.bytes.fill(0, at, at + KVM_IRQ_ROUTING_ENTRY_SIZE);
    this.setU32(at + O.gsi, gsi);
    this.setU32(at + O.type, KVM_IRQ_ROUTING_IRQCHIP);
    this.setU32(at + O["u.irqchip.irqchip"], irqchip);
    this.setU32(at + O["u.irqchip.pin"], pin);
  }
  /** An MSI route; with `devid` it names the sender (KVM_MSI_VALID_DEVID), as an ITS needs. */
  setMsi(
    i: number,
    gsi: number,
    addressLo: number,
    addressHi: number,
    data: number,
    devid?: number,
  ): void {
    const at = this.#at(i);
    const O = KVM_IRQ_ROUTING_ENTRY_OFFSETS;
    this.bytes.fill(0, at, at + KVM_IRQ_ROUTING_ENTRY_SIZE);
    this.setU32(at + O.gsi, gsi);
    this.setU32(at + O.type, KVM_IRQ_ROUTING_MSI);
    this.setU32(at + O["u.msi.address_lo"], addressLo);
    this.setU32(at + O["u.msi.address_hi"], addressHi);
    this.setU32(at + O["u.msi.data"], data);
    if (devid !== undefined) {
      this.setU32(at + O.flags, KVM_MSI_VALID_DEVID);
      this.setU32(at + O["u.msi.devid"], devid);
    }
  }
}
