/**
 * What any machine's guest RAM is made of, whatever its architecture's memory map: regions of
 * guest-physical space backed by one host mapping, and the RAM sizes denovmm builds. Where the
 * regions go (around a PC's 3-4 GiB hole, say) is the architecture's (src/arch/).
 *
 * @module
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** Smallest machine we build: a distribution kernel decompresses into more than 16 MiB. */
export const MIN_RAM_BYTES = 32 * MiB;
/** Largest machine we build; keeps every guest address far below 2^53. */
export const MAX_RAM_BYTES = 1 * TiB;
/** RAM is mapped and registered with KVM in whole 4 KiB pages. */
export const RAM_ALIGN_BYTES = 4 * KiB;

/** One contiguous piece of guest RAM and where it sits in the host mapping. */
export interface RamRegion {
  /** First guest-physical address of the region. */
  gpa: number;
  /** Length in bytes. */
  size: number;
  /** Offset of `gpa` inside the single host mapping of all guest RAM. */
  hostOffset: number;
}

/** Guest RAM as regions of guest-physical space. */
export interface RamLayout {
  /** Total guest RAM, which is also the size of the host mapping. */
  ramBytes: number;
  /** RAM regions in ascending gpa order. */
  regions: readonly RamRegion[];
}

/** A range of guest-physical space that is not RAM. */
export interface GuestRange {
  gpa: number;
  /** Length in bytes; 0 when there is no room for the range. */
  size: number;
}

/** A RAM size the layout cannot be built for, or a size string that does not parse. */
export class MemoryLayoutError extends Error {
  override name = "MemoryLayoutError";
}

/** Throw MemoryLayoutError, with a line for the user, for a RAM size we do not build. */
export function checkRamBytes(ramBytes: number): void {
  if (!Number.isSafeInteger(ramBytes) || ramBytes < MIN_RAM_BYTES || ramBytes > MAX_RAM_BYTES) {
    throw new MemoryLayoutError(
      `guest RAM of ${describeBytes(ramBytes)} is out of range: use 32 MiB to 1 TiB`,
    );
  }
  if (ramBytes % RAM_ALIGN_BYTES !== 0) {
    throw new MemoryLayoutError(
      `guest RAM of ${ramBytes} bytes is not a multiple of 4 KiB`,
    );
  }
}

const SIZE_UNITS: Record<string, number> = { K: KiB, M: MiB, G: GiB, T: TiB };

/**
 * Parse a memory size the way kvmtool's `-m` does: a whole number with an optional K, M, G or T
 * suffix (case-insensitive, binary units); a bare number means MiB.
 *
 * @example
 * ```ts
 * parseSize("2G"); // 2147483648
 * parseSize("512"); // 536870912 (MiB when there is no suffix)
 * ```
 */
export function parseSize(text: string): number {
  const s = text.trim();
  const m = /^([0-9]+)([KMGT]?)$/i.exec(s);
  if (m === null) {
    let why = "use a whole number with an optional K, M, G or T suffix (MiB if none)";
    if (s.startsWith("-")) why = "a size cannot be negative";
    else if (/^[0-9]*[.,][0-9]*[KMGT]?$/i.test(s)) why = "use a whole number, not a fraction";
    throw new MemoryLayoutError(`invalid size "${text}": ${why}`);
  }
  const unit = m[2] === "" ? MiB : SIZE_UNITS[m[2].toUpperCase()];
  const bytes = Number(m[1]) * unit;
  if (bytes === 0) throw new MemoryLayoutError(`invalid size "${text}": must be greater than 0`);
  if (!Number.isSafeInteger(bytes)) {
    throw new MemoryLayoutError(`invalid size "${text}": too large`);
  }
  return bytes;
}

/** "256 MiB" for whole MiB, else the byte count; used in error messages. */
export function describeBytes(n: number): string {
  if (Number.isSafeInteger(n) && n > 0 && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}
