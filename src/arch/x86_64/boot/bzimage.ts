/**
 * Parse a Linux bzImage (Documentation/x86/boot.rst). The file is the real-mode setup code
 * (setup_sects + 1 sectors, starting with the boot sector that carries the setup header at
 * 0x1f1) followed by the protected-mode kernel, which contains the 64-bit entry point.
 *
 * @module
 */

import {
  BOOT_FLAG,
  BOOT_FLAG_MAGIC,
  CMDLINE_SIZE,
  HDRS_MAGIC,
  HEADER,
  INIT_SIZE,
  INITRD_ADDR_MAX,
  JUMP,
  KERNEL_ALIGNMENT,
  PAYLOAD_LENGTH,
  PAYLOAD_OFFSET,
  PREF_ADDRESS,
  RELOCATABLE_KERNEL,
  SETUP_HEADER,
  SETUP_HEADER_LIMIT,
  SETUP_SECTS,
  SYSSIZE,
  VERSION,
  XLF_KERNEL_64,
  XLOADFLAGS,
} from "./boot_params.ts";

/** Protocol 2.12 added xloadflags, which is how a kernel says it has a 64-bit entry point. */
export const MIN_BOOT_PROTOCOL = 0x020c;
const SECTOR_SIZE = 512;
/** boot.rst: "If this field is 0, the real value is 4." (setup_sects) */
const DEFAULT_SETUP_SECTS = 4;
/** The fields we read end with init_size (protocol 2.10+). */
const HEADER_FIELDS_END = INIT_SIZE + 4;

/** What the loader needs to know about a bzImage. */
export interface BzImage {
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  version: number;
  /** Real-mode setup sectors after the boot sector (0 in the file already mapped to 4). */
  setupSects: number;
  /** The setup header as in the file: 0x1f1 up to 0x202 + the byte at 0x201. */
  setupHeader: Uint8Array;
  /** The protected-mode kernel: loaded at 1 MiB, 64-bit entry at +0x200. A view into the file. */
  protectedMode: Uint8Array;
  /** Bytes the kernel needs from its load address to decompress and start (init_size). */
  initSize: number;
  kernelAlignment: number;
  relocatable: boolean;
  /** Where a non-relocatable kernel runs, and the lowest place a relocatable one does. */
  prefAddress: number;
  /** Longest command line, excluding the terminating NUL. */
  cmdlineSize: number;
  /** Highest address the initrd may occupy (inclusive). */
  initrdAddrMax: number;
  xloadflags: number;
}

/** A file that is not a bzImage we can boot. The message is one line for the user. */
export class BootImageError extends Error {
  override name = "BootImageError";
}

/**
 * Check and dissect a bzImage.
 *
 * @example
 * ```ts
 * const image = parseBzImage(await Deno.readFile("vmlinuz"));
 * image.version; // 0x020f
 * ```
 */
export function parseBzImage(file: Uint8Array): BzImage {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < HEADER + 4 || view.getUint32(HEADER, true) !== HDRS_MAGIC) {
    throw new BootImageError("not a bzImage (no HdrS signature)");
  }
  if (view.getUint16(BOOT_FLAG, true) !== BOOT_FLAG_MAGIC) {
    throw new BootImageError("not a bzImage (no 0xAA55 boot flag at 0x1fe)");
  }
  requireLength(file, VERSION + 2);
  const version = view.getUint16(VERSION, true);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new BootImageError(
      `boot protocol ${protocolName(version)} too old (need ${protocolName(MIN_BOOT_PROTOCOL)})`,
    );
  }
  // boot.rst: the header ends at 0x202 + the byte at 0x201 (the target of the short jump).
  const headerEnd = HEADER + file[JUMP + 1];
  if (headerEnd < HEADER_FIELDS_END || headerEnd > SETUP_HEADER_LIMIT) {
    throw new BootImageError(
      `not a bzImage (setup header ends at 0x${headerEnd.toString(16)}, expected ` +
        `0x${HEADER_FIELDS_END.toString(16)}..0x${SETUP_HEADER_LIMIT.toString(16)})`,
    );
  }
  requireLength(file, headerEnd);
  const xloadflags = view.getUint16(XLOADFLAGS, true);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new BootImageError("kernel has no 64-bit entry point");
  }

  const setupSects = file[SETUP_SECTS] || DEFAULT_SETUP_SECTS;
  const protectedModeStart = (setupSects + 1) * SECTOR_SIZE;
  const protectedModeSize = view.getUint32(SYSSIZE, true) * 16;
  if (protectedModeSize === 0) throw new BootImageError("bzImage has no protected-mode kernel");
  requireLength(file, protectedModeStart + protectedModeSize);

  return {
    version,
    setupSects,
    setupHeader: file.subarray(SETUP_HEADER, headerEnd),
    protectedMode: file.subarray(protectedModeStart, protectedModeStart + protectedModeSize),
    initSize: view.getUint32(INIT_SIZE, true),
    kernelAlignment: view.getUint32(KERNEL_ALIGNMENT, true),
    relocatable: file[RELOCATABLE_KERNEL] !== 0,
    prefAddress: Number(view.getBigUint64(PREF_ADDRESS, true)),
    cmdlineSize: view.getUint32(CMDLINE_SIZE, true),
    initrdAddrMax: view.getUint32(INITRD_ADDR_MAX, true),
    xloadflags,
  };
}

/**
 * The compressed vmlinux inside a bzImage (protocol 2.08+): payload_length bytes at
 * payload_offset into the protected-mode code. Its format is for the caller to sniff (xz on
 * Debian); whatever follows it in the protected-mode code is not part of it.
 *
 * @example
 * ```ts
 * const xz = bzImagePayload(await Deno.readFile("vmlinuz")); // starts with FD 37 7A 58 5A 00
 * ```
 */
export function bzImagePayload(file: Uint8Array): Uint8Array {
  const image = parseBzImage(file);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const offset = view.getUint32(PAYLOAD_OFFSET, true);
  const length = view.getUint32(PAYLOAD_LENGTH, true);
  if (length === 0 || offset + length > image.protectedMode.length) {
    throw new BootImageError(
      `bzImage payload (offset 0x${offset.toString(16)}, ${length} bytes) is not inside its ` +
        `${image.protectedMode.length}-byte protected-mode kernel`,
    );
  }
  return image.protectedMode.subarray(offset, offset + length);
}

function requireLength(file: Uint8Array, needed: number): void {
  if (file.length < needed) {
    throw new BootImageError(`bzImage truncated: needs ${needed} bytes, file has ${file.length}`);
  }
}

/** 0x020c → "2.12": the minor number is decimal in boot.rst's notation. */
function protocolName(version: number): string {
  return `${version >> 8}.${String(version & 0xff).padStart(2, "0")}`;
}
