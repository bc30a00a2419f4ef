import { deepEqual, equal, match, ok } from "../assert.ts";
import { KVM_EXIT_IO_OUT, KVM_RUN_OFFSETS, KvmRun } from "../../ffi/kvm_run.ts";
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import { Bus } from "../../src/bus/bus.ts";
import { createStats, ExitStats, STAT } from "../../src/vcpu/exit_stats.ts";
import { BUSY_SLICE_EXITS, runLoop, slices, StopRequest } from "../../src/vcpu/exit_loop.ts";
import { describeError } from "../../src/log.ts";

const KVM_EXIT_IO = 2;
const DATA_OFFSET = 0x1000;

/**
 * A vCPU whose every KVM_RUN "exits" with a 1-byte OUT to `port`; KVM_RUN calls listed in
 * `interrupted` (1-based) return EINTR instead, as when a signal arrives.
 */
function fakeVcpu(port: number, interrupted: number[] = []): VcpuFd {
  let calls = 0;
  const page = new Uint8Array(2 * 4096);
  const v = new DataView(page.buffer);
  const O = KVM_RUN_OFFSETS;
  return {
    run: new KvmRun(page),
    runOnce() {
      if (interrupted.includes(++calls)) return false;
      v.setUint32(O.exit_reason, KVM_EXIT_IO, true);
      v.setUint8(O["io.direction"], KVM_EXIT_IO_OUT);
      v.setUint8(O["io.size"], 1);
      v.setUint16(O["io.port"], port, true);
      v.setUint32(O["io.count"], 1, true);
      v.setBigUint64(O["io.data_offset"], BigInt(DATA_OFFSET), true);
      return true;
    },
  } as unknown as VcpuFd;
}

/** A port that ends the VM with `status` at its `n`th write; `writes()` says how many so far. */
function counterPort(pio: Bus, port: number, n: number, stop: StopRequest, status: number) {
  let writes = 0;
  pio.register(port, 1, {
    read: () => {},
    write: () => void (++writes === n && stop.stop(status)),
  }, `counter ${port}`);
  return { writes: () => writes };
}

function deviceThatThrows(): never {
  throw new TypeError("a bug in a device model");
}

Deno.test("exit loop: a device that throws ends the loop with its error, stack kept for --debug", () => {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  let writes = 0;
  pio.register(0x100, 1, {
    read: () => {},
    write: () => {
      if (++writes === 3) deviceThatThrows();
    },
  }, "faulty");
  const logs: string[] = [];
  let caught: unknown;
  try {
    runLoop(fakeVcpu(0x100), pio, mmio, new ExitStats(createStats()), new StopRequest(), {
      debug: false,
      log: (l) => logs.push(l),
    });
  } catch (e) {
    caught = e;
  }
  ok(caught instanceof TypeError, "the error reaches the Worker, which ends the VM with it");
  equal(writes, 3);
  const line = describeError(caught, false);
  equal(line, "a bug in a device model");
  const debug = describeError(caught, true);
  match(debug, /deviceThatThrows/, "--debug says where");
  ok(debug.split("\n").length > 2);
});

Deno.test("exit loop: a Worker's loop goes on through EINTR", () => {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  const opts = { debug: false, log: () => {} };
  const again = new StopRequest();
  const port = counterPort(pio, 0x200, 10, again, 3);
  const stats = new ExitStats(createStats());
  equal(runLoop(fakeVcpu(0x200, [1, 2, 5]), pio, mmio, stats, again, opts).status, 3);
  equal(port.writes(), 10);
  equal(stats.get(STAT.interrupted), 3, "each EINTR counted");
});

Deno.test("exit loop as a generator of slices: yields on EINTR and after the slice's time, returns the outcome", () => {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  let writes = 0;
  const stop = new StopRequest();
  pio.register(0x100, 1, {
    read: () => {},
    write: () => {
      if (++writes === 3000) stop.stop(9);
    },
  }, "counter");
  const opts = { debug: false, log: () => {} };
  // The 3rd and the 1500th KVM_RUN are interrupted; a slice of no time yields at each look at
  // the clock (at the first exit, then every 1024 exits) and at each EINTR.
  const stats = new ExitStats(createStats());
  const run = slices(fakeVcpu(0x100, [3, 1500]), pio, mmio, stats, stop, opts, 0);
  const seen: number[] = [];
  let r = run.next();
  while (!r.done) {
    seen.push(writes);
    r = run.next();
  }
  equal(r.value.status, 9);
  equal(writes, 3000);
  // The first exit's look at the clock; EINTR after 2 exits; the clock 1024 exits later; then
  // EINTR at the 1500th KVM_RUN, after 1500 - 2 interrupted calls = 1498 exits; the clock again.
  deepEqual(seen, [1, 2, 2 + 1024, 1498, 1498 + 1024]);
  // Two KVM_RUNs ended by a signal; every slice ended by the clock, its length being zero.
  equal(stats.get(STAT.interrupted), 2);
  equal(stats.get(STAT.sliceClock), seen.length);
  equal(stats.get(STAT.sliceIdle), 0);
  // A long slice runs on to the VM's end, which it returns.
  const end = new StopRequest();
  const port = counterPort(pio, 0x300, 5000, end, 4);
  const long = slices(fakeVcpu(0x300), pio, mmio, new ExitStats(createStats()), end, opts, 60_000);
  const first = long.next();
  equal(first.done, true);
  equal(first.value?.status, 4);
  equal(port.writes(), 5000);
});

