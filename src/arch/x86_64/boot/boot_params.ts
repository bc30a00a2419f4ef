/**
 * The zero page (struct boot_params, arch/x86/include/uapi/asm/bootparam.h): the 4 KiB block the
 * 64-bit entry point receives in %rsi. It carries a copy of the kernel's own setup header with
 * the loader's fields filled in (Documentation/x86/boot.rst, "The Real-Mode Kernel Header"),
 * the command line and initrd location, and the E820 memory map.
 *
 * The setup header sits at the same offsets in the bzImage file and in the zero page, so the
 * offsets below are also what bzimage.ts reads.
 *
 * @module
 */

import type { E820Entry } from "../memory_map.ts";

/** sizeof(struct boot_params). */
export const BOOT_PARAMS_SIZE = 4096;

// struct boot_params fields outside the setup header.
export const ACPI_RSDP_ADDR = 0x070; // __u64 acpi_rsdp_addr (read whatever the header's version)
export const EXT_RAMDISK_IMAGE = 0x0c0; // __u32 ext_ramdisk_image (bits 63:32)
export const EXT_RAMDISK_SIZE = 0x0c4; // __u32 ext_ramdisk_size (bits 63:32)
export const EXT_CMD_LINE_PTR = 0x0c8; // __u32 ext_cmd_line_ptr (bits 63:32)
export const E820_ENTRIES = 0x1e8; // __u8 e820_entries
export const E820_TABLE = 0x2d0; // struct boot_e820_entry e820_table[E820_MAX_ENTRIES_ZEROPAGE]
export const E820_ENTRY_SIZE = 20; // struct boot_e820_entry { __u64 addr; __u64 size; __u32 type; }
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

// struct setup_header, at boot_params.hdr (0x1f1); offsets are from the start of boot_params.
export const SETUP_HEADER = 0x1f1; // struct setup_header hdr
export const SETUP_SECTS = 0x1f1; // __u8 setup_sects
export const SYSSIZE = 0x1f4; // __u32 syssize (16-byte paragraphs)
export const VID_MODE = 0x1fa; // __u16 vid_mode
export const BOOT_FLAG = 0x1fe; // __u16 boot_flag (0xAA55)
export const JUMP = 0x200; // __u16 jump (a short jmp; its second byte gives the header's end)
export const HEADER = 0x202; // __u32 header ("HdrS")
export const VERSION = 0x206; // __u16 version
export const TYPE_OF_LOADER = 0x210; // __u8 type_of_loader
export const LOADFLAGS = 0x211; // __u8 loadflags
export const RAMDISK_IMAGE = 0x218; // __u32 ramdisk_image
export const RAMDISK_SIZE = 0x21c; // __u32 ramdisk_size
export const HEAP_END_PTR = 0x224; // __u16 heap_end_ptr
export const CMD_LINE_PTR = 0x228; // __u32 cmd_line_ptr
export const INITRD_ADDR_MAX = 0x22c; // __u32 initrd_addr_max
export const KERNEL_ALIGNMENT = 0x230; // __u32 kernel_alignment
export const RELOCATABLE_KERNEL = 0x234; // __u8 relocatable_kernel
export const XLOADFLAGS = 0x236; // __u16 xloadflags
export const CMDLINE_SIZE = 0x238; // __u32 cmdline_size
export const PAYLOAD_OFFSET = 0x248; // __u32 payload_offset (from the protected-mode code)
export const PAYLOAD_LENGTH = 0x24c; // __u32 payload_length
export const PREF_ADDRESS = 0x258; // __u64 pref_address
export const INIT_SIZE = 0x260; // __u32 init_size
/** Where boot_params' padding after the header (_pad7) ends: no header may reach past it. */
export const SETUP_HEADER_LIMIT = 0x290; // __u32 edd_mbr_sig_buffer[]

/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x5372_6448;
export const BOOT_FLAG_MAGIC = 0xaa55;

/** loadflags bit 0: the protected-mode code is loaded at 1 MiB or above (boot.rst, loadflags). */
export const LOADED_HIGH = 0x01;
/** loadflags bit 7: heap_end_ptr is valid (boot.rst, loadflags). */
export const CAN_USE_HEAP = 0x80;
/** xloadflags bit 0: the kernel has the 64-bit entry point at load address + 0x200. */
export const XLF_KERNEL_64 = 0x1;
/** type_of_loader 0xff: "undefined" boot loader, the value boot.rst asks unlisted loaders for. */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** vid_mode 0xffff: "normal" text mode, i.e. do not ask the real-mode code to switch modes. */
export const VID_MODE_NORMAL = 0xffff;
/**
 * heap_end_ptr: end of the real-mode heap, minus 0x200 (boot.rst). Only the 16-bit setup code
 * uses it, and we enter at the 64-bit point; 0xfe00 gives that code the whole 64 KiB segment.
 */
export const HEAP_END = 0xfe00;

const TWO_32 = 0x1_0000_0000;

