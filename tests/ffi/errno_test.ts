// ffi/libc.ts's errno: this thread's own, read from memory with no call after the failed one
// (the vCPU loop reads KVM_RUN's errno this way), and each Worker reads its own.
import { equal, ok } from "../assert.ts";
import { cString, errno, errnoCell, libc, O_RDONLY } from "../../ffi/libc.ts";
import { EBADF, ENOENT } from "../../ffi/errno.ts";

Deno.test("errno: the cell is this thread's errno, set by a failing call and by nothing else", () => {
  const cell = errnoCell();
  ok(errnoCell() === cell, "one cell per thread, made once");
  cell[0] = 0;
  equal(libc.close(-1), -1);
  equal(cell[0], EBADF, "a failing close(-1) leaves EBADF in the cell");
  equal(errno(), EBADF);
  ok(libc.gettid() > 0, "a call that cannot fail");
  equal(errno(), EBADF, "a successful call leaves errno as it was");
  cell[0] = 0;
  equal(errno(), 0, "what the cell holds is what errno() reads");
});

Deno.test("errno: a Worker reads its own thread's errno, not the main thread's", async () => {
  const cell = errnoCell();
  cell[0] = 0;
  equal(libc.close(-1), -1);
  const libcUrl = new URL("../../ffi/libc.ts", import.meta.url).href;
  const src = `import { cString, errno, libc, O_RDONLY } from "${libcUrl}";
    const fd = libc.open(cString("/nonexistent/denovmm-errno-test"), O_RDONLY, 0);
    self.postMessage([fd, errno()]);`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/typescript" })), {
    type: "module",
  });
  try {
    const [fd, e] = await new Promise<number[]>((resolve, reject) => {
      w.onmessage = (m) => resolve(m.data);
      w.onerror = (ev) => reject(new Error(ev.message));
    });
    equal(fd, -1);
    equal(e, ENOENT, "the Worker's failed open leaves ENOENT in the Worker's errno");
    equal(errno(), EBADF, "the main thread's errno is still its own close(-1)'s");
  } finally {
    w.terminate();
  }
  ok(libc.open(cString("/nonexistent/x"), O_RDONLY, 0) === -1 && errno() === ENOENT);
});
