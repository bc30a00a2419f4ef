/**
 * The KVM file descriptors as objects, in the manner of rust-vmm's kvm-ioctls: `Kvm` for
 * /dev/kvm, `VmFd` for a VM, `VcpuFd` for a vCPU. The only place that issues KVM ioctls.
 */
import {
  check,
  cString,
  errno,
  errnoCell,
  libc,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  SyscallError,
} from "./libc.ts";
import { EACCES, EAGAIN, EINTR, ENOENT, ENOTTY, EPERM } from "./errno.ts";
import * as K from "./kvm.ts";
import { KvmRun } from "./kvm_run.ts";
import { KvmRegs, KvmSregs } from "./kvm_regs.ts";
import {
  KvmCpuid2,
  KvmIrqLevel,
  KvmPitConfig,
  KvmUserspaceMemoryRegion,
} from "./kvm_vm_structs.ts";
import {
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_IRQFD_FLAG_RESAMPLE,
  KvmIoeventfd,
  KvmIrqfd,
  KvmIrqRouting,
} from "./kvm_irq_structs.ts";
import * as A from "./kvm_arm64.ts";

/** Why /dev/kvm cannot be used, as one line for the user. */
export class KvmUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KvmUnavailableError";
  }
}

/** Entries asked of KVM_GET_SUPPORTED_CPUID; KVM answers E2BIG below its count. */
const CPUID_CAPACITY = 256;

export class Kvm {
  private constructor(readonly fd: number) {}

  /** Open /dev/kvm and check the API version and every capability in `required`. */
  static open(required: Array<keyof typeof K.KVM_CAP>, path = "/dev/kvm"): Kvm {
    const fd = libc.open(cString(path), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = errno();
      if (e === ENOENT) {
        throw new KvmUnavailableError(
          `${path} does not exist: load kvm-intel or kvm-amd, or run through scripts/with-kvm.sh (the KVM sandbox)`,
        );
      }
      if (e === EACCES || e === EPERM) {
        throw new KvmUnavailableError(
          `${path}: permission denied: run as root or add your user to the kvm group`,
        );
      }
      throw new SyscallError(`open ${path}`, e);
    }
    const kvm = new Kvm(fd);
    const version = libc.ioctl_int(fd, BigInt(K.KVM_GET_API_VERSION), 0n);
    if (version < 0) {
      const e = errno();
      if (e === ENOTTY) throw new KvmUnavailableError(`${path} is not a KVM device`);
      throw new SyscallError("KVM_GET_API_VERSION", e);
    }
    if (version !== K.KVM_API_VERSION) {
      throw new KvmUnavailableError(`${path} speaks KVM API ${version}, need ${K.KVM_API_VERSION}`);
    }
    for (const cap of required) {
      if (kvm.checkExtension(K.KVM_CAP[cap]) <= 0) {
        throw new KvmUnavailableError(`${path} lacks KVM_CAP_${cap}, which denovmm needs`);
      }
    }
    return kvm;
  }

  checkExtension(cap: number): number {
    return check(
      "KVM_CHECK_EXTENSION",
      libc.ioctl_int(this.fd, BigInt(K.KVM_CHECK_EXTENSION), BigInt(cap)),
    );
  }

  vcpuMmapSize(): number {
    return check(
      "KVM_GET_VCPU_MMAP_SIZE",
      libc.ioctl_int(this.fd, BigInt(K.KVM_GET_VCPU_MMAP_SIZE), 0n),
    );
  }

  supportedCpuid(): KvmCpuid2 {
    const cpuid = new KvmCpuid2(CPUID_CAPACITY);
    check(
      "KVM_GET_SUPPORTED_CPUID",
      libc.ioctl(this.fd, BigInt(K.KVM_GET_SUPPORTED_CPUID), cpuid.pointer),
    );
    return cpuid;
  }

  createVm(): VmFd {
    return new VmFd(check("KVM_CREATE_VM", libc.ioctl_int(this.fd, BigInt(K.KVM_CREATE_VM), 0n)));
  }
}

