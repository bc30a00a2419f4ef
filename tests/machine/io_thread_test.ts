// The I/O thread's wiring over real eventfds and a socketpair "tap": what it polls for each
// device, and what it does when a device's input is readable, whatever the device.
import { deepEqual, equal, ok } from "../assert.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { InputRing } from "../../src/console/input_ring.ts";
import { IoThread } from "../../src/machine/io_thread.ts";
import type { BackendPlan } from "../../src/virtio/device.ts";
import type { NetPlan } from "../../src/virtio/net.ts";
import type { ConsolePlan } from "../../src/virtio/console.ts";
import { FakeTap } from "../fuzz/fake_tap.ts";
import { ram } from "../virtio/fake_driver.ts";
import { VirtioHarness } from "../virtio/virtio_harness.ts";
import { RecordingVectors } from "../bus/recording_vectors.ts";

/** One two-queue device on the I/O thread, with a driver on the same plan. */
function thread(backend: BackendPlan) {
  const mem = ram();
  const driver = new VirtioHarness({ handle: () => 0 }, 2, mem);
  const notify = [EventFd.create(), EventFd.create()];
  const irq = Array.from({ length: driver.plan.msix.vectors }, () => EventFd.create());
  const control = EventFd.create();
  const intx: number[] = [];
  const io = new IoThread(
    {
      controlFd: control.fd,
      devices: [{
        plan: driver.plan,
        backend,
        notifyFds: notify.map((e) => e.fd),
        vectors: {
          irqFds: irq.map((e) => e.fd),
          routes: new SharedArrayBuffer(12),
          name: "t",
          devid: 8,
        },
      }],
      vfio: [],
    },
    mem,
    {
      vectors: () => new RecordingVectors(),
      line: (gsi) => ({ setLevel: (high) => void (high && intx.push(gsi)) }),
    },
  );
  const ready = () => [...io.poller.wait(0)];
  const close = () => [...notify, ...irq, control].forEach((e) => e.close());
  return { mem, driver, notify, control, io, intx, ready, close };
}

function frame(len: number, fill: number): Uint8Array {
  return new Uint8Array(len).fill(fill);
}

Deno.test("io thread: a tap is polled only while the receive queue has buffers", () => {
  const tap = new FakeTap();
  const plan: NetPlan = { type: "net", tapFd: tap.fd, tapName: "tap9" };
  const t = thread(plan);
  try {
    tap.send(frame(60, 1));
    ok(!t.ready().includes(tap.fd), "paused until the driver posts receive buffers");
    const [rx] = t.driver.bringUp(2);
    const gpas = [rx.alloc(2048), rx.alloc(2048)];
    for (const gpa of gpas) rx.publish(rx.addChain([{ len: 2048, write: true, gpa }]));
    t.control.signal(); // the driver's DRIVER_OK kicks the thread
    t.io.turn(0);
    equal(rx.usedIdx(), 1, "the waiting frame went in");
    equal(rx.usedElem(0).len, 60);
    equal(t.mem.read(gpas[0] + 12, 1)[0], 1);
    // One buffer left: the tap is watched again.
    tap.send(frame(70, 2));
    ok(t.ready().includes(tap.fd), "polled while buffers remain");
    t.io.turn(0);
    equal(rx.usedIdx(), 2);
    equal(rx.usedElem(1).len, 70);
    // Out of buffers: a frame waiting on the tap does not wake the thread.
    tap.send(frame(80, 3));
    ok(!t.ready().includes(tap.fd), "paused while the queue is starved");
    ok(t.intx.length > 0, "the used buffers were signalled (INTx: MSI-X is off)");
  } finally {
    t.close();
    tap.close();
  }
});

Deno.test("io thread: the console's eventfd is drained and its ring moved into queue 0; output goes to its fd", () => {
  const out = new FakeTap(); // a datagram socket: one write, one "frame" to count
  const wake = EventFd.create();
  const ring = InputRing.createState();
  const plan: ConsolePlan = { type: "console", ring, inputFd: wake.fd, outFd: out.fd };
  const t = thread(plan);
  try {
    const [rx, tx] = t.driver.bringUp(2);
    t.control.signal();
    t.io.turn(0);
    const gpa = rx.alloc(64);
    rx.publish(rx.addChain([{ len: 64, write: true, gpa }]));
    new InputRing(ring).push(new TextEncoder().encode("typed"));
    wake.signal();
    ok(t.ready().includes(wake.fd));
    t.io.turn(0);
    equal(rx.usedIdx(), 1);
    equal(new TextDecoder().decode(t.mem.read(gpa, rx.usedElem(0).len)), "typed");
    ok(!t.ready().includes(wake.fd), "the eventfd was drained");
    tx.publish(tx.addChain([{ len: 5, data: new TextEncoder().encode("hello") }]));
    t.notify[1].signal();
    t.io.turn(0);
    equal(tx.usedIdx(), 1);
    deepEqual(out.drain(), [5], "the guest's output written to outFd");
  } finally {
    t.close();
    wake.close();
    out.close();
  }
});
