import { equal, ok } from "../assert.ts";
import { Backlog } from "../../src/virtio/backlog.ts";
import { CHAIN_BUDGET } from "../../src/virtio/device_runner.ts";
import { RecordingDevice, VirtioHarness } from "./virtio_harness.ts";

Deno.test("backlog: a device with endless work does not starve another", () => {
  const busyDev = new RecordingDevice();
  const busy = new VirtioHarness(busyDev);
  const [bd] = busy.bringUp();
  const quietDev = new RecordingDevice();
  const quiet = new VirtioHarness(quietDev);
  const [qd] = quiet.bringUp();
  const backlog = new Backlog();
  const serveBusy = () => busy.runner.process(0);
  const serveQuiet = () => quiet.runner.process(0);
  // The busy guest keeps its ring full: 250 requests, re-published as they complete.
  for (let i = 0; i < 250; i++) bd.publish(bd.addChain([{ len: 8, write: true }]));
  backlog.run(serveBusy);
  ok(backlog.busy, "left work for another turn");
  equal(busyDev.handled.length, CHAIN_BUDGET);
  // The other device is notified now: it is served in the same round, not after 250.
  qd.publish(qd.addChain([{ len: 8, write: true }]));
  backlog.run(serveQuiet);
  equal(quietDev.handled.length, 1);
  equal(busyDev.handled.length, CHAIN_BUDGET, "the busy one waited for its turn");
  let rounds = 0;
  while (backlog.busy) {
    backlog.round();
    rounds++;
  }
  equal(busyDev.handled.length, 250);
  equal(rounds, Math.ceil(250 / CHAIN_BUDGET) - 1, "one budget per round");
});
