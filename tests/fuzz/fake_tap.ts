// A tap for tests: one end of a non-blocking AF_UNIX datagram socketpair, which like a tap
// keeps frame boundaries (one read, one frame); the other end is the host's.
import { errno, libc } from "../../ffi/libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

const lib = Deno.dlopen(
  "libc.so.6",
  {
    socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" }, // int socketpair(int domain, int type, int protocol, int sv[2])
  } as const satisfies Deno.ForeignLibraryInterface,
);

export class FakeTap {
  /** The tap's fd, as the device has it. */
  readonly fd: number;
  /** The host's end: frames written here arrive at the tap; frames sent are read here. */
  readonly host: number;
  readonly #buf = new Uint8Array(70_000);

  constructor() {
    const sv = new Int32Array(2);
    const rc = lib.symbols.socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    if (rc !== 0) throw new Error(`socketpair: errno ${errno()}`);
    [this.fd, this.host] = [sv[0], sv[1]];
  }

  /** The host sends a frame (dropped when the socket is full, as a tap's queue drops). */
  send(frame: Uint8Array): void {
    libc.write(this.host, frame, BigInt(frame.length));
  }

  /** Frames the guest sent since the last call. */
  drain(): number[] {
    const lengths: number[] = [];
    for (;;) {
      const n = Number(libc.read(this.host, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) return lengths;
      lengths.push(n);
    }
  }

  close(): void {
    libc.close(this.fd);
    libc.close(this.host);
  }
}