/** How VmFd.irqfd binds: `resampleFd` makes it level-triggered, `deassign` unbinds. */
export interface IrqfdOptions {
  resampleFd?: number;
  deassign?: boolean;
}

export class VmFd {
  readonly #irq = new KvmIrqLevel();
  readonly #region = new KvmUserspaceMemoryRegion();
  readonly #irqfdArg = new KvmIrqfd();
  readonly #ioeventfdArg = new KvmIoeventfd();
  constructor(readonly fd: number) {}

  setTssAddr(gpa: number): void {
    check("KVM_SET_TSS_ADDR", libc.ioctl_int(this.fd, BigInt(K.KVM_SET_TSS_ADDR), BigInt(gpa)));
  }

  setIdentityMapAddr(gpa: number): void {
    const arg = new BigUint64Array([BigInt(gpa)]);
    check(
      "KVM_SET_IDENTITY_MAP_ADDR",
      libc.ioctl(this.fd, BigInt(K.KVM_SET_IDENTITY_MAP_ADDR), Deno.UnsafePointer.of(arg)),
    );
  }

  createIrqchip(): void {
    check("KVM_CREATE_IRQCHIP", libc.ioctl_int(this.fd, BigInt(K.KVM_CREATE_IRQCHIP), 0n));
  }

  createPit2(flags: number): void {
    const cfg = new KvmPitConfig();
    cfg.flags = flags;
    check("KVM_CREATE_PIT2", libc.ioctl(this.fd, BigInt(K.KVM_CREATE_PIT2), cfg.pointer));
  }

  /** KVM_CHECK_EXTENSION on the VM: what this VM supports (0 or less: not at all). */
  checkExtension(cap: number): number {
    return libc.ioctl_int(this.fd, BigInt(K.KVM_CHECK_EXTENSION), BigInt(cap));
  }

