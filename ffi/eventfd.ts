/**
 * eventfd(2) counters: the doorbells between KVM and denovmm's threads (ioeventfd for queue
 * notifications, irqfd for interrupts, and wake-ups of the I/O Worker). An EventFd object can
 * be rebuilt on any thread from its fd number.
 */
import { check, EFD_CLOEXEC, EFD_NONBLOCK, errno, libc, SyscallError } from "./libc.ts";
import { EAGAIN, EINTR } from "./errno.ts";

export class EventFd {
  readonly #one = new BigUint64Array([1n]);
  readonly #one8 = new Uint8Array(this.#one.buffer);
  readonly #value = new Uint8Array(8);

  constructor(readonly fd: number) {}

  /** A new non-blocking eventfd. */
  static create(): EventFd {
    return new EventFd(check("eventfd", libc.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
  }

  /** Add 1 to the counter (wakes a poller; raises an irqfd's GSI). */
  signal(): void {
    while (Number(libc.write(this.fd, this.#one8, 8n)) < 0) {
      const e = errno();
      if (e !== EINTR) throw new SyscallError("eventfd write", e);
    }
  }

  /** Read and reset the counter; 0 when it was already 0. */
  drain(): number {
    const n = Number(libc.read(this.fd, this.#value, 8n));
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) return 0;
      throw new SyscallError("eventfd read", e);
    }
    return Number(new DataView(this.#value.buffer).getBigUint64(0, true));
  }

  close(): void {
    libc.close(this.fd);
  }
}
