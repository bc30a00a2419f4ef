/**
 * The one binding of libc. Every other module calls libc through `libc` and turns failures
 * into errors with `check`; nothing else calls Deno.dlopen.
 *
 * `ioctl` is variadic in C. On x86-64 the System V ABI passes the third argument in a
 * register whatever its type, so fixed signatures per argument kind are sound: one for a
 * pointer argument and one for an integer argument.
 */
import { errnoName } from "./errno.ts";

// Where modules that already import libc.ts find errnoName (ffi/errno.ts has it).
export { errnoName };

/**
 * libc's symbols in groups that are used together. A group is opened (Deno.dlopen) the first
 * time one of its symbols is used, on each thread: opening costs about 0.25 ms per symbol
 * natively (Deno compiles a call trampoline for each) and many times that under an emulated
 * CPU, and most threads use few of them (a vCPU thread: KVM_RUN, errno, the console's write).
 */
const groups = {
  /** KVM_RUN and its errno: every vCPU, every exit. */
  run: {
    ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" }, // int ioctl(int fd, unsigned long req, unsigned long arg)
    __errno_location: { parameters: [], result: "pointer" }, // int *__errno_location(void)
  },
  ioctl: {
    ioctl: { parameters: ["i32", "u64", "pointer"], result: "i32" }, // int ioctl(int fd, unsigned long req, void *arg)
  },
  memory: {
    mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" }, // void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    munmap: { parameters: ["pointer", "usize"], result: "i32" }, // int munmap(void *addr, size_t len)
    madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" }, // int madvise(void *addr, size_t len, int advice)
    sysconf: { parameters: ["i32"], result: "i64" }, // long sysconf(int name)
  },
  stream: {
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // ssize_t read(int fd, void *buf, size_t n)
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // ssize_t write(int fd, const void *buf, size_t n)
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32" }, // int poll(struct pollfd *fds, nfds_t n, int timeout)
  },
  files: {
    open: { parameters: ["buffer", "i32", "i32"], result: "i32" }, // int open(const char *path, int flags, mode_t mode)
    close: { parameters: ["i32"], result: "i32" }, // int close(int fd)
    eventfd: { parameters: ["u32", "i32"], result: "i32" }, // int eventfd(unsigned int initval, int flags)
    pipe: { parameters: ["buffer"], result: "i32" }, // int pipe(int fds[2])
    lseek: { parameters: ["i32", "i64", "i32"], result: "i64" }, // off_t lseek(int fd, off_t off, int whence)
    readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" }, // ssize_t readlink(const char *path, char *buf, size_t n)
  },
  positioned: {
    pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" }, // ssize_t pread(int fd, void *buf, size_t n, off_t off)
    pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" }, // ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
    fdatasync: { parameters: ["i32"], result: "i32" }, // int fdatasync(int fd)
  },
  // The same call run on Deno's blocking thread pool (a Promise); errno is that thread's, unread.
  async: {
    pread_async: {
      name: "pread",
      parameters: ["i32", "pointer", "usize", "i64"],
      result: "isize",
      nonblocking: true,
    },
  },
  threads: {
    gettid: { parameters: [], result: "i32" }, // pid_t gettid(void)
    tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" }, // int tgkill(pid_t tgid, pid_t tid, int sig)
    timer_create: { parameters: ["i32", "buffer", "buffer"], result: "i32" }, // int timer_create(clockid_t clock, struct sigevent *sev, timer_t *timerid)
    timer_settime: { parameters: ["pointer", "i32", "buffer", "pointer"], result: "i32" }, // int timer_settime(timer_t t, int flags, const struct itimerspec *new, struct itimerspec *old)
    timer_delete: { parameters: ["pointer"], result: "i32" }, // int timer_delete(timer_t t)
  },
  signals: {
    sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" }, // int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" }, // void *dlsym(void *handle, const char *symbol)
  },
  messages: {
    strerror: { parameters: ["i32"], result: "pointer" }, // char *strerror(int errnum)
  },
} as const satisfies Record<string, Deno.ForeignLibraryInterface>;

type Groups = typeof groups;
type Symbols<G extends Deno.ForeignLibraryInterface> = Deno.DynamicLibrary<G>["symbols"];
type Libc =
  & Symbols<Groups["run"]>
  & Symbols<Groups["ioctl"]>
  & Symbols<Groups["memory"]>
  & Symbols<Groups["stream"]>
  & Symbols<Groups["files"]>
  & Symbols<Groups["positioned"]>
  & Symbols<Groups["async"]>
  & Symbols<Groups["threads"]>
  & Symbols<Groups["signals"]>
  & Symbols<Groups["messages"]>;

const opened = new Set<string>();

function load(group: string, symbols: Deno.ForeignLibraryInterface) {
  opened.add(group);
  try {
    return Deno.dlopen("libc.so.6", symbols).symbols as Record<string, unknown>;
  } catch (cause) {
    throw new Error(`cannot load libc.so.6's ${group} calls through Deno FFI (needs --allow-ffi)`, {
      cause,
    });
  }
}

/** Every group's symbols as getters that open the group on first use. */
function lazyLibc(): Libc {
  const out = {};
  for (const [group, symbols] of Object.entries(groups)) {
    let lib: Record<string, unknown> | undefined;
    for (const name of Object.keys(symbols)) {
      Object.defineProperty(out, name, {
        get: () => (lib ??= load(group, symbols))[name],
        enumerable: true,
      });
    }
  }
  return out as Libc;
}

