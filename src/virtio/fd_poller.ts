/** A blocking poll(2) over a fixed set of fds, for Workers that sleep until one is readable. */
import { errno, libc, POLLIN, SyscallError } from "../../ffi/libc.ts";
import { EINTR } from "../../ffi/errno.ts";
import { PollFds } from "../../ffi/pollfd.ts";

export class FdPoller {
  readonly #set: PollFds;
  readonly #ready: number[] = [];

  constructor(readonly fds: readonly number[]) {
    this.#set = new PollFds(fds, POLLIN);
  }

  /**
   * Watch `fd` again, or stop watching it for now (a tap while the guest has no buffers). A
   * stopped fd is entered as -1, which poll(2) skips: with events 0 it would still report
   * POLLERR and POLLHUP, and a deleted tap's descriptor has POLLERR for good.
   */
  setEnabled(fd: number, enabled: boolean): void {
    const i = this.fds.indexOf(fd);
    if (i >= 0) this.#set.setFd(i, enabled ? fd : -1);
  }

  /** Block until at least one fd is readable; returns those fds (a reused array). */
  wait(timeoutMs = -1): readonly number[] {
    for (;;) {
      const n = libc.poll(this.#set.bytes, this.#set.nfds, timeoutMs);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        throw new SyscallError("poll", e);
      }
      this.#ready.length = 0;
      for (let i = 0; i < this.fds.length; i++) {
        if (this.#set.revents(i) !== 0) this.#ready.push(this.fds[i]);
      }
      return this.#ready;
    }
  }
}
