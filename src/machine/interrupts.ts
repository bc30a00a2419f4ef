/**
 * The device interrupt vocabulary (src/bus/interrupt.ts) as KVM delivers it. A line is
 * KVM_IRQ_LINE on an interrupt controller pin. A function's MSI or MSI-X vectors: per vector an irqfd (an eventfd
 * made at plan time) and, while the vector is deliverable, a GSI whose route carries its
 * message (src/machine/gsi_router.ts). The `MsiVectorGroup` every device and capability talks
 * to (src/bus/interrupt.ts); every thread attaches its own over the same plan.
 *
 * @example
 * ```ts
 * const plan = planMsiVectors(3, "virtio-rng", 2);         // main thread
 * const group = new MsiVectors(plan, new GsiRouter(routerState, vm)); // any thread
 * group.route(0, 1, () => ({ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }));
 * group.trigger(0); // writes vector 0's irqfd: KVM injects 0x41
 * ```
 */
import { EventFd } from "../../ffi/eventfd.ts";
import type { VmFd } from "../../ffi/kvm_fds.ts";
import type { IrqLine, MsiMessage, MsiVectorGroup, MsiVectorsPlan } from "../bus/interrupt.ts";
import type { GsiRouter } from "./gsi_router.ts";
import { wiring } from "./arch.ts";

/** A level-triggered line on the interrupt controller's pin `gsi` (KVM_IRQ_LINE). */
export function kvmLine(vm: Pick<VmFd, "irqLine">, gsi: number): IrqLine {
  const irq = wiring.irqLineArg(gsi);
  return { setLevel: (high) => vm.irqLine(irq, high) };
}

/** How a thread's devices reach the interrupt controller (KVM here; fakes in tests). */
export interface ThreadInterrupts {
  /** This thread's view of a function's vector group. */
  vectors(plan: MsiVectorsPlan): MsiVectorGroup;
  /** The line on pin `gsi`. */
  line(gsi: number): IrqLine;
}

/** A thread's interrupts through KVM: lines by KVM_IRQ_LINE, vectors by irqfds and routes. */
export function kvmInterrupts(vm: Pick<VmFd, "irqLine">, router: GsiRouter): ThreadInterrupts {
  return {
    vectors: (plan) => new MsiVectors(plan, router),
    line: (gsi) => kvmLine(vm, gsi),
  };
}

/** `count` fresh eventfds (their numbers), for plans handed to every thread. */
export function eventfds(count: number): number[] {
  return Array.from({ length: count }, () => EventFd.create().fd);
}

/**
 * Main thread: `vectors` fresh irqfds, none routed yet (`routes`: a GSI per vector, 0 none), for
 * the function in `slot` of bus 0.
 */
export function planMsiVectors(vectors: number, name: string, slot: number): MsiVectorsPlan {
  return {
    irqFds: eventfds(vectors),
    routes: new SharedArrayBuffer(4 * Math.max(vectors, 1)),
    name,
    devid: slot << 3,
  };
}

export class MsiVectors implements MsiVectorGroup {
  readonly #gsis: Int32Array;
  readonly #irq: EventFd[];

  constructor(private readonly plan: MsiVectorsPlan, private readonly router: GsiRouter) {
    this.#gsis = new Int32Array(plan.routes);
    this.#irq = plan.irqFds.map((fd) => new EventFd(fd));
  }

  /** The GSI routed for `vector` now, 0 for none. */
  gsi(vector: number): number {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.#gsis.length) return 0;
    return Atomics.load(this.#gsis, vector);
  }

  trigger(vector: number): void {
    this.#irq[vector]?.signal();
  }

  /** See `GsiRouter.update`; vectors [first, end) clamped to this function's. */
  route(first: number, end: number, message: (vector: number) => MsiMessage | undefined): boolean {
    const lo = Math.max(0, first), hi = Math.min(end, this.#irq.length);
    if (lo >= hi) return true;
    const p = this.plan;
    return this.router.update(this.#gsis, p.irqFds, p.name, lo, hi, message, p.devid);
  }

  release(): void {
    this.router.release(this.#gsis, this.plan.irqFds, this.plan.name);
  }
}