/** libc's symbols, each group loaded on this thread when first used (each Worker its own). */
export const libc: Libc = lazyLibc();

/** The groups this thread has opened so far, in order (tests). */
export function libcGroupsOpened(): readonly string[] {
  return [...opened];
}

// Values from <fcntl.h>, <sys/mman.h>, <sys/eventfd.h>, <poll.h>, <unistd.h> on x86-64 Linux.
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
/** Opening a FIFO does not wait for a writer; no effect on regular files and block devices. */
export const O_NONBLOCK = 0o4000;
export const SEEK_END = 2;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_MERGEABLE = 12;
export const MADV_DONTFORK = 10;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const POLLIN = 0x001;
export const _SC_PAGESIZE = 30;

let cell: Int32Array | undefined;

/**
 * This thread's errno as memory: `__errno_location()` is fixed for the life of a thread, and
 * each thread (each Worker) has its own instance of this module, hence its own cell. Reading
 * the cell is a plain load, with no call between the failed call and the read: a function call
 * is where V8 serves its interrupts (installing compiled code, finishing a GC), and runtime code
 * run there may leave its own errno behind (as dart:ffi documents for its VM).
 */
export function errnoCell(): Int32Array {
  return cell ??= new Int32Array(
    Deno.UnsafePointerView.getArrayBuffer(libc.__errno_location()!, 4),
  );
}

/** errno of the last failed libc call on this thread; read it right after the call. */
export function errno(): number {
  return errnoCell()[0];
}

/** A failed system call: names the call and errno, e.g. `KVM_RUN failed: EINTR (4)`. */
export class SyscallError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call} failed: ${errnoName(errno)} (${errno})`);
    this.name = "SyscallError";
  }
}

/** libc's message for an errno, for user-facing lines ("Permission denied"). */
export function strerror(code: number): string {
  return Deno.UnsafePointerView.getCString(libc.strerror(code)!);
}

/** Return `rc` unless it is -1, in which case throw a SyscallError naming `call`. */
export function check<T extends number | bigint>(call: string, rc: T): T {
  if (rc === -1 || rc === -1n) throw new SyscallError(call, errno());
  return rc;
}

/** A NUL-terminated C string for a `buffer` parameter. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s + "\0");
}

/** The host's page size (4 KiB here; 64 KiB on some arm64 hosts). */
export function hostPageSize(): number {
  return Number(check("sysconf(_SC_PAGESIZE)", libc.sysconf(_SC_PAGESIZE)));
}

export const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 * 1024 * 1024;

/**
 * Guest RAM: an anonymous private mapping, returned as its address and a zero-copy view.
 * Private (not shared) memory can be backed by transparent huge pages, which madvise asks for:
 * KVM then maps the guest's memory 2 MiB at a time, and a booting guest takes a few hundred
 * faults instead of tens of thousands (each one dear under nested virtualisation). It is kept
 * out of child processes (MADV_DONTFORK), so a fork never makes guest RAM copy-on-write.
 * Both are hints: a host without THP still works, with small pages.
 */
export function mmapAnonymous(sizeBytes: number): { hva: bigint; buffer: ArrayBuffer } {
  // A huge page only backs guest memory whose host and guest addresses agree modulo 2 MiB, and
  // guest RAM starts at 0: map 2 MiB more, keep the 2 MiB-aligned part, return the slack.
  const raw = libc.mmap(
    null,
    BigInt(sizeBytes + HUGE_PAGE),
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    -1,
    0n,
  );
  const start = mapped(raw, `mmap of ${sizeBytes} bytes of guest RAM`);
  const aligned = (start + BigInt(HUGE_PAGE - 1)) & ~BigInt(HUGE_PAGE - 1);
  const head = aligned - start;
  if (head > 0n) libc.munmap(raw, head);
  const tail = BigInt(HUGE_PAGE) - head;
  const p = Deno.UnsafePointer.create(aligned)!;
  if (tail > 0n) libc.munmap(Deno.UnsafePointer.create(aligned + BigInt(sizeBytes)), tail);
  libc.madvise(p, BigInt(sizeBytes), MADV_HUGEPAGE);
  libc.madvise(p, BigInt(sizeBytes), MADV_DONTFORK);
  return { hva: aligned, buffer: Deno.UnsafePointerView.getArrayBuffer(p, sizeBytes) };
}

/** A view of memory mapped by another thread, from the address it posted. */
export function viewOfAddress(hva: bigint, sizeBytes: number): ArrayBuffer {
  const p = Deno.UnsafePointer.create(hva);
  if (p === null) throw new RangeError("null address");
  return Deno.UnsafePointerView.getArrayBuffer(p, sizeBytes);
}

/** A shared mapping of `sizeBytes` of a device fd at `offset` (a VFIO region's mmap-able part). */
export function mmapDevice(fd: number, offset: number, sizeBytes: number): bigint {
  const p = libc.mmap(
    null,
    BigInt(sizeBytes),
    PROT_READ | PROT_WRITE,
    MAP_SHARED,
    fd,
    BigInt(offset),
  );
  return mapped(p, `mmap of ${sizeBytes} bytes of device fd ${fd}`);
}

/** mmap's result as an address, or the failure (MAP_FAILED, -1) as a SyscallError. */
function mapped(p: Deno.PointerValue, what: string): bigint {
  if (p === null || Deno.UnsafePointer.value(p) === 0xffff_ffff_ffff_ffffn) {
    throw new SyscallError(what, errno());
  }
  return BigInt(Deno.UnsafePointer.value(p));
}
