import { equal, ok } from "../assert.ts";
import {
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  VIRTIO_F_VERSION_1,
} from "../../src/virtio/pci_state.ts";
import { BYTE_BUDGET, CHAIN_BUDGET } from "../../src/virtio/device_runner.ts";
import { VIRTQ_DESC_F_NEXT } from "../../src/virtio/queue.ts";
import { RecordingDevice, VirtioHarness } from "./virtio_harness.ts";

/** Capture stderr lines written through console.error while `fn` runs. */
function stderrOf(fn: () => void): string[] {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    fn();
  } finally {
    console.error = original;
  }
  return lines;
}

Deno.test("runner: chains are served after DRIVER_OK, not before", () => {
  const dev = new RecordingDevice(1);
  const h = new VirtioHarness(dev);
  h.negotiate();
  const d = h.setupQueue(0);
  d.publish(d.addChain([{ len: 8, write: true }]));
  h.notify(0);
  equal(h.runner.process(0), false);
  equal(dev.handled.length, 0, "no DRIVER_OK yet: the queue is not served");
  equal(d.usedIdx(), 0);
  const kicks = h.kicks;
  h.driverOk();
  ok(h.kicks > kicks, "DRIVER_OK wakes the Worker");
  h.runner.sync();
  equal(dev.handled.length, 1);
  equal(d.usedIdx(), 1);
});

Deno.test("runner: DRIVER_OK does not stick without FEATURES_OK; unoffered bits never count", () => {
  const dev = new RecordingDevice();
  const h = new VirtioHarness(dev);
  // Ask for an unoffered bit: FEATURES_OK is refused, and DRIVER_OK after it too.
  const status = h.negotiate(h.runner.state.deviceFeatures | (1n << 3n));
  equal(status & STATUS_FEATURES_OK, 0);
  const d = h.setupQueue(0);
  h.driverOk();
  equal(h.status() & STATUS_DRIVER_OK, 0, "DRIVER_OK refused without FEATURES_OK");
  equal(h.runner.state.negotiatedFeatures, 0n);
  d.publish(d.addChain([{ len: 8, write: true }]));
  h.runner.sync();
  h.runner.process(0);
  equal(dev.handled.length, 0);
  // Offered bits only: accepted, and in force.
  equal(h.negotiate(VIRTIO_F_VERSION_1) & STATUS_FEATURES_OK, STATUS_FEATURES_OK);
  equal(h.runner.state.negotiatedFeatures, VIRTIO_F_VERSION_1);
});

