/** A blocking poll(2) over a fixed set of fds, for Workers that sleep until one is readable. */
import { errno, libc, POLLIN, SyscallError } from "../../ffi/libc.ts";
import { EINTR } from "../../ffi/errno.ts";

const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }

export class FdPoller {
  readonly #buf: Uint8Array<ArrayBuffer>;
  readonly #view: DataView;
  readonly #ready: number[] = [];

  constructor(readonly fds: readonly number[]) {
    this.#buf = new Uint8Array(fds.length * POLLFD_SIZE);
    this.#view = new DataView(this.#buf.buffer);
    fds.forEach((fd, i) => {
      this.#view.setInt32(i * POLLFD_SIZE, fd, true);
      this.#view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
    });
  }

  /**
   * Watch `fd` again, or stop watching it for now (a tap while the guest has no buffers). A
   * stopped fd is entered as -1, which poll(2) skips: with events 0 it would still report
   * POLLERR and POLLHUP, and a deleted tap's descriptor has POLLERR for good.
   */
  setEnabled(fd: number, enabled: boolean): void {
    const i = this.fds.indexOf(fd);
    if (i >= 0) this.#view.setInt32(i * POLLFD_SIZE, enabled ? fd : -1, true);
  }

  /** Block until at least one fd is readable; returns those fds (a reused array). */
  wait(timeoutMs = -1): readonly number[] {
    for (;;) {
      const n = libc.poll(this.#buf, BigInt(this.fds.length), timeoutMs);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        throw new SyscallError("poll", e);
      }
      this.#ready.length = 0;
      for (let i = 0; i < this.fds.length; i++) {
        if (this.#view.getInt16(i * POLLFD_SIZE + 6, true) !== 0) this.#ready.push(this.fds[i]);
      }
      return this.#ready;
    }
  }
}
