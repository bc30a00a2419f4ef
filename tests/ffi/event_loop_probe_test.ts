// ffi/event_loop_probe.ts: whether the main thread's event loop has work, asked while the thread
// is busy elsewhere (as the boot vCPU is between exits). Run in a fresh process: the probe must
// be made before any Worker, and the test runner's own threads and descriptors are not ours.
import { equal, match } from "../assert.ts";

const code = `
  import { EventLoopProbe } from ${
  JSON.stringify(new URL("../../ffi/event_loop_probe.ts", import.meta.url).href)
};
  const probe = EventLoopProbe.ofThisThread();
  const out = [];
  out.push("fds " + probe.fds.map((fd) => Deno.readLinkSync("/proc/self/fd/" + fd)).join(","));
  const cell = new Int32Array(new SharedArrayBuffer(4));
  // The thread busy elsewhere, as in a vCPU's slice: no turn of the event loop.
  const busy = (ms) => Atomics.wait(cell, 0, 0, ms);
  const turns = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2)); };
  const step = async (name, start, ms = 400) => {
    await turns();
    const before = probe.ready();
    await start();
    busy(ms);
    const during = probe.ready();
    await turns();
    out.push(name + " " + before + " " + during + " " + probe.ready() + " " + got.join("+"));
  };
  const got = [];
  await step("idle", () => {});
  const w = new Worker("data:text/javascript,onmessage = () => setTimeout(() => postMessage(1), 50)", { type: "module" });
  w.onmessage = () => got.push("message");
  await step("message", () => w.postMessage(0));
  w.terminate();
  Deno.addSignalListener("SIGHUP", () => got.push("signal"));
  await step("signal", () => Deno.kill(Deno.pid, "SIGHUP"));
  // The read waits (a turn has started it), and the parent writes once it sees the line, while
  // this thread is busy.
  await step("stdin", async () => {
    Deno.stdin.read(new Uint8Array(8)).then((n) => got.push("stdin " + n));
    await turns();
    Deno.stdout.writeSync(new TextEncoder().encode("reading\\n"));
  }, 3000);
  console.log(out.join("\\n"));
  Deno.exit(0);
`;

Deno.test("event loop probe: a Worker's message, a signal and stdin show between turns; an idle loop does not", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    signal: AbortSignal.timeout(60_000),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Input once the child's read waits, while its thread is busy.
  let out = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  let wrote = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
    if (!wrote && out.includes("reading\n")) {
      wrote = true;
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("hi\n"));
      await writer.close();
    }
  }
  const errors = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  equal((await child.status).code, 0, errors);
  match(out, /^fds anon_inode:\[eventpoll\](,anon_inode:\[eventpoll\])*$/m);
  // name, ready before, ready while busy, ready after turns, what the turns served
  match(out, /^idle false false false $/m);
  match(out, /^message false true false message$/m);
  match(out, /^signal false true false message\+signal$/m);
  match(out, /^stdin false true false message\+signal\+stdin 3$/m);
});
