import { StructView } from "./struct_view.ts";

/** Offsets in struct kvm_run (<linux/kvm.h>, x86-64); checked against the header in tests. */
export const KVM_RUN_OFFSETS = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  // The exit-reason union starts here.
  "io.direction": 32,
  "io.size": 33,
  "io.port": 34,
  "io.count": 36,
  "io.data_offset": 40,
  "mmio.phys_addr": 32,
  "mmio.data": 40,
  "mmio.len": 48,
  "mmio.is_write": 52,
  "fail_entry.hardware_entry_failure_reason": 32,
  "fail_entry.cpu": 40,
  "hw.hardware_exit_reason": 32,
  "ex.exception": 32,
  "ex.error_code": 36,
  "internal.suberror": 32,
  "internal.ndata": 36,
  "internal.data": 40,
  "system_event.type": 32,
  "system_event.ndata": 36,
} as const;

const O = KVM_RUN_OFFSETS;
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/**
 * The vCPU's shared kvm_run page (mmap of the vCPU fd). Borrowed bytes: the kernel writes
 * them on every exit, so getters read live values and nothing is cached.
 */
export class KvmRun extends StructView {
  constructor(bytes: Uint8Array<ArrayBuffer>) {
    super(bytes.byteLength, bytes);
  }
  get immediate_exit(): number {
    return this.u8(O.immediate_exit);
  }
  set immediate_exit(v: number) {
    this.setU8(O.immediate_exit, v);
  }
  get exit_reason(): number {
    return this.u32(O.exit_reason);
  }
  get io_direction(): number {
    return this.u8(O["io.direction"]);
  }
  get io_size(): number {
    return this.u8(O["io.size"]);
  }
  get io_port(): number {
    return this.u16(O["io.port"]);
  }
  get io_count(): number {
    return this.u32(O["io.count"]);
  }
  get io_data_offset(): number {
    return this.u64n(O["io.data_offset"]);
  }
  get mmio_phys_addr(): number {
    return this.u64n(O["mmio.phys_addr"]);
  }
  get mmio_len(): number {
    return this.u32(O["mmio.len"]);
  }
  get mmio_is_write(): number {
    return this.u8(O["mmio.is_write"]);
  }
  /** Offset of mmio.data inside the page, for views built once by the vCPU loop. */
  static readonly MMIO_DATA_OFFSET = O["mmio.data"];
  get fail_entry_reason(): bigint {
    return this.u64(O["fail_entry.hardware_entry_failure_reason"]);
  }
  get hw_exit_reason(): bigint {
    return this.u64(O["hw.hardware_exit_reason"]);
  }
  get internal_suberror(): number {
    return this.u32(O["internal.suberror"]);
  }
  get system_event_type(): number {
    return this.u32(O["system_event.type"]);
  }
}

/** Exit reasons (KVM_EXIT_*), and their names for dumps. */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

export function exitReasonName(reason: number): string {
  for (const [name, value] of Object.entries(KVM_EXIT)) {
    if (value === reason) return `KVM_EXIT_${name}`;
  }
  return `exit reason ${reason}`;
}