  setUserMemoryRegion(slot: number, gpa: number, size: number, hva: bigint, flags = 0): void {
    const e = this.trySetUserMemoryRegion(slot, gpa, size, hva, flags);
    if (e !== 0) throw new SyscallError("KVM_SET_USER_MEMORY_REGION", e);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION for what the guest decides (a BAR's place): 0, or the errno,
   * e.g. EEXIST when the range overlaps another slot.
   */
  trySetUserMemoryRegion(slot: number, gpa: number, size: number, hva: bigint, flags = 0): number {
    const r = this.#region;
    r.slot = slot;
    r.flags = flags;
    r.guest_phys_addr = gpa;
    r.memory_size = size;
    r.userspace_addr = hva;
    return libc.ioctl(this.fd, BigInt(K.KVM_SET_USER_MEMORY_REGION), r.pointer) < 0 ? errno() : 0;
  }

  /** Drive a level-triggered GSI (KVM_IRQ_LINE); safe from any thread. */
  irqLine(irq: number, level: boolean): void {
    const v = this.#irq;
    v.irq = irq;
    v.level = level ? 1 : 0;
    check("KVM_IRQ_LINE", libc.ioctl(this.fd, BigInt(K.KVM_IRQ_LINE), v.pointer));
  }

  /**
   * Make a write to `fd` raise `gsi` (KVM_IRQFD), or stop that with `deassign`. With
   * `resampleFd` it is level-triggered: a write asserts `gsi` (an IOAPIC pin) until the guest
   * EOIs it, when KVM de-asserts the line and signals `resampleFd` (KVM_IRQFD_FLAG_RESAMPLE).
   */
  irqfd(fd: number, gsi: number, opts: IrqfdOptions = {}): void {
    const e = this.tryIrqfd(fd, gsi, opts);
    if (e !== 0) throw new SyscallError("KVM_IRQFD", e);
  }

  /** KVM_IRQFD at run time: 0, or the errno. */
  tryIrqfd(fd: number, gsi: number, opts: IrqfdOptions = {}): number {
    const flags = (opts.deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0) |
      (opts.resampleFd !== undefined ? KVM_IRQFD_FLAG_RESAMPLE : 0);
    const v = this.#irqfdArg.set(fd, gsi, flags, opts.resampleFd ?? 0);
    return libc.ioctl(this.fd, BigInt(K.KVM_IRQFD), v.pointer) < 0 ? errno() : 0;
  }

  /** Make guest writes of `len` bytes at `addr` (MMIO, or port I/O with `pio`) signal `fd`. */
  ioeventfd(addr: number, len: number, fd: number, opts: { pio?: boolean; deassign?: boolean }) {
    const e = this.tryIoeventfd(addr, len, fd, opts);
    if (e !== 0) throw new SyscallError("KVM_IOEVENTFD", e);
  }

  /**
   * KVM_IOEVENTFD where the guest decides the address: 0, or the errno (EEXIST: another
   * ioeventfd is there; ENOENT on deassign: none was).
   */
  tryIoeventfd(
    addr: number,
    len: number,
    fd: number,
    opts: { pio?: boolean; deassign?: boolean },
  ): number {
    const flags = (opts.pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
      (opts.deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
    const v = this.#ioeventfdArg.set(addr, len, fd, flags);
    return libc.ioctl(this.fd, BigInt(K.KVM_IOEVENTFD), v.pointer) < 0 ? errno() : 0;
  }

  /** Replace the whole GSI routing table. */
  setGsiRouting(routing: KvmIrqRouting): void {
    const e = this.trySetGsiRouting(routing);
    if (e !== 0) throw new SyscallError("KVM_SET_GSI_ROUTING", e);
  }

  /** KVM_SET_GSI_ROUTING at run time: 0, or the errno. */
  trySetGsiRouting(routing: KvmIrqRouting): number {
    return libc.ioctl(this.fd, BigInt(K.KVM_SET_GSI_ROUTING), routing.pointer) < 0 ? errno() : 0;
  }

  /** arm64: the vCPU target (and features) KVM prefers on this host (KVM_ARM_PREFERRED_TARGET). */
  armPreferredTarget(): A.KvmVcpuInit {
    const init = new A.KvmVcpuInit();
    check(
      "KVM_ARM_PREFERRED_TARGET",
      libc.ioctl(this.fd, BigInt(A.KVM_ARM_PREFERRED_TARGET), init.pointer),
    );
    return init;
  }

  /** An in-kernel device (KVM_CREATE_DEVICE, e.g. the arm64 vGIC); returns its fd. */
  createDevice(type: number): KvmDeviceFd {
    const arg = new A.KvmCreateDevice(type);
    check("KVM_CREATE_DEVICE", libc.ioctl(this.fd, BigInt(A.KVM_CREATE_DEVICE), arg.pointer));
    return new KvmDeviceFd(arg.fd);
  }

  createVcpu(id: number): number {
    return check("KVM_CREATE_VCPU", libc.ioctl_int(this.fd, BigInt(K.KVM_CREATE_VCPU), BigInt(id)));
  }
}

/** An in-kernel device's fd (KVM_CREATE_DEVICE): its attributes set by KVM_SET_DEVICE_ATTR. */
export class KvmDeviceFd {
  constructor(readonly fd: number) {}

  /**
   * Set attribute `attr` of `group`; `value`, when given, is passed by pointer as a u64 (a
   * guest address), whose first four bytes are also what KVM reads for a u32 attribute (the
   * vGIC's interrupt count): little-endian.
   */
  setAttr(what: string, group: number, attr: number, value?: number): void {
    const arg = new A.KvmDeviceAttr(group, attr, value);
    check(what, libc.ioctl(this.fd, BigInt(A.KVM_SET_DEVICE_ATTR), arg.pointer));
  }

  /** Whether the device has the attribute (KVM_HAS_DEVICE_ATTR). */
  hasAttr(group: number, attr: number): boolean {
    const arg = new A.KvmDeviceAttr(group, attr);
    return libc.ioctl(this.fd, BigInt(A.KVM_HAS_DEVICE_ATTR), arg.pointer) === 0;
  }
}

/** Precomputed so the exit loop makes no BigInt per KVM_RUN. */
const KVM_RUN_REQUEST = BigInt(K.KVM_RUN);

export class VcpuFd {
  readonly run: KvmRun;
  readonly regs = new KvmRegs();
  readonly sregs = new KvmSregs();
  readonly #oneReg = new A.KvmOneReg();
  /** KVM_RUN's call, taken once: the exit loop then makes no libc lookup per exit. */
  readonly #ioctlInt = libc.ioctl_int;
  /** This thread's errno (a vCPU fd is run on the thread that wrapped it). */
  readonly #errno = errnoCell();

  /** Wrap a vCPU fd (from VmFd.createVcpu, possibly on another thread) and map its kvm_run. */
  constructor(readonly fd: number, runSize: number) {
    const p = libc.mmap(null, BigInt(runSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
    if (p === null || Deno.UnsafePointer.value(p) === 0xffff_ffff_ffff_ffffn) {
      throw new SyscallError("mmap kvm_run", errno());
    }
    this.run = new KvmRun(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, runSize)));
  }

  /**
   * Enter the guest until the next exit to user space. Returns false when the call was
   * interrupted (EINTR/EAGAIN) and should simply be repeated.
   */
  runOnce(): boolean {
    const cell = this.#errno;
    // Cleared first, so that a failure that left no errno shows as 0, not as some earlier
    // call's error.
    cell[0] = 0;
    const r = this.#ioctlInt(this.fd, KVM_RUN_REQUEST, 0n);
    if (r === 0) return true;
    const e = cell[0];
    if (e === EINTR || e === EAGAIN) return false;
    throw new SyscallError(r === -1 ? "KVM_RUN" : `KVM_RUN (returned ${r})`, e);
  }

  getRegs(): KvmRegs {
    check("KVM_GET_REGS", libc.ioctl(this.fd, BigInt(K.KVM_GET_REGS), this.regs.pointer));
    return this.regs;
  }
  setRegs(): void {
    check("KVM_SET_REGS", libc.ioctl(this.fd, BigInt(K.KVM_SET_REGS), this.regs.pointer));
  }
  getSregs(): KvmSregs {
    check("KVM_GET_SREGS", libc.ioctl(this.fd, BigInt(K.KVM_GET_SREGS), this.sregs.pointer));
    return this.sregs;
  }
  setSregs(): void {
    check("KVM_SET_SREGS", libc.ioctl(this.fd, BigInt(K.KVM_SET_SREGS), this.sregs.pointer));
  }
  /** arm64: reset the vCPU to `init`'s target and features (KVM_ARM_VCPU_INIT). */
  armVcpuInit(init: A.KvmVcpuInit): void {
    check("KVM_ARM_VCPU_INIT", libc.ioctl(this.fd, BigInt(A.KVM_ARM_VCPU_INIT), init.pointer));
  }

  /** One register by id (KVM_GET_ONE_REG; a 64-bit one). */
  getOneReg(id: bigint): bigint {
    const r = this.#oneReg;
    r.id = id;
    check("KVM_GET_ONE_REG", libc.ioctl(this.fd, BigInt(A.KVM_GET_ONE_REG), r.pointer));
    return r.value[0];
  }

  /** Set one 64-bit register by id (KVM_SET_ONE_REG). */
  setOneReg(id: bigint, value: bigint): void {
    const r = this.#oneReg;
    r.id = id;
    r.value[0] = value;
    check("KVM_SET_ONE_REG", libc.ioctl(this.fd, BigInt(A.KVM_SET_ONE_REG), r.pointer));
  }

  setCpuid(cpuid: KvmCpuid2): void {
    check("KVM_SET_CPUID2", libc.ioctl(this.fd, BigInt(K.KVM_SET_CPUID2), cpuid.pointer));
  }
}
