/**
 * Parse the header of an arm64 Linux kernel Image (Documentation/arch/arm64/booting.rst,
 * "4. Call the kernel image"): the uncompressed kernel, loaded as it is and entered at its
 * first byte. The 64-byte header:
 *
 * ```
 * 0x00  u32 code0, code1   branch to stext (or "MZ" of the EFI stub's PE header)
 * 0x08  u64 text_offset    where the Image goes past a 2 MiB aligned base
 * 0x10  u64 image_size     bytes from the Image's start the kernel needs (bss included)
 * 0x18  u64 flags          bit 0 big-endian, bits 1-2 page size, bit 3 physical placement
 * 0x20  u64 res2, res3, res4
 * 0x38  u32 magic          0x644d5241, "ARM\x64"
 * 0x3c  u32 res5           offset of the PE header
 * ```
 *
 * arm64 kernels have no decompressor of their own: an Image.gz, or an EFI zboot image
 * (vmlinuz.efi, which carries the compressed Image inside a PE file), must be decompressed by
 * the loader; denovmm asks the user to do it.
 *
 * @module
 */

/** "ARM\x64", little-endian, at 0x38. */
export const ARM64_IMAGE_MAGIC = 0x644d_5241;
export const ARM64_IMAGE_HEADER_BYTES = 64;
const TEXT_OFFSET = 0x08;
const IMAGE_SIZE = 0x10;
const FLAGS = 0x18;
const MAGIC = 0x38;
/** booting.rst: "Where image_size is zero, text_offset can be assumed to be 0x80000." */
export const LEGACY_TEXT_OFFSET = 0x8_0000;

const FLAG_BIG_ENDIAN = 1n << 0n;
const FLAG_PAGE_SIZE_SHIFT = 1n;
const FLAG_PAGE_SIZE_MASK = 3n;
const FLAG_PHYS_PLACEMENT_ANYWHERE = 1n << 3n;
/** Page size by the flags' bits 1-2 (0: the kernel does not say). */
const PAGE_SIZES_KIB = [undefined, 4, 16, 64] as const;

/** What the loader needs to know about an Image. */
export interface Arm64Image {
  /** Offset of the Image from its 2 MiB aligned base. */
  textOffset: number;
  /**
   * Bytes from the Image's start the kernel uses (its bss and early page tables included);
   * 0 for a kernel before v3.17, which does not say.
   */
  imageSize: number;
  /** The kernel's page size in KiB, when it says. */
  pageSizeKiB?: 4 | 16 | 64;
  /** Flags bit 3: the base may be anywhere (else as close to the start of RAM as possible). */
  placementAnywhere: boolean;
  /** The file's length: the bytes copied into RAM. */
  fileBytes: number;
}

/** A file that is not an arm64 Image we can boot. The message is one line for the user. */
export class Arm64ImageError extends Error {
  override name = "Arm64ImageError";
}

/** Magic numbers of compressed files a user may pass for an Image (first bytes, or "zimg"). */
const COMPRESSED: readonly { name: string; magic: readonly number[] }[] = [
  { name: "gzip", magic: [0x1f, 0x8b] },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: "bzip2", magic: [0x42, 0x5a, 0x68] },
  { name: "lz4", magic: [0x04, 0x22, 0x4d, 0x18] },
];
/** drivers/firmware/efi/libstub/zboot-header.S: "MZ", then "zimg" at 4; the compression
 * algorithm's name, NUL-terminated, at 0x18. */
const ZBOOT_TYPE = 4;
const ZBOOT_COMP_TYPE = 0x18;

/**
 * Check and read an Image's header. `head` is the file's start (at least 64 bytes of it),
 * `fileBytes` the whole file's length.
 *
 * @example
 * ```ts
 * const image = parseArm64Image(await Deno.readFile("Image"));
 * image.textOffset; // 0 on kernels since v5.8 (TEXT_OFFSET was removed)
 * ```
 */
export function parseArm64Image(head: Uint8Array, fileBytes = head.length): Arm64Image {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const hasMagic = head.length >= ARM64_IMAGE_HEADER_BYTES &&
    view.getUint32(MAGIC, true) === ARM64_IMAGE_MAGIC;
  // An EFI zboot file has the magic too (its PE header copies an Image's); a compressed file's
  // first bytes only count without the magic, as an Image's first instruction could match them.
  const compressed = zbootCompression(head) ?? (hasMagic ? undefined : compressionOf(head));
  if (compressed !== undefined) {
    throw new Arm64ImageError(
      `kernel is ${compressed}-compressed; decompress it first (arm64 Linux boots an ` +
        `uncompressed Image)`,
    );
  }
  if (fileBytes < ARM64_IMAGE_HEADER_BYTES) {
    throw new Arm64ImageError(
      `not an arm64 Image: ${fileBytes} bytes, shorter than its ` +
        `${ARM64_IMAGE_HEADER_BYTES}-byte header`,
    );
  }
  if (!hasMagic) throw new Arm64ImageError('not an arm64 Image (no "ARM\\x64" magic at 0x38)');
  const flags = view.getBigUint64(FLAGS, true);
  if ((flags & FLAG_BIG_ENDIAN) !== 0n) {
    throw new Arm64ImageError("kernel is big-endian; denovmm boots little-endian arm64 kernels");
  }
  const imageSize = exact(view.getBigUint64(IMAGE_SIZE, true), "image_size");
  // booting.rst: before v3.17 image_size is 0 and text_offset's endianness is unknown.
  const textOffset = imageSize === 0
    ? LEGACY_TEXT_OFFSET
    : exact(view.getBigUint64(TEXT_OFFSET, true), "text_offset");
  const pageSize = Number((flags >> FLAG_PAGE_SIZE_SHIFT) & FLAG_PAGE_SIZE_MASK);
  return {
    textOffset,
    imageSize,
    pageSizeKiB: PAGE_SIZES_KIB[pageSize],
    placementAnywhere: (flags & FLAG_PHYS_PLACEMENT_ANYWHERE) !== 0n,
    fileBytes,
  };
}

/** Whether the first bytes say "compressed", and by what. */
function compressionOf(head: Uint8Array): string | undefined {
  return COMPRESSED.find((c) => c.magic.every((b, i) => head[i] === b))?.name;
}

/** "EFI zboot (gzip)" for an EFI zboot file. */
function zbootCompression(head: Uint8Array): string | undefined {
  const text = (from: number, to: number) =>
    String.fromCharCode(...head.subarray(from, Math.min(to, head.length)));
  if (text(0, 2) === "MZ" && text(ZBOOT_TYPE, ZBOOT_TYPE + 4) === "zimg") {
    const algorithm = text(ZBOOT_COMP_TYPE, ZBOOT_COMP_TYPE + 32).split("\0")[0];
    return `EFI zboot (${/^[a-z0-9]+$/.test(algorithm) ? algorithm : "unknown algorithm"})`;
  }
  return undefined;
}

/** A header field as a number, refusing values no RAM could hold. */
function exact(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Arm64ImageError(`arm64 Image header: ${field} 0x${value.toString(16)} is too large`);
  }
  return Number(value);
}
