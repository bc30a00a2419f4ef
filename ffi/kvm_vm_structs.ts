import { StructView } from "./struct_view.ts";

/** struct kvm_userspace_memory_region (KVM_SET_USER_MEMORY_REGION). */
export const KVM_USERSPACE_MEMORY_REGION_OFFSETS = {
  slot: 0,
  flags: 4,
  guest_phys_addr: 8,
  memory_size: 16,
  userspace_addr: 24,
} as const;
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;

export class KvmUserspaceMemoryRegion extends StructView {
  constructor() {
    super(KVM_USERSPACE_MEMORY_REGION_SIZE);
  }
  set slot(v: number) {
    this.setU32(KVM_USERSPACE_MEMORY_REGION_OFFSETS.slot, v);
  }
  set flags(v: number) {
    this.setU32(KVM_USERSPACE_MEMORY_REGION_OFFSETS.flags, v);
  }
  set guest_phys_addr(v: number) {
    this.setU64n(KVM_USERSPACE_MEMORY_REGION_OFFSETS.guest_phys_addr, v);
  }
  set memory_size(v: number) {
    this.setU64n(KVM_USERSPACE_MEMORY_REGION_OFFSETS.memory_size, v);
  }
  set userspace_addr(v: bigint) {
    this.setU64(KVM_USERSPACE_MEMORY_REGION_OFFSETS.userspace_addr, v);
  }
}

/** struct kvm_cpuid2 header and its struct kvm_cpuid_entry2 entries. */
export const KVM_CPUID2_HEADER_SIZE = 8;
export const KVM_CPUID_ENTRY2_OFFSETS = {
  function: 0,
  index: 4,
  flags: 8,
  eax: 12,
  ebx: 16,
  ecx: 20,
  edx: 24,
} as const;
export const KVM_CPUID_ENTRY2_SIZE = 40;
export type CpuidReg = "eax" | "ebx" | "ecx" | "edx";

/** struct kvm_cpuid2 with room for `capacity` entries (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2). */
export class KvmCpuid2 extends StructView {
  constructor(readonly capacity: number) {
    super(KVM_CPUID2_HEADER_SIZE + capacity * KVM_CPUID_ENTRY2_SIZE);
    this.nent = capacity;
  }
  get nent(): number {
    return this.u32(0);
  }
  set nent(v: number) {
    this.setU32(0, v);
  }
  #at(i: number): number {
    if (i < 0 || i >= this.capacity) throw new RangeError(`cpuid entry ${i} out of range`);
    return KVM_CPUID2_HEADER_SIZE + i * KVM_CPUID_ENTRY2_SIZE;
  }
  function(i: number): number {
    return this.u32(this.#at(i) + KVM_CPUID_ENTRY2_OFFSETS.function);
  }
  index(i: number): number {
    return this.u32(this.#at(i) + KVM_CPUID_ENTRY2_OFFSETS.index);
  }
  reg(i: number, r: CpuidReg): number {
    return this.u32(this.#at(i) + KVM_CPUID_ENTRY2_OFFSETS[r]);
  }
  setReg(i: number, r: CpuidReg, v: number): void {
    this.setU32(this.#at(i) + KVM_CPUID_ENTRY2_OFFSETS[r], v);
  }
}

/** struct kvm_pit_config (KVM_CREATE_PIT2): flags and 15 reserved words. */
export const KVM_PIT_CONFIG_SIZE = 64;
export const KVM_PIT_SPEAKER_DUMMY = 1;
export class KvmPitConfig extends StructView {
  constructor() {
    super(KVM_PIT_CONFIG_SIZE);
  }
  set flags(v: number) {
    this.setU32(0, v);
  }
}

/** struct kvm_irq_level (KVM_IRQ_LINE): irq number and level. */
export const KVM_IRQ_LEVEL_OFFSETS = { irq: 0, level: 4 } as const;
export const KVM_IRQ_LEVEL_SIZE = 8;
export class KvmIrqLevel extends StructView {
  constructor() {
    super(KVM_IRQ_LEVEL_SIZE);
  }
  set irq(v: number) {
    this.setU32(KVM_IRQ_LEVEL_OFFSETS.irq, v);
  }
  set level(v: number) {
    this.setU32(KVM_IRQ_LEVEL_OFFSETS.level, v);
  }
}
