/**
 * The MSI capability (PCI 3.0 §6.8.1), emulated in a function's config space: the layout of its
 * body and what the guest programmed into it. Used for passed-through devices that have MSI
 * but no MSI-X (or whose MSI-X is hidden), and by any emulated device that wants MSI.
 *
 * The emulated capability never offers per-vector masking: a device without it is what the
 * spec calls the plain case, and a driver then masks at the function (enable bit) or not at
 * all. That keeps delivery entirely in the kernel (device eventfd → KVM irqfd), with no
 * pending state for the VMM to keep.
 *
 * ```ts
 * const { body, writable } = msiCapabilityBody({ vectors: 4, address64: true });
 * const at = cfg.addCapability(PCI_CAP_ID_MSI, body, writable);
 * const msi = new MsiCapability(cfg, at);
 * msi.sync(vectors); // after each guest write: the enabled vectors routed, or released
 * ```
 */
import type { PciConfigSpace } from "./config_space.ts";
import type { MsiMessage, MsiVectorGroup } from "../bus/interrupt.ts";

export const PCI_CAP_ID_MSI = 0x05;
/** Message Control bits (PCI 3.0 §6.8.1.3). */
export const MSI_CONTROL_ENABLE = 0x0001;
export const MSI_CONTROL_MMC_SHIFT = 1; // Multiple Message Capable, 3 bits, log2 of vectors
export const MSI_CONTROL_MME_SHIFT = 4; // Multiple Message Enable, 3 bits
export const MSI_CONTROL_64BIT = 0x0080;
export const MSI_CONTROL_PER_VECTOR_MASK = 0x0100;
/** MSI allows at most 32 vectors, in powers of two. */
export const MSI_MAX_VECTORS = 32;

/** The capability's size in bytes (ID and next pointer included) for a given control word. */
export function msiCapabilitySize(control: number): number {
  const base = control & MSI_CONTROL_64BIT ? 14 : 10;
  return control & MSI_CONTROL_PER_VECTOR_MASK ? base + 10 : base;
}

export interface MsiLayout {
  /** Vectors the function can use: 1, 2, 4, 8, 16 or 32. */
  vectors: number;
  /** Whether the Message Upper Address register exists. */
  address64: boolean;
  /** Body length to fill (so the capability keeps a device's own size); at least the minimum. */
  size?: number;
}

/** The bytes after ID and next pointer, and the guest's write mask for them. */
export function msiCapabilityBody(layout: MsiLayout): { body: Uint8Array; writable: Uint8Array } {
  const log2 = Math.log2(layout.vectors);
  if (!Number.isInteger(log2) || log2 < 0 || layout.vectors > MSI_MAX_VECTORS) {
    throw new RangeError(`MSI vectors must be a power of two up to 32, not ${layout.vectors}`);
  }
  const control = (log2 << MSI_CONTROL_MMC_SHIFT) | (layout.address64 ? MSI_CONTROL_64BIT : 0);
  const minimum = msiCapabilitySize(control) - 2;
  const length = Math.max(minimum, (layout.size ?? 0) - 2);
  const body = new Uint8Array(length);
  new DataView(body.buffer).setUint16(0, control, true);
  const writable = new Uint8Array(length);
  // Enable and Multiple Message Enable; the message address is dword aligned (§6.8.1.4).
  writable[0] = MSI_CONTROL_ENABLE | (7 << MSI_CONTROL_MME_SHIFT);
  writable.fill(0xff, 3, 6);
  writable[2] = 0xfc;
  const dataAt = layout.address64 ? 10 : 6;
  if (layout.address64) writable.fill(0xff, 6, 10);
  writable.fill(0xff, dataAt, dataAt + 2);
  return { body, writable };
}

/** What the guest programmed into an emulated MSI capability at `at` (its ID byte). */
export class MsiCapability {
  constructor(private readonly cfg: PciConfigSpace, readonly at: number) {}

  control(): number {
    return this.cfg.read(this.at + 2, 2);
  }

  enabled(): boolean {
    return (this.control() & MSI_CONTROL_ENABLE) !== 0;
  }

  /**
   * Vectors the guest enabled: 2^MME, never more than the function is capable of (a guest
   * asking for more gets what the capability offers, as §6.8.1.3 leaves it undefined).
   */
  vectors(): number {
    const c = this.control();
    const capable = (c >> MSI_CONTROL_MMC_SHIFT) & 7;
    const asked = (c >> MSI_CONTROL_MME_SHIFT) & 7;
    return 1 << Math.min(capable, asked, 5);
  }

  /** Vector `i`'s message: the programmed address, and the data with its low bits set to i. */
  message(i: number): MsiMessage {
    const c = this.control();
    const is64 = (c & MSI_CONTROL_64BIT) !== 0;
    const low = this.cfg.read(this.at + 4, 4);
    const high = is64 ? this.cfg.read(this.at + 8, 4) : 0;
    const data = this.cfg.read(this.at + (is64 ? 12 : 8), 2);
    const n = this.vectors();
    return { addressLo: low, addressHi: high, data: (data & ~(n - 1)) | (i & (n - 1)) };
  }

  /**
   * Bring `group` in line with what the guest programmed: the enabled vectors routed with
   * their messages (one routing change, none when they already match), or every route
   * released while MSI is off. Returns the vectors enabled (0: off) and whether each of them
   * has a route.
   */
  sync(group: MsiVectorGroup): { vectors: number; routed: boolean } {
    if (!this.enabled()) {
      group.release();
      return { vectors: 0, routed: true };
    }
    const vectors = this.vectors();
    return { vectors, routed: group.route(0, vectors, (i) => this.message(i)) };
  }
}
