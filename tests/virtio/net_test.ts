import { equal } from "../assert.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { type RxQueue, TapNet } from "../../src/virtio/net.ts";
import { FakeDriver, ram } from "./fake_driver.ts";

// The "tap" is an empty non-blocking eventfd: every read says EAGAIN, as an idle tap does.
function idleTap(): EventFd {
  return EventFd.create();
}

Deno.test("net rx: with no buffers, it publishes avail_event and reports starved", () => {
  const d = new FakeDriver(ram(), 8, true);
  const q = d.queue();
  const tap = idleTap();
  try {
    d.publish(d.addChain([{ len: 2048, write: true }]));
    q.pop(); // the one buffer is taken (as by an earlier frame)
    const result = new TapNet(tap.fd, d.mem).receive(q);
    equal(result, "starved");
    equal(d.availEvent(), 1, "notify me when avail.idx passes 1");
  } finally {
    tap.close();
  }
});

Deno.test("net rx: a buffer added just before the driver read avail_event is not lost", () => {
  const d = new FakeDriver(ram(), 8, true);
  const q = d.queue();
  const tap = idleTap();
  let added = false;
  // The driver's side of the race: it publishes a buffer, then reads the old avail_event and
  // does not notify. Here it publishes after the device found the ring empty, just as the
  // device asks for a notify.
  const racing: RxQueue = {
    hasAvailable: () => q.hasAvailable(),
    pop: () => q.pop(),
    pushUsed: (head, len) => q.pushUsed(head, len),
    armAvailEvent: () => {
      if (!added) d.publish(d.addChain([{ len: 2048, write: true }]));
      added = true;
      return q.armAvailEvent();
    },
  };
  try {
    const result = new TapNet(tap.fd, d.mem).receive(racing);
    // Not starved: the tap stays polled, and the buffer takes the next frame.
    equal(result, "idle");
    equal(added, true);
  } finally {
    tap.close();
  }
});
