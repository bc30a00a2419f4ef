/**
 * KVM's arm64 ABI (<asm/kvm.h> for arm64, and the device-control and one-reg parts of
 * <linux/kvm.h>): the ioctls that set up an arm64 vCPU and the in-kernel GICv3 with its ITS,
 * one typed view per struct. The generic structs are checked against the host's <linux/kvm.h>
 * in tests/ffi/kvm_abi_test.ts; the arm64-only ones (kvm_vcpu_init, the register ids) follow
 * arch/arm64/include/uapi/asm/kvm.h and are exercised by the arm64 KVM tests.
 *
 * @module
 */
import { _IOR, _IOW, _IOWR } from "./ioctl.ts";
import { KVMIO } from "./kvm.ts";
import { StructView } from "./struct_view.ts";

/** struct kvm_vcpu_init { __u32 target; __u32 features[7]; } */
export const KVM_VCPU_INIT_SIZE = 32;
/** struct kvm_one_reg { __u64 id; __u64 addr; } */
export const KVM_ONE_REG_SIZE = 16;
/** struct kvm_create_device { __u32 type; __u32 fd; __u32 flags; } */
export const KVM_CREATE_DEVICE_SIZE = 12;
/** struct kvm_device_attr { __u32 flags; __u32 group; __u64 attr; __u64 addr; } */
export const KVM_DEVICE_ATTR_SIZE = 24;

export const KVM_GET_ONE_REG = _IOW(KVMIO, 0xab, KVM_ONE_REG_SIZE);
export const KVM_SET_ONE_REG = _IOW(KVMIO, 0xac, KVM_ONE_REG_SIZE);
export const KVM_ARM_VCPU_INIT = _IOW(KVMIO, 0xae, KVM_VCPU_INIT_SIZE);
export const KVM_ARM_PREFERRED_TARGET = _IOR(KVMIO, 0xaf, KVM_VCPU_INIT_SIZE);
export const KVM_CREATE_DEVICE = _IOWR(KVMIO, 0xe0, KVM_CREATE_DEVICE_SIZE);
export const KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xe1, KVM_DEVICE_ATTR_SIZE);
export const KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xe3, KVM_DEVICE_ATTR_SIZE);

/** kvm_vcpu_init.features bits. */
export const KVM_ARM_VCPU_POWER_OFF = 0;
export const KVM_ARM_VCPU_PSCI_0_2 = 2;

/** KVM_CREATE_DEVICE types. */
export const KVM_DEV_TYPE_ARM_VGIC_V3 = 7;
export const KVM_DEV_TYPE_ARM_VGIC_ITS = 8;

/** Device-attribute groups and attributes of the vGIC and its ITS. */
export const KVM_DEV_ARM_VGIC_GRP_ADDR = 0;
export const KVM_DEV_ARM_VGIC_GRP_NR_IRQS = 3;
export const KVM_DEV_ARM_VGIC_GRP_CTRL = 4;
export const KVM_VGIC_V3_ADDR_TYPE_DIST = 2;
export const KVM_VGIC_V3_ADDR_TYPE_REDIST = 3;
export const KVM_VGIC_ITS_ADDR_TYPE = 4;
export const KVM_DEV_ARM_VGIC_CTRL_INIT = 0;

/** KVM_IRQ_LINE's irq field on arm64: type in bits 24-27, the INTID in bits 0-15. */
export const KVM_ARM_IRQ_TYPE_SHIFT = 24;
export const KVM_ARM_IRQ_TYPE_SPI = 1;

/** Register ids for KVM_GET/SET_ONE_REG. */
export const KVM_REG_ARM64 = 0x6000_0000_0000_0000n;
export const KVM_REG_SIZE_U64 = 0x0030_0000_0000_0000n;
const KVM_REG_ARM_CORE = 0x0010n << 16n;
const KVM_REG_ARM64_SYSREG = 0x0013n << 16n;

/**
 * A core register: `offset` is the byte offset of the field in struct kvm_regs, whose first
 * member is struct user_pt_regs { __u64 regs[31]; __u64 sp; __u64 pc; __u64 pstate; }. The id
 * counts 32-bit words.
 */
function coreReg(offset: number): bigint {
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | BigInt(offset / 4);
}
/** x0..x30. */
export const armCoreRegX = (n: number): bigint => coreReg(n * 8);
export const ARM64_REG_SP = coreReg(31 * 8);
export const ARM64_REG_PC = coreReg(32 * 8);
export const ARM64_REG_PSTATE = coreReg(33 * 8);

/** A system register by its encoding (op0, op1, CRn, CRm, op2). */
export function armSysReg(op0: number, op1: number, crn: number, crm: number, op2: number): bigint {
  const enc = (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2;
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | BigInt(enc);
}
export const ARM64_REG_MPIDR_EL1 = armSysReg(3, 0, 0, 0, 5);
/** Exception syndrome and fault address at EL1: where a dead guest was. */
export const ARM64_REG_ESR_EL1 = armSysReg(3, 0, 5, 2, 0);
export const ARM64_REG_FAR_EL1 = armSysReg(3, 0, 6, 0, 0);
export const ARM64_REG_ELR_EL1 = coreReg(34 * 8);

export class KvmVcpuInit extends StructView {
  constructor() {
    super(KVM_VCPU_INIT_SIZE);
  }
  get target(): number {
    return this.u32(0);
  }
  set target(v: number) {
    this.setU32(0, v);
  }
  /** Set feature bit `bit` (KVM_ARM_VCPU_*). */
  setFeature(bit: number): void {
    const word = 4 + 4 * Math.floor(bit / 32);
    this.setU32(word, this.u32(word) | (1 << (bit % 32)));
  }
  hasFeature(bit: number): boolean {
    return (this.u32(4 + 4 * Math.floor(bit / 32)) & (1 << (bit % 32))) !== 0;
  }
}

/** A one-reg request with its own 8-byte value buffer. */
export class KvmOneReg extends StructView {
  readonly value = new BigUint64Array(1);
  constructor() {
    super(KVM_ONE_REG_SIZE);
    this.setU64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.value))));
  }
  set id(v: bigint) {
    this.setU64(0, v);
  }
}

export class KvmCreateDevice extends StructView {
  constructor(type: number) {
    super(KVM_CREATE_DEVICE_SIZE);
    this.setU32(0, type);
  }
  get fd(): number {
    return this.u32(4);
  }
}

/** A device attribute whose value is a u64 of its own (an address, a count). */
export class KvmDeviceAttr extends StructView {
  readonly value = new BigUint64Array(1);
  constructor(group: number, attr: number, value?: number) {
    super(KVM_DEVICE_ATTR_SIZE);
    this.setU32(4, group);
    this.setU64n(8, attr);
    if (value !== undefined) {
      this.value[0] = BigInt(value);
      this.setU64(16, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.value))));
    }
  }
}
