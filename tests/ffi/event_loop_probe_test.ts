// ffi/event_loop_probe.ts: whether the main thread's event loop has work, asked while the thread
// is busy elsewhere (as the boot vCPU is between exits), between the boot vCPU's own turns
// (src/machine/event_loop_turn.ts). Run in a fresh process: the probe must be made before any
// Worker, and the test runner's own threads and descriptors are not ours.
import { equal, match } from "../assert.ts";

const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);

const code = `
  import { EventLoopProbe } from ${url("../../ffi/event_loop_probe.ts")};
  import { readableNow } from ${url("../../ffi/readable_now.ts")};
  import { eventLoopTurn } from ${url("../../src/machine/event_loop_turn.ts")};
  import { StdinPump } from ${url("../../src/console/stdin_pump.ts")};
  const probe = EventLoopProbe.ofThisThread();
  const out = [];
  const links = (fds) => fds.map((fd) => Deno.readLinkSync("/proc/self/fd/" + fd)).join(",");
  out.push("fds " + links(probe.fds));
  out.push("wakers " + links(probe.wakers));
  // What woke the loop while the program loaded, taken once.
  probe.ready();
  const cell = new Int32Array(new SharedArrayBuffer(4));
  // The thread busy elsewhere, as in a vCPU's slice: no turn of the event loop.
  const busy = (ms) => Atomics.wait(cell, 0, 0, ms);
  // The boot vCPU's turns.
  const turns = async () => { for (let i = 0; i < 5; i++) { await eventLoopTurn(); probe.settle(); } };
  // The slice's view after the turns: idle ticks that find no work take no turn.
  const idleTicks = () => { let n = 0; for (let i = 0; i < 20; i++) { busy(1); if (probe.ready()) n++; } return n; };
  const got = [];
  // A wake-up's own tick may or may not see it: tokio writes its waker only when it thinks the
  // loop may be waiting, so a Worker's message or a signal can come in memory only. What is
  // checked is that the turns serve it, and that the ticks after them are clean again.
  const step = async (name, start, ms = 400) => {
    await turns();
    await start();
    busy(ms);
    probe.ready();
    await turns();
    out.push(name + " " + got.join("+") + " ticks " + idleTicks());
  };
  await step("idle", () => {});
  const w = new Worker("data:text/javascript,onmessage = () => setTimeout(() => postMessage(1), 50)", { type: "module" });
  w.onmessage = () => got.push("message");
  await step("message", () => w.postMessage(0));
  w.terminate();
  Deno.addSignalListener("SIGHUP", () => got.push("signal"));
  await step("signal", () => Deno.kill(Deno.pid, "SIGHUP"));
  // Console input, as the boot vCPU's slices serve it: ticks of 20 ms, a turn only when the
  // pump's tick or the probe asks. The parent writes once it sees the line.
  const typed = [];
  const pump = new StdinPump({ push: (b) => (typed.push(...b), b.length) }, () => {}, Deno.stdin);
  pump.readBetweenTicks(readableNow(0));
  const pumped = pump.run();
  await turns();
  Deno.stdout.writeSync(new TextEncoder().encode("reading\\n"));
  let asked = 0, tick = 0;
  for (; tick < 250 && typed.length < 3; tick++) {
    busy(20);
    if (pump.tick() || probe.ready()) {
      asked++;
      await eventLoopTurn();
      probe.settle();
    }
  }
  out.push("stdin " + new TextDecoder().decode(new Uint8Array(typed)).split("\\n")[0] + " turns " + asked);
  pump.restore();
  await pumped;
  console.log(out.join("\\n"));
  Deno.exit(0);
`;

async function probeRun() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    signal: AbortSignal.timeout(60_000),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Input once the child reads, while its thread is busy.
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
  match(out, /^wakers anon_inode:\[eventfd\]$/m);
  // name, what the turns served, how many of 20 idle ticks after them saw work (before the probe
  // read the waker, all 20 did; before turns ended with `settle`, each turn's own wake-ups
  // showed at the next tick)
  match(out, /^idle {2}ticks 0$/m);
  match(out, /^message message ticks 0$/m);
  match(out, /^signal message\+signal ticks 0$/m);
  // The input arrives through the one turn its tick asked for (a second, at most, for its EOF).
  match(out, /^stdin hi turns [12]$/m);
}

// Before the probe read the waker, every tick after the loop's first wake-up saw work (tokio
// never reads the eventfd, and a loop that never waits never takes its event). Wake-ups race
// with the busy thread, so the run is made a few times.
Deno.test("event loop probe: between the boot vCPU's turns, idle ticks see no work after a Worker's message or a signal, and console input is served at the tick that sees it", async () => {
  for (let i = 0; i < 4; i++) await probeRun();
});

// A signal from outside, which the probe may not see, waits for the slice's clock: the turn it
// gives the loop must serve it. A turn that never makes the loop wait in epoll (a
// MessageChannel's message) did not, in 20 turns.
const signalCode = `
  import { eventLoopTurn } from ${url("../../src/machine/event_loop_turn.ts")};
  let termed = false;
  Deno.addSignalListener("SIGTERM", () => termed = true);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  // Some slices and turns first, as a running VM has had.
  for (let i = 0; i < 3; i++) {
    Atomics.wait(cell, 0, 0, 20);
    await eventLoopTurn();
  }
  console.log("terminate");
  // Ticks of 20 ms with the thread busy, the clock's turn every 10.
  let turns = 0;
  for (let i = 1; i <= 400 && !termed; i++) {
    Atomics.wait(cell, 0, 0, 20);
    if (i % 10 === 0) {
      turns++;
      await eventLoopTurn();
    }
  }
  console.log("sigterm " + termed + " " + (turns <= 3 ? "soon" : "after " + turns + " turns"));
  Deno.exit(0);
`;

Deno.test("event loop probe: a stop signal the probe may miss is served by the slice clock's turn", async () => {
  for (let i = 0; i < 2; i++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", signalCode],
      signal: AbortSignal.timeout(60_000),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let out = "";
    const reader = child.stdout.getReader();
    let sent = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
      if (!sent && out.includes("terminate\n")) {
        sent = true;
        child.kill("SIGTERM");
      }
    }
    const errors = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    equal((await child.status).code, 0, errors);
    match(out, /^sigterm true soon$/m);
  }
});
