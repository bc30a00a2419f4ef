// ffi/signal_action.ts: SIGURG with a handler in C that does nothing but interrupt; the boot
// vCPU's tick and the stop kick rely on it to end KVM_RUN. Run in a fresh process: a signal's
// action belongs to the whole process, and the test runner's may have one already.
import { equal, match } from "../assert.ts";

const code = (preinstalled: boolean) => `
  import { check, errno, libc, cString } from ${
  JSON.stringify(new URL("../../ffi/libc.ts", import.meta.url).href)
};
  import { interruptOnly, signalHandler } from ${
  JSON.stringify(new URL("../../ffi/signal_action.ts", import.meta.url).href)
};
  import { ThreadTimer } from ${
  JSON.stringify(new URL("../../ffi/thread_timer.ts", import.meta.url).href)
};
  const SIGURG = 23;
  const out = [];
  out.push("before " + signalHandler(SIGURG));
  ${preinstalled ? 'Deno.addSignalListener("SIGURG", () => {});' : ""}
  out.push("installed " + interruptOnly(SIGURG));
  out.push("again " + interruptOnly(SIGURG));
  const getpid = Deno.UnsafePointer.value(libc.dlsym(null, cString("getpid")));
  out.push("handler is getpid " + (signalHandler(SIGURG) === getpid));
  // A pipe nobody writes: only the tick can end the wait, and it must not end the process.
  const fds = new Int32Array(2);
  check("pipe", libc.pipe(new Uint8Array(fds.buffer)));
  const pollfd = new Uint8Array(8);
  new DataView(pollfd.buffer).setInt32(0, fds[0], true);
  new DataView(pollfd.buffer).setInt16(4, 1, true);
  const timer = new ThreadTimer(libc.gettid(), SIGURG, 5);
  let eintr = 0;
  for (let i = 0; i < 5; i++) if (libc.poll(pollfd, 1n, 2000) === -1 && errno() === 4) eintr++;
  timer.delete();
  out.push("eintr " + eintr);
  console.log(out.join("\\n"));
`;

async function run(preinstalled: boolean): Promise<string> {
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code(preinstalled)],
    signal: AbortSignal.timeout(60_000),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(child.stderr);
  equal(child.code, 0, err);
  return new TextDecoder().decode(child.stdout);
}

Deno.test("interruptOnly: a C no-op handler, installed once, whose signal interrupts with EINTR", async () => {
  const out = await run(false);
  match(out, /^before 0$/m, "SIGURG's default action before");
  match(out, /^installed true$/m);
  match(out, /^again false$/m, "a second call leaves the handler as it is");
  match(out, /^handler is getpid true$/m);
  match(out, /^eintr 5$/m, "every tick interrupted the blocking poll; none ended the process");
});

Deno.test("interruptOnly: leaves a handler that is already there (Deno's listener) alone", async () => {
  const out = await run(true);
  match(out, /^installed false$/m);
  match(out, /^handler is getpid false$/m);
  match(out, /^eintr 5$/m, "Deno's listener interrupts as well");
});
