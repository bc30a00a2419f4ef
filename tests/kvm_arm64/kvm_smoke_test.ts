// The arm64 KVM this suite runs on (scripts/with-kvm.sh with DENOVMM_ARCH=arm64: an arm64 host's
// own, or the arm64 sandbox's, nested under QEMU's TCG) works from Deno: it opens, speaks API 12,
// creates a VM with a 40-bit or larger IPA space, and runs four instructions of guest code to an
// MMIO exit. The host's pages are 16 KiB there (the sandbox boots Debian's arm64-16k kernel), so
// the VMM cannot assume a 4 KiB host page. Self-contained on purpose (its own dlopen of libc):
// it checks the machine, not denovmm's code.
import { equal, ok } from "../assert.ts";

const libc = Deno.dlopen("libc.so.6", {
  open: { parameters: ["buffer", "i32"], result: "i32" }, // int open(const char *path, int flags, ...)
  close: { parameters: ["i32"], result: "i32" }, // int close(int fd)
  // int ioctl(int fd, unsigned long request, ...): variadic, but AAPCS64 passes the argument in
  // a register either way, so a fixed signature per argument type works.
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  ioctlPtr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  getpagesize: { parameters: [], result: "i32" }, // int getpagesize(void)
  __errno_location: { parameters: [], result: "pointer" }, // int *__errno_location(void)
});

// <linux/kvm.h>, <asm/kvm.h> (arm64); _IO(0xAE, n) = 0xAE00 | n, _IOW/_IOR add the size.
const KVM_GET_API_VERSION = 0xae00n;
const KVM_CREATE_VM = 0xae01n;
const KVM_CHECK_EXTENSION = 0xae03n;
const KVM_GET_VCPU_MMAP_SIZE = 0xae04n;
const KVM_CREATE_VCPU = 0xae41n;
const KVM_SET_USER_MEMORY_REGION = 0x4020ae46n; // _IOW(0xAE, 0x46, 32-byte region)
const KVM_RUN = 0xae80n;
const KVM_SET_ONE_REG = 0x4010aeacn; // _IOW(0xAE, 0xac, struct kvm_one_reg)
const KVM_ARM_VCPU_INIT = 0x4020aeaen; // _IOW(0xAE, 0xae, struct kvm_vcpu_init)
const KVM_ARM_PREFERRED_TARGET = 0x8020aeafn; // _IOR(0xAE, 0xaf, struct kvm_vcpu_init)
const KVM_CAP_ARM_VM_IPA_SIZE = 165n;
const KVM_EXIT_MMIO = 6;
/** The PC as a KVM_REG_ARM_CORE register: arm64 | u64 | core | offsetof(kvm_regs, regs.pc) / 4. */
const REG_PC = 0x6030000000100000n | (256n / 4n);

const PROT_READ_WRITE = 0x3, MAP_SHARED = 0x1, MAP_ANONYMOUS_PRIVATE = 0x22;

function errno(): number {
  return new Deno.UnsafePointerView(libc.symbols.__errno_location()!).getInt32();
}

/** ioctl that throws with errno on -1. */
function ioctl(fd: number, request: bigint, arg: bigint | Uint8Array<ArrayBuffer> = 0n): number {
  const r = typeof arg === "bigint"
    ? libc.symbols.ioctl(fd, request, arg)
    : libc.symbols.ioctlPtr(fd, request, arg);
  if (r < 0) throw new Error(`ioctl(${fd}, 0x${request.toString(16)}) failed: errno ${errno()}`);
  return r;
}

function mmap(size: number, prot: number, flags: number, fd: number): Deno.PointerObject {
  const p = libc.symbols.mmap(null, BigInt(size), prot, flags, fd, 0n);
  if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
    throw new Error(`mmap of ${size} bytes failed: errno ${errno()}`);
  }
  return p;
}

Deno.test("arm64 KVM: Deno runs as aarch64 on a 16 KiB-page host kernel", () => {
  equal(Deno.build.arch, "aarch64", "run these tests under DENOVMM_ARCH=arm64 with-kvm.sh");
  equal(libc.symbols.getpagesize(), 16384, "getpagesize()");
  const smaps = Deno.readTextFileSync("/proc/self/smaps");
  equal(smaps.match(/^KernelPageSize:\s+(\d+) kB$/m)?.[1], "16", "KernelPageSize in smaps");
});

