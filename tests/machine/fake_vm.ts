// A VM for the machine's PCI side without /dev/kvm: it keeps what KVM would keep (memory
// slots, ioeventfds, irqfds, the GSI routing table) and refuses what KVM refuses, with KVM's
// errno: a slot over another (EEXIST), a second ioeventfd at one address (EEXIST), removing
// one that is not there (ENOENT), a routing table over the limit or a GSI past it (EINVAL).
// The throwing calls throw SyscallError as VmFd's do.
import { SyscallError } from "../../ffi/libc.ts";
import {
  KVM_IRQ_ROUTING_ENTRY_OFFSETS as O,
  KVM_IRQ_ROUTING_ENTRY_SIZE,
  KVM_IRQ_ROUTING_HEADER_SIZE,
  KVM_IRQ_ROUTING_MSI,
  type KvmIrqRouting,
} from "../../ffi/kvm_irq_structs.ts";
import type { PciVm } from "../../src/machine/pci_devices.ts";
import type { IrqfdOptions } from "../../ffi/kvm_fds.ts";
import { EEXIST, EINVAL, ENOENT } from "../../ffi/errno.ts";

const KVM_CAP_IRQ_ROUTING = 25;

export interface MsiRoute {
  gsi: number;
  addressLo: number;
  addressHi: number;
  data: number;
}

export class FakeVm implements PciVm {
  readonly slots = new Map<number, { gpa: number; size: number }>();
  /** "addr/len" → fd. */
  readonly ioeventfds = new Map<string, number>();
  /** fd → GSI. */
  readonly irqfds = new Map<number, number>();
  /** fd → its resample fd, for the level-triggered irqfds. */
  readonly resampleFds = new Map<number, number>();
  /** The MSI routes of the last table KVM took, and how many tables it took. */
  msiRoutes: MsiRoute[] = [];
  routingEntries = 0;
  commits = 0;
  /** Fail the next routing commits with this errno (0: none). */
  failRouting = 0;

  constructor(readonly maxRoutes = 4096) {}

  checkExtension(cap: number): number {
    return cap === KVM_CAP_IRQ_ROUTING ? this.maxRoutes : 1;
  }

  trySetUserMemoryRegion(slot: number, gpa: number, size: number, _hva: bigint): number {
    if (size === 0) return this.slots.delete(slot) ? 0 : EINVAL;
    for (const [id, s] of this.slots) {
      if (id !== slot && gpa < s.gpa + s.size && s.gpa < gpa + size) return EEXIST;
    }
    this.slots.set(slot, { gpa, size });
    return 0;
  }

  tryIoeventfd(addr: number, len: number, fd: number, opts: { deassign?: boolean }): number {
    const key = `${addr.toString(16)}/${len}`;
    if (opts.deassign) {
      if (this.ioeventfds.get(key) !== fd) return ENOENT;
      this.ioeventfds.delete(key);
      return 0;
    }
    if (this.ioeventfds.has(key)) return EEXIST;
    this.ioeventfds.set(key, fd);
    return 0;
  }

  tryIrqfd(fd: number, gsi: number, opts: IrqfdOptions = {}): number {
    if (opts.deassign) {
      if (this.irqfds.get(fd) !== gsi) return ENOENT;
      this.irqfds.delete(fd);
      this.resampleFds.delete(fd);
      return 0;
    }
    if (this.irqfds.has(fd)) return EEXIST;
    this.irqfds.set(fd, gsi);
    if (opts.resampleFd !== undefined) this.resampleFds.set(fd, opts.resampleFd);
    return 0;
  }

  trySetGsiRouting(routing: KvmIrqRouting): number {
    if (this.failRouting !== 0) return this.failRouting;
    const dv = new DataView(routing.bytes.buffer, routing.bytes.byteOffset);
    const nr = dv.getUint32(0, true);
    if (nr > this.maxRoutes) return EINVAL;
    const msi: MsiRoute[] = [];
    for (let i = 0; i < nr; i++) {
      const at = KVM_IRQ_ROUTING_HEADER_SIZE + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
      const gsi = dv.getUint32(at + O.gsi, true);
      if (gsi >= this.maxRoutes) return EINVAL;
      if (dv.getUint32(at + O.type, true) === KVM_IRQ_ROUTING_MSI) {
        msi.push({
          gsi,
          addressLo: dv.getUint32(at + O["u.msi.address_lo"], true),
          addressHi: dv.getUint32(at + O["u.msi.address_hi"], true),
          data: dv.getUint32(at + O["u.msi.data"], true),
        });
      }
    }
    this.msiRoutes = msi;
    this.routingEntries = nr;
    this.commits++;
    return 0;
  }

  setGsiRouting(routing: KvmIrqRouting): void {
    const e = this.trySetGsiRouting(routing);
    if (e !== 0) throw new SyscallError("KVM_SET_GSI_ROUTING", e);
  }

  setUserMemoryRegion(slot: number, gpa: number, size: number, hva: bigint): void {
    const e = this.trySetUserMemoryRegion(slot, gpa, size, hva);
    if (e !== 0) throw new SyscallError("KVM_SET_USER_MEMORY_REGION", e);
  }

  ioeventfd(addr: number, len: number, fd: number, opts: { deassign?: boolean }): void {
    const e = this.tryIoeventfd(addr, len, fd, opts);
    if (e !== 0) throw new SyscallError("KVM_IOEVENTFD", e);
  }

  irqfd(fd: number, gsi: number, opts: IrqfdOptions = {}): void {
    const e = this.tryIrqfd(fd, gsi, opts);
    if (e !== 0) throw new SyscallError("KVM_IRQFD", e);
  }

  irqLine(_irq: number, _level: boolean): void {}

  /** The GSI an irqfd is bound to, if any. */
  gsiOf(fd: number): number | undefined {
    return this.irqfds.get(fd);
  }
}
