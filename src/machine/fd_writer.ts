/**
 * Byte output to a file descriptor straight from a vCPU thread (the console's THR writes),
 * without going through the main thread's event loop.
 */
import { errno, libc, SyscallError } from "../../ffi/libc.ts";

const EAGAIN = 11;
const EINTR = 4;
const POLLOUT = 0x004;

export class FdWriter {
  readonly #one = new Uint8Array(1);
  readonly #pollfd = new Uint8Array(8);

  constructor(readonly fd: number) {
    const dv = new DataView(this.#pollfd.buffer);
    dv.setInt32(0, fd, true);
    dv.setInt16(4, POLLOUT, true);
  }

  writeByte(byte: number): void {
    this.#one[0] = byte;
    this.write(this.#one);
  }

  /** Write all of `bytes`, waiting when the fd is non-blocking and full. */
  write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const n = Number(libc.write(this.fd, bytes.subarray(done), BigInt(bytes.length - done)));
      if (n >= 0) {
        done += n;
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) throw new SyscallError(`write to fd ${this.fd}`, e);
      libc.poll(this.#pollfd, 1n, 100);
    }
  }
}
