/**
 * The CPU state the Linux 64-bit boot protocol asks for (Documentation/x86/boot.rst,
 * "64-bit Boot Protocol"): long mode with paging on, an identity map covering the kernel, the
 * zero page and the command line; a GDT whose __BOOT_CS (0x10) is a flat 64-bit code segment and
 * whose __BOOT_DS (0x18) is flat data loaded into DS/ES/SS; interrupts off; %rsi = zero page;
 * entry at the protected-mode kernel's load address + 0x200.
 *
 * Why the 64-bit entry rather than the 32-bit (or 16-bit) one: the vCPU starts in the mode the
 * kernel runs in, so the decompressor's own switch from protected mode into long mode (building
 * page tables, enabling PAE/LME, a far jump) is skipped, and no real-mode setup code runs. It is
 * also the entry Firecracker uses; kvmtool instead enters the 16-bit setup code.
 *
 * This module issues no KVM call: it writes tables into guest memory and describes the
 * registers as a plain object that the vCPU code maps onto kvm_regs/kvm_sregs (each segment
 * register as ffi/kvm_regs.ts's `Segment`, the one description of struct kvm_segment).
 *
 * Low-memory map used here (all below the zero page at 0x7000 or between it and the EBDA):
 *   0x0500 GDT (6 slots: null, null, __BOOT_CS, __BOOT_DS, 16-byte TSS descriptor)
 *   0x0530 IDT (empty)
 *   0x0540 TSS (104 bytes, never used before the kernel installs its own)
 *   0x8ff0 initial stack pointer, growing down towards the zero page's end at 0x8000
 *   0x9000 PML4, 0xa000 PDPT, 0xb000..0xefff four page directories (2 MiB pages, first 4 GiB)
 *
 * @module
 */

import type { GuestMemory } from "../../../memory/guest_memory.ts";
import type { Segment } from "../../../../ffi/kvm_regs.ts";

export const BOOT_GDT_GPA = 0x500;
/** After the GDT's 16-byte TSS descriptor (0x520..0x52f); 0x520 itself is taken by it. */
export const BOOT_IDT_GPA = 0x530;
export const BOOT_TSS_GPA = 0x540;
export const BOOT_STACK_GPA = 0x8ff0;
export const PML4_GPA = 0x9000;
export const PDPT_GPA = 0xa000;
/** First of four page directories, one per GiB. */
export const PD_GPA = 0xb000;

/** Selectors the kernel's boot code expects (arch/x86/include/asm/segment.h). */
export const BOOT_CS_SELECTOR = 0x10; // __BOOT_CS
export const BOOT_DS_SELECTOR = 0x18; // __BOOT_DS
export const BOOT_TSS_SELECTOR = 0x20; // __BOOT_TSS
/** Null, null, CS, DS, and a 16-byte system descriptor for the TSS: 0x30 bytes. */
export const BOOT_GDT_SIZE = 0x30;
/** Smallest 64-bit TSS (Intel SDM vol. 3, 8.7): 104 bytes. */
export const BOOT_TSS_SIZE = 0x68;

// Control-register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
export const CR0_PE = 0x1; // protected mode: long mode is a sub-mode of protected mode
export const CR0_ET = 0x10; // hardwired to 1 on every CPU since the 486; KVM reports it set
export const CR0_PG = 0x8000_0000; // paging: with EFER.LME set, turning it on activates long mode
export const CR4_PAE = 0x20; // long mode requires PAE-format page tables
export const EFER_LME = 0x100; // long mode enable
export const EFER_LMA = 0x400; // long mode active: what the CPU would set once PG is on
/** RFLAGS bit 1 is reserved and reads as 1; IF is clear as the boot protocol requires. */
export const RFLAGS_RESERVED = 0x2;

// Page-table entry bits (Intel SDM vol. 3, 4.5).
const PTE_PRESENT = 0x1;
const PTE_WRITABLE = 0x2;
const PTE_PAGE_SIZE = 0x80; // in a page directory entry: maps a 2 MiB page
const PAGE_SIZE = 0x1000;
const ENTRIES_PER_TABLE = 512;
const LARGE_PAGE_SIZE = 0x20_0000;
/** Page directories: one per GiB of the identity-mapped first 4 GiB. */
const PAGE_DIRECTORIES = 4;

/** The initial vCPU state: what goes into kvm_regs and kvm_sregs (the rest stays at reset). */
export interface VcpuEntryState {
  regs: { rip: number; rsi: number; rsp: number; rbp: number; rflags: number };
  cr0: number;
  cr3: number;
  cr4: number;
  efer: number;
  gdt: { base: number; limit: number };
  idt: { base: number; limit: number };
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
}

/** Flat 64-bit code: execute/read, accessed (type 0xb), L=1 (D must then be 0), 4 GiB limit. */
export const BOOT_CODE_SEGMENT: Readonly<Segment> = Object.freeze({
  base: 0,
  limit: 0xffff_ffff,
  selector: BOOT_CS_SELECTOR,
  type: 0xb,
  present: 1,
  dpl: 0,
  db: 0,
  s: 1,
  l: 1,
  g: 1,
  avl: 0,
});

/** Flat data: read/write, accessed (type 0x3), 32-bit default size, 4 GiB limit. */
export const BOOT_DATA_SEGMENT: Readonly<Segment> = Object.freeze({
  base: 0,
  limit: 0xffff_ffff,
  selector: BOOT_DS_SELECTOR,
  type: 0x3,
  present: 1,
  dpl: 0,
  db: 1,
  s: 1,
  l: 0,
  g: 1,
  avl: 0,
});

