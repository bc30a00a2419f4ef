// ffi/thread_timer.ts: the boot vCPU's tick, a signal to one thread, which must interrupt a
// blocking system call on that thread (as it does KVM_RUN) and stop when deleted.
import { equal, ok } from "../assert.ts";
import { check, errno, libc } from "../../ffi/libc.ts";
import { EINTR } from "../../ffi/errno.ts";
import { ThreadTimer } from "../../ffi/thread_timer.ts";

const SIGURG = 23;

Deno.test("thread timer: ticks this thread out of a blocking call, and stops when deleted", async () => {
  let ticks = 0;
  const listener = () => ticks++;
  Deno.addSignalListener("SIGURG", listener);
  const fds = new Int32Array(2);
  check("pipe", libc.pipe(new Uint8Array(fds.buffer)));
  const pollfd = new Uint8Array(8);
  new DataView(pollfd.buffer).setInt32(0, fds[0], true);
  new DataView(pollfd.buffer).setInt16(4, 1, true); // POLLIN
  const timer = new ThreadTimer(libc.gettid(), SIGURG, 5);
  try {
    // Nothing ever writes the pipe: only the signal can end this wait (-1 means forever).
    const t0 = performance.now();
    const rc = libc.poll(pollfd, 1n, -1);
    const e = errno();
    equal(rc, -1);
    equal(e, EINTR, "the tick interrupts a blocking call on this thread");
    ok(performance.now() - t0 < 1000);
    await new Promise((r) => setTimeout(r, 100));
    ok(ticks >= 5, `${ticks} ticks in 100 ms at 5 ms`);
  } finally {
    timer.delete();
    timer.delete();
  }
  await new Promise((r) => setTimeout(r, 20));
  const after = ticks;
  await new Promise((r) => setTimeout(r, 60));
  equal(ticks, after, "no tick after delete");
  Deno.removeSignalListener("SIGURG", listener);
  libc.close(fds[0]);
  libc.close(fds[1]);
});
