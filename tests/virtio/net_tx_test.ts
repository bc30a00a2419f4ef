import { equal, ok } from "../assert.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { openTap } from "../../ffi/tun.ts";
import { libc } from "../../ffi/libc.ts";
import { RX_QUEUE, TapNet, TX_QUEUE, VIRTIO_NET_HDR_BYTES } from "../../src/virtio/net.ts";
import { FakeDriver, ram } from "./fake_driver.ts";
import { quietly, VirtioHarness } from "./virtio_harness.ts";

/** A transmit chain: a vnet header (with `hdr` bytes on top) and a frame of `frameLen`. */
function frame(d: FakeDriver, frameLen: number, hdr: number[] = []): number {
  const data = new Uint8Array(VIRTIO_NET_HDR_BYTES + frameLen);
  data.set(hdr);
  data.fill(0xee, VIRTIO_NET_HDR_BYTES);
  return d.addChain([{ len: data.length, data }]);
}

Deno.test("net tx: a tap write error drops and counts the frame; the device goes on", () => {
  // An eventfd refuses writes that are not 8 bytes (EINVAL), as a tap refuses a bad frame.
  const fd = EventFd.create();
  const mem = ram();
  const net = new TapNet(fd.fd, mem, "virtio-net test");
  const h = new VirtioHarness(net, 2, mem);
  try {
    h.negotiate();
    h.setupQueue(RX_QUEUE);
    const tx = h.setupQueue(TX_QUEUE);
    h.driverOk();
    for (let i = 0; i < 5; i++) tx.publish(frame(tx, 60));
    const lines: string[] = [];
    const original = console.error;
    console.error = (l: string) => lines.push(l);
    try {
      h.runner.process(TX_QUEUE);
    } finally {
      console.error = original;
    }
    equal(net.drops.txTapError, 5);
    equal(tx.usedIdx(), 5, "every chain is handed back");
    equal(lines.length, 1, "one line per cause per second");
    ok(/frame dropped: write to tap: EINVAL/.test(lines[0]), lines[0]);
    equal(h.status() & 0x40, 0, "not a device fault");
  } finally {
    fd.close();
  }
});

Deno.test("net tx: runts are dropped; offload fields nobody negotiated never reach the tap", () => {
  // A pipe stands in for the tap: what is written can be read back.
  const fds = new Int32Array(2);
  equal(pipe(fds), 0);
  const [r, w] = fds;
  try {
    const mem = ram();
    const net = new TapNet(w, mem);
    const d = new FakeDriver(mem, 8);
    const q = d.queue();
    d.publish(frame(d, 1)); // the 13-byte "frame"
    // GSO TCPv4, NEEDS_CSUM, hdr_len past the frame: all refused by a tap without offloads.
    d.publish(frame(d, 60, [1, 1, 0xff, 0xff, 0x40, 0x05, 0xff, 0xff, 0xff, 0xff]));
    quietly(() => {
      for (let c = q.pop(); c; c = q.pop()) q.pushUsed(c.head, net.handle(TX_QUEUE, c));
    });
    equal(net.drops.txMalformed, 1);
    const got = new Uint8Array(256);
    const n = Number(libc.read(r, got, 256n));
    equal(n, VIRTIO_NET_HDR_BYTES + 60, "only the real frame reached the tap");
    equal(got.subarray(0, 10).every((b) => b === 0), true, "offload fields zeroed");
    equal(got[VIRTIO_NET_HDR_BYTES], 0xee);
  } finally {
    libc.close(r);
    libc.close(w);
  }
});

Deno.test("net tx: a real tap that is down (EIO), then deleted, drops frames", async () => {
  const name = `dnvt${Deno.pid % 100000}`;
  const tap = openTap(name, VIRTIO_NET_HDR_BYTES); // created down, as -n tap=NAME leaves it
  try {
    const mem = ram();
    const net = new TapNet(tap.fd, mem);
    const d = new FakeDriver(mem, 8);
    const q = d.queue();
    d.publish(frame(d, 60));
    quietly(() => {
      const c = q.pop()!;
      q.pushUsed(c.head, net.handle(TX_QUEUE, c));
    });
    equal(net.drops.txTapError, 1, "EIO from a tap that is down");
    const del = await new Deno.Command("ip", { args: ["link", "del", name] }).output();
    ok(del.success, "ip link del");
    d.publish(frame(d, 60));
    quietly(() => {
      const c = q.pop()!;
      q.pushUsed(c.head, net.handle(TX_QUEUE, c));
    });
    equal(net.drops.txTapError, 2, "an error from a deleted tap");
    equal(d.usedIdx(), 2);
  } finally {
    libc.close(tap.fd);
  }
});

function pipe(fds: Int32Array): number {
  return libc.pipe(new Uint8Array(fds.buffer));
}