/**
 * A busy 64-bit TSS (type 0xb). The kernel loads its own TR later, but VMX refuses to enter a
 * guest whose TR is unusable or of another type (Intel SDM vol. 3, 27.3.1.2), so we give it one.
 */
export const BOOT_TSS_SEGMENT: Readonly<Segment> = Object.freeze({
  base: BOOT_TSS_GPA,
  limit: BOOT_TSS_SIZE - 1,
  selector: BOOT_TSS_SELECTOR,
  type: 0xb,
  present: 1,
  dpl: 0,
  db: 0,
  s: 0,
  l: 0,
  g: 0,
  avl: 0,
});

/**
 * The 8-byte descriptor for `seg` (Intel SDM vol. 3, 3.4.5), as [low dword, high dword]. For a
 * system segment (s = 0) in long mode this is the first half of a 16-byte descriptor whose
 * second half holds base bits 63:32.
 */
export function segmentDescriptor(seg: Segment): [number, number] {
  // With G set the descriptor counts 4 KiB units; kvm_segment's limit counts bytes.
  const limit = seg.g ? Math.floor(seg.limit / PAGE_SIZE) : seg.limit;
  const low = ((limit & 0xffff) | ((seg.base & 0xffff) << 16)) >>> 0;
  const high = (((seg.base >>> 16) & 0xff) |
    (seg.type << 8) | (seg.s << 12) | (seg.dpl << 13) | (seg.present << 15) |
    (((limit >>> 16) & 0xf) << 16) |
    (seg.avl << 20) | (seg.l << 21) | (seg.db << 22) | (seg.g << 23) |
    (((seg.base >>> 24) & 0xff) << 24)) >>> 0;
  return [low, high];
}

/**
 * Write the GDT, IDT, TSS and identity-mapped page tables the 64-bit entry needs.
 *
 * @example
 * ```ts
 * writeLongModeTables(mem);
 * mem.readU32(PD_GPA) === 0x83; // 2 MiB page at 0, present + writable
 * ```
 */
export function writeLongModeTables(mem: GuestMemory): void {
  mem.slice(BOOT_GDT_GPA, BOOT_GDT_SIZE).fill(0);
  for (const seg of [BOOT_CODE_SEGMENT, BOOT_DATA_SEGMENT, BOOT_TSS_SEGMENT]) {
    const [low, high] = segmentDescriptor(seg);
    mem.writeU32(BOOT_GDT_GPA + seg.selector, low);
    mem.writeU32(BOOT_GDT_GPA + seg.selector + 4, high);
  }
  // The TSS descriptor's upper 8 bytes (base bits 63:32, then reserved) stay zero from the fill.

  mem.slice(BOOT_IDT_GPA, BOOT_TSS_GPA - BOOT_IDT_GPA).fill(0);
  mem.slice(BOOT_TSS_GPA, BOOT_TSS_SIZE).fill(0);
  // I/O map base at the TSS limit: no I/O permission bitmap (SDM vol. 1, 19.5.2).
  mem.writeU16(BOOT_TSS_GPA + 0x66, BOOT_TSS_SIZE);

  mem.slice(PML4_GPA, (2 + PAGE_DIRECTORIES) * PAGE_SIZE).fill(0);
  writeEntry(mem, PML4_GPA, PDPT_GPA | PTE_PRESENT | PTE_WRITABLE);
  for (let dir = 0; dir < PAGE_DIRECTORIES; dir++) {
    const pd = PD_GPA + dir * PAGE_SIZE;
    writeEntry(mem, PDPT_GPA + dir * 8, pd | PTE_PRESENT | PTE_WRITABLE);
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const gpa = (dir * ENTRIES_PER_TABLE + i) * LARGE_PAGE_SIZE;
      writeEntry(mem, pd + i * 8, gpa + (PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE));
    }
  }
}

/** A 64-bit table entry from a number below 2^53, as two little-endian dwords. */
function writeEntry(mem: GuestMemory, gpa: number, value: number): void {
  mem.writeU32(gpa, value % 0x1_0000_0000);
  mem.writeU32(gpa + 4, Math.floor(value / 0x1_0000_0000));
}

/**
 * The vCPU state for entering the kernel's 64-bit entry point with the tables of
 * {@link writeLongModeTables} in place.
 *
 * @example
 * ```ts
 * const state = longModeEntry({ ripGpa: 0x100200, zeroPageGpa: 0x7000 });
 * state.cs.selector; // 0x10
 * ```
 */
export function longModeEntry(
  { ripGpa, zeroPageGpa }: { ripGpa: number; zeroPageGpa: number },
): VcpuEntryState {
  const data = (): Segment => ({ ...BOOT_DATA_SEGMENT });
  return {
    regs: {
      rip: ripGpa,
      rsi: zeroPageGpa,
      rsp: BOOT_STACK_GPA,
      rbp: BOOT_STACK_GPA,
      rflags: RFLAGS_RESERVED,
    },
    // PE + PG (+ LME in EFER) is long mode; ET as the hardware reports it. CD/NW stay clear so
    // caching is on, and WP/NE/MP are left for the kernel to set as it wants them.
    cr0: (CR0_PE | CR0_ET | CR0_PG) >>> 0,
    cr3: PML4_GPA,
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA,
    gdt: { base: BOOT_GDT_GPA, limit: BOOT_GDT_SIZE - 1 },
    // Limit 0: no usable vector, so any fault before the kernel's own IDT is a clean triple
    // fault (a shutdown exit) rather than a jump through garbage.
    idt: { base: BOOT_IDT_GPA, limit: 0 },
    cs: { ...BOOT_CODE_SEGMENT },
    ds: data(),
    es: data(),
    fs: data(),
    gs: data(),
    ss: data(),
    tr: { ...BOOT_TSS_SEGMENT },
  };
}
