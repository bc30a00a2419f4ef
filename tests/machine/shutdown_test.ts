// How the VM ends, host side: the stop signals' statuses, the vCPU loop's host stop flag, the
// disk flush, and the status and line the VM ends with. The KVM side is tests/kvm/fault_test.ts.
import { deepEqual, equal, match, ok, throws } from "../assert.ts";
import { signalStatus, STOP_SIGNALS } from "../../src/machine/signals.ts";
import { StopRequest } from "../../src/vcpu/exit_loop.ts";
import { DiskSync } from "../../src/machine/disk_sync.ts";
import { endResult } from "../../src/machine/machine.ts";

Deno.test("signals: SIGTERM, SIGINT, SIGHUP exit with 128 + their number", () => {
  deepEqual(STOP_SIGNALS.map((s) => [s, signalStatus(s)]).sort(), [
    ["SIGHUP", 129],
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ]);
});

Deno.test("StopRequest: the host's flag ends the loop; a device's stop made first wins", () => {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const stop = new StopRequest(flag);
  equal(stop.outcome, undefined);
  Atomics.store(flag, 0, 1);
  deepEqual(stop.outcome, { status: 0, stoppedByHost: true });
  stop.stop(3); // too late: the host stopped it
  deepEqual(stop.outcome, { status: 0, stoppedByHost: true });

  const first = new StopRequest(new Int32Array(new SharedArrayBuffer(4)));
  first.stop(7, "why");
  deepEqual(first.outcome, { status: 7, message: "why" });
  equal(new StopRequest().outcome, undefined, "no flag: only devices stop it");
});

Deno.test("DiskSync: flushes each disk; a path that cannot be opened is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.img`, new Uint8Array(4096));
    await Deno.writeFile(`${dir}/b.img`, new Uint8Array(4096));
    const disks = new DiskSync([`${dir}/a.img`, `${dir}/b.img`]);
    equal(disks.count, 2);
    deepEqual(disks.flush(), []);
    disks.close();
    throws(() => new DiskSync([`${dir}/a.img`, `${dir}/missing.img`]), /missing\.img/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("endResult: a signal's status and one line; a failed flush makes it 1", () => {
  deepEqual(endResult("SIGTERM", [], 1), {
    status: 143,
    message: "SIGTERM: vCPUs stopped, 1 writable disk flushed; exit status 143",
  });
  match(endResult("SIGINT", [], 0).message!, /^SIGINT: vCPUs stopped, no writable disk to flush/);
  const failed = endResult("SIGHUP", ["disk /x could not be flushed: EIO (Input/output error)"], 1);
  equal(failed.status, 1);
  ok(!failed.message!.includes("\n"), "one line");
  match(failed.message!, /^SIGHUP: vCPUs stopped, but disk \/x could not be flushed: EIO/);

  deepEqual(endResult({ status: 3 }, [], 2), { status: 3 }, "the guest's status, untouched");
  const guestThenFlush = endResult({ status: 0 }, ["disk /y could not be flushed: EIO"], 1);
  equal(guestThenFlush.status, 1);
  match(guestThenFlush.message!, /when the VM ended: disk \/y/);
  equal(endResult({ status: 5 }, ["vcpu1 did not stop within 2 s"], 0).status, 5);
});
