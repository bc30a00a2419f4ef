/**
 * Byte output to a file descriptor straight from a vCPU thread (the console's THR writes),
 * without going through the main thread's event loop.
 */
import { errno, libc, strerror } from "./libc.ts";
import { EAGAIN, EINTR, errnoName } from "./errno.ts";
import { logRateLimited } from "../src/log.ts";
import { PollFds } from "./pollfd.ts";

const POLLOUT = 0x004;

export class FdWriter {
  readonly #one = new Uint8Array(1);
  readonly #pollfd: PollFds;

  constructor(readonly fd: number) {
    this.#pollfd = new PollFds([fd], POLLOUT);
  }

  writeByte(byte: number): void {
    this.#one[0] = byte;
    this.write(this.#one);
  }

  /** Bytes that could not be written (the reader went away, the terminal hung up). */
  dropped = 0;

  /**
   * Write all of `bytes`, waiting when the fd is non-blocking and full. A failing write (EPIPE
   * when the reader is gone, EIO when the terminal hung up) drops the bytes, with a line on
   * stderr at most once a second: guest output must never end the VM.
   */
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
      if (e !== EAGAIN) {
        this.dropped += bytes.length - done;
        logRateLimited(
          `console fd ${this.fd}`,
          `console output dropped: write to fd ${this.fd}: ${errnoName(e)} (${strerror(e)}); ` +
            `${this.dropped} bytes so far`,
        );
        return;
      }
      libc.poll(this.#pollfd.bytes, 1n, 100);
    }
  }
}
