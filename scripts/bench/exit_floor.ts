/**
 * The floor of one exit under denovmm's own code, against exit_floor.c's C loop: the same
 * real-mode guest (N writes to the unclaimed port 0x4f0, then one to 0x501), entered
 *
 *   bare    from a JavaScript loop that calls KVM_RUN and reads the port, nothing else: what
 *           V8 and Deno's FFI cost per exit
 *   loop    through the vCPU exit loop (src/vcpu/exit_loop.ts) with a port bus and debug-exit
 *   slice   the same in slices (the `slices` generator) with the boot vCPU's tick and an
 *           event-loop turn between them, as vCPU 0 runs on the main thread
 *           (src/machine/boot_vcpu.ts), asking the event loop between exits as it does;
 *           slice-noturn: the tick, no turn; slice-spin: neither (slices end by the clock alone)
 *
 * Prints `FLOOR <mode> exits=E us=T` (wall time per exit; slice modes add `slices=K`), then
 * `CPU user=U sys=S guest=G`: the process's CPU time over the same exits, µs an exit, from
 * /proc/self/stat (all threads, V8's compiler threads too; 10 ms ticks), user time less the
 * guest's (which Linux counts in both). Run by exit_floor.sh, and by tcg_counters.sh, which sets
 * DENOVMM_TCG_ASK to a folder where this asks for QEMU's counters right before the first timed
 * exit and right after the last (`ask.<tag>.a|b`, answered by `done.<tag>.a|b`; tag: this run's
 * mode and DENOVMM_TCG_TAG).
 *
 *   deno run -A scripts/bench/exit_floor.ts [bare|loop|slice|slice-noturn|slice-spin] [N] [TICK_MS]
 *
 * (TICK_MS: the slice mode's tick and slice length instead of the boot vCPU's.)
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { VcpuFd } from "../../ffi/kvm_fds.ts";
import { libc } from "../../ffi/libc.ts";
import { interruptOnly } from "../../ffi/signal_action.ts";
import { ThreadTimer } from "../../ffi/thread_timer.ts";
import { Bus } from "../../src/bus/bus.ts";
import { DEBUG_EXIT_PORT, DebugExit } from "../../src/devices/debug_exit.ts";
import { ASKED_SLICE_MS, SLICE_MS, TICK_MS } from "../../src/machine/boot_vcpu.ts";
import { EventLoopProbe } from "../../ffi/event_loop_probe.ts";
import { createVm } from "../../src/machine/vm.ts";
import { createStats, ExitStats, STAT } from "../../src/vcpu/exit_stats.ts";
import { runLoop, slices as sliceGenerator, StopRequest } from "../../src/vcpu/exit_loop.ts";

const KVM_RUN = 0xae80n;
const SIGURG = 23;
const UNCLAIMED_PORT = 0x4f0;

const mode = Deno.args[0] ?? "loop";
const n = Number(Deno.args[1] ?? 30000);
const tickMs = Number(Deno.args[2] ?? TICK_MS);
if (
  !["bare", "loop", "slice", "slice-noturn", "slice-spin"].includes(mode) ||
  !Number.isInteger(n) ||
  n < 1 || n >= 2 ** 31 ||
  !(tickMs >= 1)
) {
  console.error(
    "usage: exit_floor.ts [bare|loop|slice|slice-noturn|slice-spin] [N] [TICK_MS]",
  );
  Deno.exit(2);
}

const created = createVm(32 * 1024 * 1024, 1);
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
// Real mode, as exit_floor.c's: mov ecx, n; mov dx, 0x4f0; out dx, al; dec ecx; jnz -5;
// mov dx, 0x501; out dx, al; hlt.
created.memory.write(
  0x1000,
  new Uint8Array([
    ...[0x66, 0xb9, ...le32(n)],
    ...[0xba, UNCLAIMED_PORT & 0xff, UNCLAIMED_PORT >> 8],
    0xee,
    ...[0x66, 0x49],
    ...[0x75, 0xfb],
    ...[0xba, DEBUG_EXIT_PORT & 0xff, DEBUG_EXIT_PORT >> 8],
    0xee,
    0xf4,
  ]),
);
const vcpu = new VcpuFd(created.vm.createVcpu(0), created.kvm.vcpuMmapSize());
const sregs = vcpu.getSregs();
sregs.setSegment("cs", {
  base: 0,
  limit: 0xffff,
  selector: 0,
  type: 0xb,
  present: 1,
  dpl: 0,
  db: 0,
  s: 1,
  l: 0,
  g: 0,
  avl: 0,
});
vcpu.setSregs();
vcpu.regs.bytes.fill(0);
vcpu.regs.set("rip", 0x1000);
vcpu.regs.set("rflags", 2);
vcpu.setRegs();

const pio = new Bus("pio", 0x10000);
const mmio = new Bus("mmio", 2 ** 52);
const stop = new StopRequest();
pio.register(DEBUG_EXIT_PORT, 2, new DebugExit((s) => stop.stop(s)), "debug-exit");
const stats = new ExitStats(createStats());
const opts = { debug: false, log: (line: string) => console.error(line) };

// The slices' machinery is set up before the clock starts, as the boot vCPU's is long before the
// exits a bench times: its first use (a dlopen, node:timers' first immediate) is not an exit's.
// slice-noturn: the tick, no event-loop turn between slices; slice-spin: neither (slices end
// by the clock alone): what each part of the slices costs.
const slicing = mode.startsWith("slice");
const ticking = slicing && mode !== "slice-spin";
const turning = mode === "slice";
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
if (ticking) interruptOnly(SIGURG);
const timer = ticking ? new ThreadTimer(libc.gettid(), SIGURG, tickMs) : undefined;
if (turning) await turn();

const asks = Deno.env.get("DENOVMM_TCG_ASK");
const tag = `${mode}.${Deno.env.get("DENOVMM_TCG_TAG") ?? "0"}`;
tcgCounters("a");
const cpu0 = cpuTicks();
const start = performance.now();
let exits = 0;
let slices = 0;
if (mode === "bare") {
  const ioctl = libc.ioctl_int;
  const run = vcpu.run.bytes;
  const port = new Uint16Array(run.buffer, run.byteOffset + 34, 1); // kvm_run.io.port
  for (;;) {
    if (ioctl(vcpu.fd, KVM_RUN, 0n) !== 0) continue;
    exits++;
    if (port[0] === DEBUG_EXIT_PORT) break;
  }
} else if (mode === "loop") {
  runLoop(vcpu, pio, mmio, stats, stop, opts);
  exits = stats.get(STAT.exits);
} else {
  // As the boot vCPU: a busy slice asks the event loop between exits where it can.
  const probe = EventLoopProbe.ofThisThread();
  const busyMs = probe ? ASKED_SLICE_MS : SLICE_MS;
  const sliceMs = Deno.args[2] === undefined ? busyMs : tickMs;
  const needsTurn = probe && (() => probe.ready());
  const run = sliceGenerator(vcpu, pio, mmio, stats, stop, opts, sliceMs, needsTurn);
  while (!run.next().done) {
    slices++;
    if (turning) await turn();
  }
  exits = stats.get(STAT.exits);
}
timer?.delete();
const us = (performance.now() - start) * 1000 / exits;
const cpu1 = cpuTicks();
tcgCounters("b");
console.log(
  `FLOOR ${mode} exits=${exits} us=${us.toFixed(2)}${slicing ? ` slices=${slices}` : ""}`,
);
// Clock ticks of 10 ms (USER_HZ is 100 on Linux) to µs an exit.
const per = (ticks: number) => (ticks * 10_000 / exits).toFixed(1);
const [user, sys, guest] = cpu1.map((t, i) => t - cpu0[i]);
console.log(`CPU user=${per(user - guest)} sys=${per(sys)} guest=${per(guest)}`);

/** The process's utime, stime and guest_time (/proc/self/stat fields 14, 15, 43), in ticks. */
function cpuTicks(): number[] {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  // Fields from the third on, after the command's name in parentheses (which may hold spaces).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [f[11], f[12], f[40]].map(Number);
}

/** Where DENOVMM_TCG_ASK is set, ask the host for QEMU's counters and wait for the answer. */
function tcgCounters(when: "a" | "b"): void {
  if (asks === undefined) return;
  Deno.writeTextFileSync(`${asks}/ask.${tag}.${when}`, "");
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < 30_000; waited += 20) {
    try {
      Deno.statSync(`${asks}/done.${tag}.${when}`);
      return;
    } catch {
      Atomics.wait(nap, 0, 0, 20);
    }
  }
  throw new Error(`no answer in ${asks} for ${tag}.${when} in 30 s`);
}
