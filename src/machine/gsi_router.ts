/**
 * The VM's GSI routing table, shared by every thread. KVM_SET_GSI_ROUTING replaces the whole
 * table, so the table lives in one SharedArrayBuffer: any thread (a vCPU programming an MSI-X
 * entry, the main thread at set-up) changes an entry and re-submits the lot under a lock.
 *
 * GSIs 0-23 keep KVM's default routes (ISA IRQs 0-15 to both PICs and the IOAPIC, 16-23 to
 * the IOAPIC only); MSI routes get GSIs from 24 up, one per MSI-X vector, wired to irqfds.
 */
import type { VmFd } from "../../ffi/kvm_fds.ts";
import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  KvmIrqRouting,
} from "../../ffi/kvm_irq_structs.ts";

export const IOAPIC_PINS = 24;
const ISA_IRQS = 16;
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** The most MSI routes one VM gets; KVM allows 4096 GSIs in all on x86. */
export const MAX_MSI_ROUTES = 2048;

// SAB layout (Int32): [lock, allocated, then per MSI route: valid, address_lo, address_hi, data].
const LOCK = 0;
const ALLOCATED = 1;
const HEADER = 2;
const ROUTE_WORDS = 4;
const DEFAULT_ENTRIES = ISA_IRQS * 2 + (IOAPIC_PINS - ISA_IRQS);

export class GsiRouter {
  readonly #s: Int32Array;
  readonly #routing = new KvmIrqRouting(DEFAULT_ENTRIES + MAX_MSI_ROUTES);

  static createState(): SharedArrayBuffer {
    return new SharedArrayBuffer((HEADER + MAX_MSI_ROUTES * ROUTE_WORDS) * 4);
  }

  constructor(state: SharedArrayBuffer, private readonly vm: Pick<VmFd, "setGsiRouting">) {
    this.#s = new Int32Array(state);
  }

  /** A fresh GSI for an MSI route (no route until `setMsi`). */
  allocate(): number {
    this.#lock();
    try {
      const n = this.#s[ALLOCATED];
      if (n >= MAX_MSI_ROUTES) throw new RangeError(`more than ${MAX_MSI_ROUTES} MSI routes`);
      this.#s[ALLOCATED] = n + 1;
      return FIRST_MSI_GSI + n;
    } finally {
      this.#unlock();
    }
  }

  /** Route `gsi` as an MSI with this message, or remove its route (`undefined`). */
  setMsi(gsi: number, message: { address: number; data: number } | undefined): void {
    const i = gsi - FIRST_MSI_GSI;
    if (!Number.isInteger(i) || i < 0 || i >= MAX_MSI_ROUTES) return;
    this.#lock();
    try {
      const at = HEADER + i * ROUTE_WORDS;
      const s = this.#s;
      s[at] = message ? 1 : 0;
      s[at + 1] = message ? message.address % 0x1_0000_0000 : 0;
      s[at + 2] = message ? Math.floor(message.address / 0x1_0000_0000) : 0;
      s[at + 3] = message ? message.data : 0;
      this.#commit();
    } finally {
      this.#unlock();
    }
  }

  /** Submit the default routes plus every valid MSI route; call with the lock held. */
  #commit(): void {
    const r = this.#routing;
    let n = 0;
    for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
      if (gsi < ISA_IRQS) {
        const pic = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        r.setIrqchip(n++, gsi, pic, gsi % 8);
      }
      r.setIrqchip(n++, gsi, KVM_IRQCHIP_IOAPIC, gsi);
    }
    const s = this.#s;
    for (let i = 0; i < s[ALLOCATED]; i++) {
      const at = HEADER + i * ROUTE_WORDS;
      if (s[at] === 1) {
        r.setMsi(n++, FIRST_MSI_GSI + i, s[at + 1] >>> 0, s[at + 2] >>> 0, s[at + 3] >>> 0);
      }
    }
    r.nr = n;
    this.vm.setGsiRouting(r);
  }

  #lock(): void {
    while (Atomics.compareExchange(this.#s, LOCK, 0, 1) !== 0) { /* short critical sections */ }
  }
  #unlock(): void {
    Atomics.store(this.#s, LOCK, 0);
  }
}