Deno.test("runner: a broken device stays broken until reset, with one line and no replay", () => {
  const dev = new RecordingDevice(1);
  const h = new VirtioHarness(dev);
  const [d] = h.bringUp();
  // Two good requests, served and acknowledged.
  d.publish(d.addChain([{ len: 8, write: true }]));
  d.publish(d.addChain([{ len: 8, write: true }]));
  h.runner.process(0);
  equal(dev.handled.length, 2);
  // A descriptor that links to itself: the queue is malformed.
  const loop = d.addChain([{ len: 8 }]);
  d.setDesc(loop, 0x20_0000, 8, VIRTQ_DESC_F_NEXT, loop);
  d.publish(loop);
  const lines = stderrOf(() => h.runner.process(0));
  equal(lines.length, 1);
  ok(/needs reset/.test(lines[0]), lines[0]);
  ok(h.status() & STATUS_DEVICE_NEEDS_RESET);
  ok(h.readIsr() & 2, "configuration change in the ISR");
  const usedBefore = d.usedIdx();
  // Another device's control kick (sync), notifies, more chains: nothing is served, nothing
  // replayed, nothing printed.
  d.publish(d.addChain([{ len: 8, write: true }]));
  const later = stderrOf(() => {
    for (let i = 0; i < 10; i++) {
      h.runner.sync();
      h.runner.process(0);
    }
  });
  equal(later.length, 0, "no line per kick");
  equal(dev.handled.length, 2, "acknowledged requests are not replayed");
  equal(d.usedIdx(), usedBefore);
  // The driver resets and sets the device up again: it is served from a fresh ring.
  const [d2] = h.bringUp();
  equal(h.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  d2.publish(d2.addChain([{ len: 8, write: true }]));
  h.runner.process(0);
  equal(dev.handled.length, 3);
});

Deno.test("runner: status reads 0 only once the Worker has left the queues", () => {
  const dev = new RecordingDevice(1);
  const h = new VirtioHarness(dev);
  const [d] = h.bringUp();
  for (let i = 0; i < 5; i++) d.publish(d.addChain([{ len: 8, write: true }]));
  const seen: number[] = [];
  // The vCPU resets the device while the Worker is in the middle of the first request.
  dev.onHandle = () => {
    if (seen.length > 0) return;
    h.write(0x14, 1, 0);
    seen.push(h.status());
    h.write(0x16, 2, 0); // ignored until the reset is done
  };
  h.runner.process(0);
  ok(seen[0] !== 0, "status still reads non-zero while the Worker is inside");
  equal(dev.handled.length, 1, "nothing more is taken once the reset was asked for");
  equal(h.status(), 0, "reset carried out when the Worker left");
  const used = d.usedIdx();
  h.runner.process(0);
  h.runner.sync();
  equal(dev.handled.length, 1);
  equal(d.usedIdx(), used, "guest memory untouched after the status read 0");
});

Deno.test("runner: a reset while the Worker is away is immediate", () => {
  const h = new VirtioHarness(new RecordingDevice());
  h.bringUp();
  h.write(0x14, 1, 0);
  equal(h.status(), 0);
});

Deno.test("runner: work per call is bounded; the rest waits for the next turn", () => {
  const dev = new RecordingDevice(0);
  const h = new VirtioHarness(dev);
  const [d] = h.bringUp();
  for (let i = 0; i < 200; i++) d.publish(d.addChain([{ len: 8, write: true }]));
  equal(h.runner.process(0), true, "budget reached: more to do");
  equal(dev.handled.length, CHAIN_BUDGET);
  let calls = 1;
  for (let more = true; more; calls++) more = h.runner.process(0);
  equal(dev.handled.length, 200);
  equal(calls, Math.ceil(200 / CHAIN_BUDGET));
  // Bytes count too: four 4 MiB buffers take two turns.
  const big = new VirtioHarness(new RecordingDevice(0));
  const [b] = big.bringUp();
  for (let i = 0; i < 4; i++) b.publish(b.addChain([{ len: BYTE_BUDGET / 2, gpa: 0x100_0000 }]));
  equal(big.runner.process(0), true);
  equal(b.usedIdx(), 2);
  big.runner.process(0);
  equal(b.usedIdx(), 4);
  equal(big.runner.process(0), false, "nothing left");
});

Deno.test("runner: a device error that is not the guest's ends the VM (it propagates)", () => {
  const dev = new RecordingDevice();
  dev.onHandle = () => {
    throw new TypeError("a bug in a device model");
  };
  const h = new VirtioHarness(dev);
  const [d] = h.bringUp();
  d.publish(d.addChain([{ len: 8, write: true }]));
  let caught: unknown;
  try {
    h.runner.process(0);
  } catch (e) {
    caught = e;
  }
  ok(caught instanceof TypeError);
  equal(h.status() & STATUS_DEVICE_NEEDS_RESET, 0, "a VMM bug is not blamed on the guest");
  // The bracket was left: a reset now is immediate.
  h.write(0x14, 1, 0);
  equal(h.status(), 0);
});

Deno.test("runner: INTx while MSI-X is off, ISR read lowers it", () => {
  const h = new VirtioHarness(new RecordingDevice(1));
  const [d] = h.bringUp();
  d.publish(d.addChain([{ len: 8, write: true }]));
  h.runner.process(0);
  equal(h.intx.at(-1), true);
  equal(h.readIsr(), 1);
  equal(h.intx.at(-1), false);
  equal(h.readIsr(), 0);
});