/**
 * The header fields written for a kernel that has no setup header of its own (an ELF vmlinux),
 * as Firecracker does for one: enough for the kernel proper, which reads the loader's fields
 * (command line, initrd) and the E820 map but none of the bzImage-only ones.
 */
export const NO_HEADER_VERSION = 0x020f; // protocol 2.15: every field written here is defined
/** x86's COMMAND_LINE_SIZE is 2048; cmdline_size excludes the NUL. */
export const NO_HEADER_CMDLINE_SIZE = 2047;
/** CONFIG_PHYSICAL_ALIGN on x86-64 (and what Firecracker writes). */
export const NO_HEADER_KERNEL_ALIGNMENT = 0x100_0000;

/** What the loader tells the kernel besides its own header. */
export interface BootParamsInput {
  /**
   * The bzImage's setup header (bytes from 0x1f1 to the header's end). Absent for a kernel that
   * has none (an ELF vmlinux): then boot_flag, "HdrS", version, loadflags, kernel_alignment and
   * cmdline_size are written from the NO_HEADER_* values.
   */
  setupHeader?: Uint8Array;
  cmdlineGpa: number;
  initrd?: { gpa: number; size: number };
  e820: readonly E820Entry[];
  /** Where the ACPI RSDP is, which spares the kernel its scan of the BIOS area. */
  acpiRsdpGpa?: number;
}

/** A zero page that does not fit the struct (too many E820 entries, a header too long). */
export class BootParamsError extends Error {
  override name = "BootParamsError";
}

/**
 * The 4096 bytes of struct boot_params for a 64-bit-entry boot (of startup_64 directly when
 * `setupHeader` is absent).
 *
 * @example
 * ```ts
 * const zeroPage = buildBootParams({ setupHeader: image.setupHeader, cmdlineGpa: 0x20000,
 *   e820: layout.e820() });
 * mem.write(0x7000, zeroPage);
 * ```
 */
export function buildBootParams(input: BootParamsInput): Uint8Array {
  const { setupHeader, cmdlineGpa, initrd, e820 } = input;
  if (setupHeader && SETUP_HEADER + setupHeader.length > SETUP_HEADER_LIMIT) {
    throw new BootParamsError(`setup header of ${setupHeader.length} bytes is too long`);
  }
  if (e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new BootParamsError(
      `${e820.length} E820 entries do not fit the zero page (at most ${E820_MAX_ENTRIES_ZEROPAGE})`,
    );
  }
  const bytes = new Uint8Array(BOOT_PARAMS_SIZE);
  const view = new DataView(bytes.buffer);

  // boot.rst: copy the kernel's header, then fill in the fields marked "write".
  if (setupHeader) bytes.set(setupHeader, SETUP_HEADER);
  else writeMinimalHeader(view);
  view.setUint8(TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
  view.setUint8(LOADFLAGS, view.getUint8(LOADFLAGS) | CAN_USE_HEAP);
  view.setUint16(HEAP_END_PTR, HEAP_END, true);
  view.setUint16(VID_MODE, VID_MODE_NORMAL, true);
  setSplit(view, CMD_LINE_PTR, EXT_CMD_LINE_PTR, cmdlineGpa);
  setSplit(view, RAMDISK_IMAGE, EXT_RAMDISK_IMAGE, initrd?.gpa ?? 0);
  setSplit(view, RAMDISK_SIZE, EXT_RAMDISK_SIZE, initrd?.size ?? 0);

  view.setBigUint64(ACPI_RSDP_ADDR, BigInt(input.acpiRsdpGpa ?? 0), true);
  view.setUint8(E820_ENTRIES, e820.length);
  e820.forEach((entry, i) => {
    const at = E820_TABLE + i * E820_ENTRY_SIZE;
    view.setBigUint64(at, BigInt(entry.gpa), true);
    view.setBigUint64(at + 8, BigInt(entry.size), true);
    view.setUint32(at + 16, entry.type, true);
  });
  return bytes;
}

/** The kernel-owned header fields a bzImage would have carried, for a kernel without one. */
function writeMinimalHeader(view: DataView): void {
  view.setUint16(BOOT_FLAG, BOOT_FLAG_MAGIC, true);
  view.setUint32(HEADER, HDRS_MAGIC, true);
  view.setUint16(VERSION, NO_HEADER_VERSION, true);
  view.setUint8(LOADFLAGS, LOADED_HIGH);
  view.setUint32(KERNEL_ALIGNMENT, NO_HEADER_KERNEL_ALIGNMENT, true);
  view.setUint32(CMDLINE_SIZE, NO_HEADER_CMDLINE_SIZE, true);
}

/** A 64-bit value split into a low u32 field and its ext_* high u32 field. */
function setSplit(view: DataView, lowOffset: number, highOffset: number, value: number): void {
  view.setUint32(lowOffset, value % TWO_32, true);
  view.setUint32(highOffset, Math.floor(value / TWO_32), true);
}
