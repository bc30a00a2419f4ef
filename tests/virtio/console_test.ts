import { equal, ok } from "../assert.ts";
import {
  CONSOLE_RX_QUEUE,
  CONSOLE_TX_MAX_CHAIN_BYTES,
  CONSOLE_TX_QUEUE,
  VirtioConsole,
} from "../../src/virtio/console.ts";
import { InputRing } from "../../src/console/input_ring.ts";
import { CHAIN_BUDGET } from "../../src/virtio/device_runner.ts";
import { FdWriter } from "../../ffi/fd_writer.ts";
import { libc } from "../../ffi/libc.ts";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT } from "../../src/virtio/queue.ts";
import { MiB, ram } from "./fake_driver.ts";
import { quietly, VirtioHarness } from "./virtio_harness.ts";

function setUp() {
  const mem = ram();
  const ring = new InputRing(InputRing.createState());
  const out: Uint8Array[] = [];
  const c = new VirtioConsole(mem, ring, (b) => out.push(b.slice()));
  const h = new VirtioHarness(c, 2, mem);
  h.negotiate();
  const rx = h.setupQueue(CONSOLE_RX_QUEUE);
  const tx = h.setupQueue(CONSOLE_TX_QUEUE);
  h.driverOk();
  return { mem, ring, out, c, h, rx, tx };
}

Deno.test("console tx: the guest's bytes go out in order", () => {
  const { out, h, tx } = setUp();
  const text = new TextEncoder().encode("hello, hvc0\n");
  tx.publish(tx.addChain([{ len: 5, data: text.subarray(0, 5) }, {
    len: text.length - 5,
    data: text.subarray(5),
  }]));
  h.runner.process(CONSOLE_TX_QUEUE);
  equal(new TextDecoder().decode(new Uint8Array(out.flatMap((b) => [...b]))), "hello, hvc0\n");
  equal(tx.usedIdx(), 1);
});

Deno.test("console tx: a 1 GiB chain costs one capped write run, not 262,144 writes", () => {
  const { out, c, h, tx } = setUp();
  // 64 descriptors of 16 MiB, all over the same RAM, through an indirect table.
  const table = tx.alloc(16 * 64);
  for (let i = 0; i < 64; i++) {
    tx.setDesc(i, 0, 16 * MiB, i < 63 ? VIRTQ_DESC_F_NEXT : 0, i + 1, table);
  }
  tx.setDesc(0, table, 16 * 64, VIRTQ_DESC_F_INDIRECT);
  tx.publish(0);
  quietly(() => h.runner.process(CONSOLE_TX_QUEUE));
  const bytes = out.reduce((n, b) => n + b.length, 0);
  equal(bytes, CONSOLE_TX_MAX_CHAIN_BYTES);
  ok(out.length <= CONSOLE_TX_MAX_CHAIN_BYTES / 4096);
  equal(c.droppedBytes, 1024 * MiB - CONSOLE_TX_MAX_CHAIN_BYTES);
  equal(tx.usedIdx(), 1);
});

Deno.test("console rx: typed bytes fill receive buffers, a bounded number per call", () => {
  const { ring, h, rx } = setUp();
  for (let i = 0; i < CHAIN_BUDGET + 10; i++) rx.publish(rx.addChain([{ len: 1, write: true }]));
  ring.push(new Uint8Array(CHAIN_BUDGET + 5).fill(0x61));
  equal(h.runner.process(CONSOLE_RX_QUEUE), true, "budget reached with input left");
  equal(rx.usedIdx(), CHAIN_BUDGET);
  equal(h.runner.process(CONSOLE_RX_QUEUE), false);
  equal(rx.usedIdx(), CHAIN_BUDGET + 5);
  equal(ring.count(), 0);
});

Deno.test("console output: a reader that went away drops output, never throws", () => {
  const fds = new Int32Array(2);
  equal(libc.pipe(new Uint8Array(fds.buffer)), 0);
  libc.close(fds[0]); // nobody reads: EPIPE
  try {
    const w = new FdWriter(fds[1]);
    quietly(() => {
      w.write(new Uint8Array(100));
      w.writeByte(1);
    });
    equal(w.dropped, 101);
  } finally {
    libc.close(fds[1]);
  }
});
