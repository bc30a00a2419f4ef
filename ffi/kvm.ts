/** KVM's ioctl requests and capability numbers (<linux/kvm.h>), built from the encoding. */
import { _IO, _IOR, _IOW, _IOWR } from "./ioctl.ts";
import { KVM_REGS_SIZE, KVM_SREGS_SIZE } from "./kvm_regs.ts";
import {
  KVM_CPUID2_HEADER_SIZE,
  KVM_IRQ_LEVEL_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
} from "./kvm_vm_structs.ts";
import {
  KVM_IOEVENTFD_SIZE,
  KVM_IRQ_ROUTING_HEADER_SIZE,
  KVM_IRQFD_SIZE,
} from "./kvm_irq_structs.ts";

/** KVM's ioctl type ("magic"). */
export const KVMIO = 0xae;
/** The only stable API version there has ever been. */
export const KVM_API_VERSION = 12;

export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, KVM_CPUID2_HEADER_SIZE);

export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, KVM_USERSPACE_MEMORY_REGION_SIZE);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, 8);
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, KVM_IRQ_LEVEL_SIZE);
export const KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, KVM_PIT_CONFIG_SIZE);
export const KVM_SET_GSI_ROUTING = _IOW(KVMIO, 0x6a, KVM_IRQ_ROUTING_HEADER_SIZE);
export const KVM_IRQFD = _IOW(KVMIO, 0x76, KVM_IRQFD_SIZE);
export const KVM_IOEVENTFD = _IOW(KVMIO, 0x79, KVM_IOEVENTFD_SIZE);

export const KVM_RUN = _IO(KVMIO, 0x80);
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, KVM_REGS_SIZE);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, KVM_REGS_SIZE);
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, KVM_SREGS_SIZE);
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, KVM_SREGS_SIZE);
export const KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, KVM_CPUID2_HEADER_SIZE);

/** Capabilities denovmm relies on, with the names used in error messages. */
export const KVM_CAP = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  IRQ_ROUTING: 25,
  IRQFD: 32,
  PIT2: 33,
  IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37,
  MAX_VCPUS: 66,
  TSC_DEADLINE_TIMER: 72,
  IMMEDIATE_EXIT: 136,
  // arm64's.
  ONE_REG: 70,
  DEVICE_CTRL: 89,
  ARM_PSCI_0_2: 102,
  MSI_DEVID: 131,
  ARM_VM_IPA_SIZE: 165,
} as const;
