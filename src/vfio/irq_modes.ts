/**
 * Which of its interrupt mechanisms a passed-through device uses: INTx, MSI or MSI-X. VFIO lets
 * one IRQ index be on at a time, so a guest that enables MSI-X (or MSI) must first have INTx
 * turned off, and one that disables it gets INTx back, as on real hardware where the enable
 * bits decide. Every vCPU thread can write the enable bits, so the state is shared and the
 * switch is done under a lock.
 *
 * The guest's wish is two values (MSI-X enable bit, MSI vectors enabled); the mode follows:
 * MSI-X if enabled, else MSI if enabled, else INTx if the device has it (PCI 3.0 §6.8: a
 * function with both enabled is undefined; MSI-X wins, as in Linux's own preference).
 */

import { type CauseLog, rateLimitedLog } from "../log.ts";
import { errnoName } from "../../ffi/libc.ts";
import { spinLock, spinUnlock } from "../spin_lock.ts";

/** VFIO's IRQ indexes for a PCI device: INTx 0, MSI 1, MSI-X 2; NONE is ours. */
export const IRQ_NONE = -1;
export const IRQ_INTX = 0;
export const IRQ_MSI = 1;
export const IRQ_MSIX = 2;
const NAMES = ["INTx", "MSI", "MSI-X"];

/**
 * The VFIO side effects, so the switching logic runs in tests without a device. Each returns
 * 0 or the errno of its failed VFIO_DEVICE_SET_IRQS.
 */
export interface VfioIrqControl {
  /** VFIO_DEVICE_SET_IRQS trigger eventfds for an index (one per vector), or off with []. */
  setEventfds(index: number, fds: number[]): number;
  /** INTx: the eventfd that unmasks the line (KVM's resampler signals it on EOI). */
  setIntxUnmask(fd: number): number;
}

export interface VfioIrqFds {
  intx?: { triggerFd: number; resampleFd: number };
  msi: number[];
  msix: number[];
}

// SAB layout (Int32): lock, current index, current vector count, wished MSI-X, wished MSI.
const LOCK = 0;
const MODE = 1;
const VECTORS = 2;
const WANT_MSIX = 3;
const WANT_MSI = 4;

export class VfioIrqModes {
  readonly #s: Int32Array;

  static createState(): SharedArrayBuffer {
    const s = new Int32Array(new SharedArrayBuffer(5 * 4));
    s[MODE] = IRQ_NONE;
    return s.buffer as SharedArrayBuffer;
  }

  /** `name` (the device's BDF) starts each log line. */
  constructor(
    state: SharedArrayBuffer,
    private readonly fds: VfioIrqFds,
    private readonly control: VfioIrqControl,
    private readonly name = "vfio",
    private readonly log: CauseLog = rateLimitedLog,
  ) {
    this.#s = new Int32Array(state);
  }

  /** The index now on (IRQ_NONE when none) and its vector count. */
  current(): { index: number; vectors: number } {
    return { index: Atomics.load(this.#s, MODE), vectors: Atomics.load(this.#s, VECTORS) };
  }

  /** Machine start: INTx on if the device has it. */
  start(): void {
    this.#update(() => {});
  }

  /**
   * The guest set or cleared the MSI-X Enable bit. Returns false when the host refused to turn
   * MSI-X on: one line is logged, the wish is dropped (the capability should read disabled),
   * and the device is back on MSI or INTx as the guest's other enable bits say.
   */
  msix(on: boolean): boolean {
    return (this.#update((s) => s[WANT_MSIX] = on ? 1 : 0) & (1 << IRQ_MSIX)) === 0;
  }

  /** The guest enabled MSI with `vectors` (or disabled it: 0). False when refused, as `msix`. */
  msi(vectors: number): boolean {
    const refused = this.#update((s) =>
      s[WANT_MSI] = Math.max(0, Math.min(vectors, this.fds.msi.length))
    );
    return (refused & (1 << IRQ_MSI)) === 0;
  }

  /** Apply the wish; returns the indexes the host refused to turn on, as 1 << index bits. */
  #update(wish: (s: Int32Array) => void): number {
    const s = this.#s;
    let refused = 0;
    spinLock(s, LOCK);
    try {
      wish(s);
      // Wanted first, then what is left when the host refuses it: MSI-X, MSI, INTx, none.
      for (;;) {
        let index = IRQ_NONE, vectors = 0;
        if (s[WANT_MSIX] && this.fds.msix.length > 0) {
          [index, vectors] = [IRQ_MSIX, this.fds.msix.length];
        } else if (s[WANT_MSI] > 0) [index, vectors] = [IRQ_MSI, s[WANT_MSI]];
        else if (this.fds.intx && (refused & (1 << IRQ_INTX)) === 0) {
          [index, vectors] = [IRQ_INTX, 1];
        }
        if (index === s[MODE] && vectors === s[VECTORS]) return refused;
        if (s[MODE] !== IRQ_NONE) {
          const e = this.control.setEventfds(s[MODE], []);
          if (e !== 0) this.#report(s[MODE], "off", e);
        }
        // Recorded before turning the new one on: if that fails, the device has nothing on.
        s[MODE] = IRQ_NONE;
        s[VECTORS] = 0;
        if (index === IRQ_NONE) return refused;
        const e = this.#turnOn(index, vectors);
        if (e === 0) {
          s[MODE] = index;
          s[VECTORS] = vectors;
          return refused;
        }
        this.#report(index, `on with ${vectors} vector(s)`, e);
        // A refused MSI or MSI-X stays off until the guest enables it again; INTx is tried
        // again at the next change.
        refused |= 1 << index;
        if (index === IRQ_MSIX) s[WANT_MSIX] = 0;
        else if (index === IRQ_MSI) s[WANT_MSI] = 0;
      }
    } finally {
      spinUnlock(s, LOCK);
    }
  }

  #turnOn(index: number, vectors: number): number {
    if (index === IRQ_INTX) {
      const e = this.control.setEventfds(IRQ_INTX, [this.fds.intx!.triggerFd]);
      if (e !== 0) return e;
      const u = this.control.setIntxUnmask(this.fds.intx!.resampleFd);
      if (u !== 0) this.control.setEventfds(IRQ_INTX, []);
      return u;
    }
    if (index === IRQ_MSI) return this.control.setEventfds(IRQ_MSI, this.fds.msi.slice(0, vectors));
    return this.control.setEventfds(IRQ_MSIX, this.fds.msix);
  }

  #report(index: number, how: string, errno: number): void {
    const after = how === "off"
      ? ""
      : index === IRQ_INTX
      ? "; the device has no interrupt until the guest enables MSI or MSI-X"
      : `; ${NAMES[index]} stays disabled`;
    this.log.log(
      `vfio ${this.name} ${NAMES[index]} ${how === "off" ? "off" : "on"}`,
      `vfio ${this.name}: cannot turn ${NAMES[index]} ${how}: VFIO_DEVICE_SET_IRQS failed: ` +
        `${errnoName(errno)}${after}`,
    );
  }
}
