/**
 * struct pollfd (<poll.h>): `int fd; short events; short revents;`, 8 bytes, in an array as
 * `poll(2)` takes it.
 *
 * @module
 */
import { StructView } from "./struct_view.ts";

export class PollFds extends StructView {
  static readonly SIZE = 8;
  static readonly OFFSETS = { fd: 0, events: 4, revents: 6 };
  readonly count: number;
  /** nfds_t, for `libc.poll`. */
  readonly nfds: bigint;

  /** One entry per fd in `fds`, each waiting for `events`. */
  constructor(fds: readonly number[], events: number) {
    super(PollFds.SIZE * fds.length);
    this.count = fds.length;
    this.nfds = BigInt(fds.length);
    fds.forEach((fd, i) => {
      this.setFd(i, fd);
      this.setU16(i * PollFds.SIZE + PollFds.OFFSETS.events, events);
    });
  }

  /** Entry `i` watches `fd`; -1 makes poll(2) skip it. */
  setFd(i: number, fd: number): void {
    this.dv.setInt32(i * PollFds.SIZE + PollFds.OFFSETS.fd, fd, true);
  }

  fd(i: number): number {
    return this.dv.getInt32(i * PollFds.SIZE + PollFds.OFFSETS.fd, true);
  }

  /** What `poll` found on entry `i`. */
  revents(i: number): number {
    return this.u16(i * PollFds.SIZE + PollFds.OFFSETS.revents);
  }
}
