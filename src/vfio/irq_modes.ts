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

/** VFIO's IRQ indexes for a PCI device: INTx 0, MSI 1, MSI-X 2; NONE is ours. */
export const IRQ_NONE = -1;
export const IRQ_INTX = 0;
export const IRQ_MSI = 1;
export const IRQ_MSIX = 2;

/** The VFIO side effects, so the switching logic runs in tests without a device. */
export interface VfioIrqControl {
  /** VFIO_DEVICE_SET_IRQS trigger eventfds for an index (one per vector), or off with []. */
  setEventfds(index: number, fds: number[]): void;
  /** INTx: the eventfd that unmasks the line (KVM's resampler signals it on EOI). */
  setIntxUnmask(fd: number): void;
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

  constructor(
    state: SharedArrayBuffer,
    private readonly fds: VfioIrqFds,
    private readonly control: VfioIrqControl,
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

  /** The guest set or cleared the MSI-X Enable bit. */
  msix(on: boolean): void {
    this.#update((s) => s[WANT_MSIX] = on ? 1 : 0);
  }

  /** The guest enabled MSI with `vectors` (or disabled it: 0). */
  msi(vectors: number): void {
    this.#update((s) => s[WANT_MSI] = Math.max(0, Math.min(vectors, this.fds.msi.length)));
  }

  #update(wish: (s: Int32Array) => void): void {
    const s = this.#s;
    while (Atomics.compareExchange(s, LOCK, 0, 1) !== 0) { /* rare, short */ }
    try {
      wish(s);
      let index = IRQ_NONE, vectors = 0;
      if (s[WANT_MSIX] && this.fds.msix.length > 0) {
        [index, vectors] = [IRQ_MSIX, this.fds.msix.length];
      } else if (s[WANT_MSI] > 0) [index, vectors] = [IRQ_MSI, s[WANT_MSI]];
      else if (this.fds.intx) [index, vectors] = [IRQ_INTX, 1];
      if (index === s[MODE] && vectors === s[VECTORS]) return;
      if (s[MODE] !== IRQ_NONE) this.control.setEventfds(s[MODE], []);
      // Recorded before turning the new one on: if that fails, the device has nothing on.
      s[MODE] = IRQ_NONE;
      s[VECTORS] = 0;
      if (index === IRQ_INTX) {
        this.control.setEventfds(IRQ_INTX, [this.fds.intx!.triggerFd]);
        this.control.setIntxUnmask(this.fds.intx!.resampleFd);
      } else if (index === IRQ_MSI) {
        this.control.setEventfds(IRQ_MSI, this.fds.msi.slice(0, vectors));
      } else if (index === IRQ_MSIX) {
        this.control.setEventfds(IRQ_MSIX, this.fds.msix);
      }
      s[MODE] = index;
      s[VECTORS] = vectors;
    } finally {
      Atomics.store(s, LOCK, 0);
    }
  }
}
