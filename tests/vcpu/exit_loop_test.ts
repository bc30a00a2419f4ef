import { equal, match, ok } from "../assert.ts";
import { KVM_EXIT_IO_OUT, KVM_RUN_OFFSETS, KvmRun } from "../../ffi/kvm_run.ts";
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import { Bus } from "../../src/bus/bus.ts";
import { createStats, ExitStats } from "../../src/vcpu/exit_stats.ts";
import { runLoop, runSlice, StopRequest } from "../../src/vcpu/exit_loop.ts";
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

Deno.test("exit loop in slices: back to the caller on EINTR and after the slice's time, with the outcome at the end", () => {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  let writes = 0;
  const stop = new StopRequest();
  pio.register(0x100, 1, {
    read: () => {},
    write: () => {
      if (++writes === 5000) stop.stop(7);
    },
  }, "counter");
  const opts = { debug: false, log: () => {} };
  const stats = new ExitStats(createStats());
  // The 3rd KVM_RUN is interrupted: two exits are handled, then the caller gets its turn.
  const vcpu = fakeVcpu(0x100, [3]);
  equal(runSlice(vcpu, pio, mmio, stats, stop, opts, 60_000), undefined);
  equal(writes, 2);
  // No slice time at all: it returns at its first look at the clock (every 1024 exits).
  equal(runSlice(vcpu, pio, mmio, stats, stop, opts, 0), undefined);
  equal(writes, 2 + 1024);
  // Then a long slice runs on to the VM's end, which it returns.
  equal(runSlice(vcpu, pio, mmio, stats, stop, opts, 60_000)?.status, 7);
  equal(writes, 5000);
  // A Worker's loop goes on through EINTR.
  writes = 0;
  const again = new StopRequest();
  pio.register(
    0x200,
    1,
    { read: () => {}, write: () => void (++writes === 10 && again.stop(3)) },
    "c2",
  );
  equal(runLoop(fakeVcpu(0x200, [1, 2, 5]), pio, mmio, stats, again, opts).status, 3);
  equal(writes, 10);
});
