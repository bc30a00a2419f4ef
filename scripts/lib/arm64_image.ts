/**
 * The raw arm64 kernel Image (Documentation/arch/arm64/booting.rst: magic "ARM\x64" at 0x38)
 * from what Debian ships as vmlinuz: the Image itself, a gzip'd Image (Debian 12), or an EFI
 * zboot executable (a PE file whose header names the payload's offset, size and compressor:
 * drivers/firmware/efi/libstub/zboot-header.S), as Debian 13 may ship.
 */
import { decompress } from "./build_util.ts";

/** The magic at 0x38 of an arm64 Image, little-endian "ARM\x64". */
const ARM64_MAGIC = 0x644d5241;

export function isArm64Image(bytes: Uint8Array): boolean {
  return bytes.length > 0x40 &&
    new DataView(bytes.buffer, bytes.byteOffset).getUint32(0x38, true) === ARM64_MAGIC;
}

/** The header's page size field (flags bits 1-2: 1 = 4K, 2 = 16K, 3 = 64K, 0 = unspecified). */
export function imagePageSize(image: Uint8Array): number | undefined {
  const flags = new DataView(image.buffer, image.byteOffset).getBigUint64(0x18, true);
  return [undefined, 4096, 16384, 65536][Number((flags >> 1n) & 3n)];
}

/** The uncompressed Image in `vmlinuz`; `what` names it in errors. */
export async function arm64Image(vmlinuz: Uint8Array, what: string): Promise<Uint8Array> {
  let image: Uint8Array;
  if (isArm64Image(vmlinuz)) image = vmlinuz;
  else if (vmlinuz[0] === 0x1f && vmlinuz[1] === 0x8b) {
    image = await decompress("gzip", vmlinuz, what);
  } else if (new TextDecoder().decode(vmlinuz.subarray(4, 8)) === "zimg") {
    // zboot header: "MZ", 2 bytes, "zimg", then u32 payload offset, u32 payload size, 8 bytes,
    // and the compressor's name (NUL-padded) at 0x18.
    const view = new DataView(vmlinuz.buffer, vmlinuz.byteOffset);
    const offset = view.getUint32(8, true), size = view.getUint32(12, true);
    const type = new TextDecoder().decode(vmlinuz.subarray(0x18, 0x20)).replace(/\0.*$/s, "");
    const tool = { gzip: "gzip", xzkern: "xz", zstd22: "zstd", zstd: "zstd" }[type];
    if (!tool) throw new Error(`${what}: EFI zboot with compression '${type}', not supported`);
    // The kernel build appends the uncompressed size to gzip/xz/zstd streams (size_append).
    const payload = vmlinuz.subarray(offset, offset + size);
    image = await decompress(
      tool,
      tool === "gzip" ? payload : payload.subarray(0, -4),
      what,
      tool === "xz" ? ["--single-stream"] : [],
    );
  } else {
    throw new Error(`${what}: neither an arm64 Image, a gzip'd one nor an EFI zboot image`);
  }
  if (!isArm64Image(image)) {
    throw new Error(`${what}: no arm64 Image magic at 0x38 after unpacking`);
  }
  return image;
}