Deno.test("slices: a guest busy with exits keeps its slice through the tick; an idle one yields at each", () => {
  const { pio, mmio, opts, stop, port, eintrs } = tickedGuest(0x400, 5);
  // KVM_RUN calls 10 and 20 are interrupted after 9 and 9 exits (idle: fewer than
  // BUSY_SLICE_EXITS), then 500 and 900 after hundreds (busy, in a slice younger than a minute).
  const stats = new ExitStats(createStats());
  const run = slices(fakeVcpu(0x400, eintrs), pio, mmio, stats, stop, opts, 60_000);
  const { yieldedAt, r } = runSlices(run, port.writes);
  equal(r.value.status, 5);
  equal(port.writes(), 2000);
  // The two idle ticks yield; the busy ones do not, nor does the clock within the minute.
  deepEqual(yieldedAt, [9, 18]);
  equal(stats.get(STAT.interrupted), eintrs.length, "every EINTR counted, yielded or not");
  equal(stats.get(STAT.sliceClock), 0);
  equal(stats.get(STAT.sliceIdle), 2, "the idle ticks' yields counted as such");
});

Deno.test("slices: asked, a tick or a look at the clock ends the slice only when the event loop has work", () => {
  const { pio, mmio, opts, stop, port, eintrs } = tickedGuest(0x500, 6);
  // Two idle ticks (KVM_RUN 10 and 20), then four in busy slices (KVM_RUN 94, 168, 500, 900).
  // Work for the event loop turns up after the 5th, the 400th and the 1200th write; asking
  // takes it.
  const workAt = [5, 400, 1200];
  const asked: number[] = [];
  const needsTurn = () => {
    asked.push(port.writes());
    if (workAt.length === 0 || port.writes() < workAt[0]) return false;
    workAt.shift();
    return true;
  };
  const stats = new ExitStats(createStats());
  const run = slices(fakeVcpu(0x500, eintrs), pio, mmio, stats, stop, opts, 60_000, needsTurn);
  const { yieldedAt, r } = runSlices(run, port.writes);
  equal(r.value.status, 6);
  equal(port.writes(), 2000);
  // The first idle tick (write 9) finds the first work and yields; the second (write 18) finds
  // none and goes on, as the busy ticks do until the one at write 495 finds the second; the
  // third is found by the look at the clock 1024 exits after that slice began.
  deepEqual(yieldedAt, [9, 495, 495 + 1024]);
  deepEqual(
    asked,
    [1, 9, 18, 91, 164, 495, 894, 495 + 1024],
    "asked at the first exit (its look at the clock), at every tick and at the clock only",
  );
  equal(stats.get(STAT.sliceIdle), 1, "the idle tick's yield counted as such");
  equal(stats.get(STAT.sliceWoken), 2);
  equal(stats.get(STAT.sliceClock), 0);
  equal(stats.get(STAT.interrupted), eintrs.length);
});

Deno.test("slices: asked, an idle tick ends a slice older than idleSliceMs without work; a busy one does not", () => {
  const { pio, mmio, opts, stop, port, eintrs } = tickedGuest(0x600, 7);
  let asks = 0;
  const stats = new ExitStats(createStats());
  // No work ever; a busy slice may last a minute, an idle one no time at all.
  const run = slices(fakeVcpu(0x600, eintrs), pio, mmio, stats, stop, opts, 60_000, () => {
    asks++;
    return false;
  }, 0);
  const { yieldedAt, r } = runSlices(run, port.writes);
  equal(r.value.status, 7);
  // The two idle ticks yield, by the clock; the busy ticks (and the looks at the clock every
  // 1024 exits, not ticks) go on.
  deepEqual(yieldedAt, [9, 18]);
  equal(stats.get(STAT.sliceClock), 2);
  equal(stats.get(STAT.sliceIdle), 0);
  equal(stats.get(STAT.sliceWoken), 0);
  ok(asks >= eintrs.length, "the work is asked about before the clock ends a slice");
});

/** Runs the slices to the VM's end: the writes seen at each yield, and the last result. */
function runSlices(run: ReturnType<typeof slices>, writes: () => number) {
  const yieldedAt: number[] = [];
  let r = run.next();
  while (!r.done) {
    yieldedAt.push(writes());
    r = run.next();
  }
  return { yieldedAt, r };
}

/**
 * A guest of 2000 port writes at `port` (then the VM ends with `status`) whose KVM_RUN calls 10
 * and 20 are interrupted after 9 and 9 exits (idle ticks: fewer than BUSY_SLICE_EXITS), then 94,
 * 168, 500 and 900 after more (busy ticks).
 */
function tickedGuest(port: number, status: number) {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  const opts = { debug: false, log: () => {} };
  const stop = new StopRequest();
  const busy = BUSY_SLICE_EXITS + 10;
  return {
    pio,
    mmio,
    opts,
    stop,
    port: counterPort(pio, port, 2000, stop, status),
    eintrs: [10, 20, 20 + busy, 20 + 2 * busy, 500, 900],
  };
}
