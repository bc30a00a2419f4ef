import { StructView } from "./struct_view.ts";

/** struct kvm_regs: 18 u64 registers, in this order. */
export const KVM_REGS_FIELDS = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;
export type RegName = typeof KVM_REGS_FIELDS[number];
export const KVM_REGS_SIZE = 144;

/** struct kvm_regs (KVM_GET_REGS / KVM_SET_REGS). Registers are full 64-bit values. */
export class KvmRegs extends StructView {
  constructor() {
    super(KVM_REGS_SIZE);
  }
  static offsetOf(name: RegName): number {
    return KVM_REGS_FIELDS.indexOf(name) * 8;
  }
  get(name: RegName): bigint {
    return this.u64(KvmRegs.offsetOf(name));
  }
  set(name: RegName, v: bigint | number): void {
    this.setU64(KvmRegs.offsetOf(name), BigInt(v));
  }
}

/** struct kvm_segment: 24 bytes. */
export const KVM_SEGMENT_OFFSETS = {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
  unusable: 22,
} as const;
export const KVM_SEGMENT_SIZE = 24;

/** A segment register's fields as plain numbers (what boot code describes); `limit` in bytes. */
export interface Segment {
  base: number;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable?: number;
}

/** struct kvm_sregs: segment registers, descriptor tables, control registers. */
export const KVM_SREGS_OFFSETS = {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apic_base: 272,
  interrupt_bitmap: 280,
} as const;
export const KVM_SREGS_SIZE = 312;
/** struct kvm_dtable: base u64, limit u16, padding. */
export const KVM_DTABLE_OFFSETS = { base: 0, limit: 8 } as const;

export type SegmentName = "cs" | "ds" | "es" | "fs" | "gs" | "ss" | "tr" | "ldt";
export type ControlRegName = "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer" | "apic_base";

/** struct kvm_sregs (KVM_GET_SREGS / KVM_SET_SREGS). */
export class KvmSregs extends StructView {
  constructor() {
    super(KVM_SREGS_SIZE);
  }
  getSegment(name: SegmentName): Segment {
    const at = KVM_SREGS_OFFSETS[name];
    const S = KVM_SEGMENT_OFFSETS;
    return {
      base: this.u64n(at + S.base),
      limit: this.u32(at + S.limit),
      selector: this.u16(at + S.selector),
      type: this.u8(at + S.type),
      present: this.u8(at + S.present),
      dpl: this.u8(at + S.dpl),
      db: this.u8(at + S.db),
      s: this.u8(at + S.s),
      l: this.u8(at + S.l),
      g: this.u8(at + S.g),
      avl: this.u8(at + S.avl),
      unusable: this.u8(at + S.unusable),
    };
  }
  setSegment(name: SegmentName, seg: Segment): void {
    const at = KVM_SREGS_OFFSETS[name];
    const S = KVM_SEGMENT_OFFSETS;
    this.setU64n(at + S.base, seg.base);
    this.setU32(at + S.limit, seg.limit);
    this.setU16(at + S.selector, seg.selector);
    this.setU8(at + S.type, seg.type);
    this.setU8(at + S.present, seg.present);
    this.setU8(at + S.dpl, seg.dpl);
    this.setU8(at + S.db, seg.db);
    this.setU8(at + S.s, seg.s);
    this.setU8(at + S.l, seg.l);
    this.setU8(at + S.g, seg.g);
    this.setU8(at + S.avl, seg.avl);
    this.setU8(at + S.unusable, seg.unusable ?? 0);
  }
  getDtable(name: "gdt" | "idt"): { base: number; limit: number } {
    const at = KVM_SREGS_OFFSETS[name];
    return {
      base: this.u64n(at + KVM_DTABLE_OFFSETS.base),
      limit: this.u16(at + KVM_DTABLE_OFFSETS.limit),
    };
  }
  setDtable(name: "gdt" | "idt", t: { base: number; limit: number }): void {
    const at = KVM_SREGS_OFFSETS[name];
    this.setU64n(at + KVM_DTABLE_OFFSETS.base, t.base);
    this.setU16(at + KVM_DTABLE_OFFSETS.limit, t.limit);
  }
  get(name: ControlRegName): bigint {
    return this.u64(KVM_SREGS_OFFSETS[name]);
  }
  set(name: ControlRegName, v: bigint | number): void {
    this.setU64(KVM_SREGS_OFFSETS[name], BigInt(v));
  }
}