Deno.test("arm64 KVM: /dev/kvm speaks API 12, creates a VM and runs guest code to an MMIO exit", () => {
  const kvm = libc.symbols.open(new TextEncoder().encode("/dev/kvm\0"), 0o2000002); // O_RDWR|O_CLOEXEC
  ok(kvm >= 0, `open /dev/kvm: errno ${errno()}`);
  const fds = [kvm];
  try {
    equal(ioctl(kvm, KVM_GET_API_VERSION), 12, "KVM_GET_API_VERSION");
    const ipaBits = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE);
    ok(ipaBits >= 40, `KVM_CAP_ARM_VM_IPA_SIZE is ${ipaBits}`);
    const vm = ioctl(kvm, KVM_CREATE_VM, 0n); // type 0: the default 40-bit IPA space
    fds.push(vm);

    // 64 KiB of guest RAM at 0x10000 (a multiple of any host page size), code at its start:
    //   mov x0, #42; movz x1, #0x1000, lsl #16; str x0, [x1]; b .
    // The store to 0x10000000, where no memory slot is, exits to us as MMIO.
    const ramSize = 0x10000, ramGpa = 0x10000n;
    const ram = mmap(ramSize, PROT_READ_WRITE, MAP_ANONYMOUS_PRIVATE, -1);
    const code = new DataView(Deno.UnsafePointerView.getArrayBuffer(ram, ramSize));
    [0xd2800540, 0xd2a20001, 0xf9000020, 0x14000000].forEach((insn, i) =>
      code.setUint32(i * 4, insn, true)
    );
    const region = new DataView(new ArrayBuffer(32)); // struct kvm_userspace_memory_region
    region.setUint32(0, 0, true); // slot
    region.setBigUint64(8, ramGpa, true); // guest_phys_addr
    region.setBigUint64(16, BigInt(ramSize), true); // memory_size
    region.setBigUint64(24, Deno.UnsafePointer.value(ram), true); // userspace_addr
    ioctl(vm, KVM_SET_USER_MEMORY_REGION, new Uint8Array(region.buffer));

    const vcpu = ioctl(vm, KVM_CREATE_VCPU, 0n);
    fds.push(vcpu);
    const init = new Uint8Array(32); // struct kvm_vcpu_init: target, features[7]
    ioctl(vm, KVM_ARM_PREFERRED_TARGET, init);
    ioctl(vcpu, KVM_ARM_VCPU_INIT, init);
    const pc = new DataView(new ArrayBuffer(8));
    pc.setBigUint64(0, ramGpa, true);
    const oneReg = new DataView(new ArrayBuffer(16)); // struct kvm_one_reg: id, addr
    oneReg.setBigUint64(0, REG_PC, true);
    oneReg.setBigUint64(8, Deno.UnsafePointer.value(Deno.UnsafePointer.of(pc.buffer)), true);
    ioctl(vcpu, KVM_SET_ONE_REG, new Uint8Array(oneReg.buffer));

    const runSize = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE);
    const run = new DataView(
      Deno.UnsafePointerView.getArrayBuffer(
        mmap(runSize, PROT_READ_WRITE, MAP_SHARED, vcpu),
        runSize,
      ),
    );
    ioctl(vcpu, KVM_RUN);
    // struct kvm_run: exit_reason at 8; the mmio exit at 32: phys_addr, data[8], len, is_write.
    equal(run.getUint32(8, true), KVM_EXIT_MMIO, "exit_reason");
    equal(run.getBigUint64(32, true), 0x10000000n, "mmio.phys_addr");
    equal(run.getBigUint64(40, true), 42n, "mmio.data");
    equal(run.getUint32(48, true), 8, "mmio.len");
    equal(run.getUint8(52), 1, "mmio.is_write");
  } finally {
    for (const fd of fds.reverse()) libc.symbols.close(fd);
  }
});
