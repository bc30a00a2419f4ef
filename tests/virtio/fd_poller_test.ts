import { deepEqual, equal } from "../assert.ts";
import { FdPoller } from "../../src/virtio/fd_poller.ts";
import { libc } from "../../ffi/libc.ts";

Deno.test("fd poller: a disabled fd is not reported, even in an error or hang-up state", () => {
  const fds = new Int32Array(2);
  equal(libc.pipe(new Uint8Array(fds.buffer)), 0);
  const [r, w] = fds;
  try {
    libc.close(w); // the read end now reports POLLHUP for good, as a deleted tap reports POLLERR
    const poller = new FdPoller([r]);
    deepEqual([...poller.wait(0)], [r], "enabled: the hang-up is reported");
    poller.setEnabled(r, false);
    deepEqual([...poller.wait(0)], [], "disabled: nothing, so the Worker can sleep");
    poller.setEnabled(r, true);
    deepEqual([...poller.wait(0)], [r]);
  } finally {
    libc.close(r);
  }
});
