// Each device's self-description (what the guest sees: ids, class, features, config) and the
// back-end the registry opens from its plan, for every kind the I/O thread knows.
import { deepEqual, equal, ok, throws } from "../assert.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { libc } from "../../ffi/libc.ts";
import { openTap, TapError } from "../../ffi/tun.ts";
import { InputRing } from "../../src/console/input_ring.ts";
import { BlkDevice, type BlkPlan, FileBackend, virtioBlk } from "../../src/virtio/blk.ts";
import { type ConsolePlan, VirtioConsole, virtioConsole } from "../../src/virtio/console.ts";
import type { BackendHost } from "../../src/virtio/device.ts";
import { type NetPlan, RX_QUEUE, TapNet, virtioNet } from "../../src/virtio/net.ts";
import { openBackend, virtioDeviceTypes } from "../../src/virtio/registry.ts";
import { virtioRng } from "../../src/virtio/rng.ts";
import { FakeTap } from "../fuzz/fake_tap.ts";
import { ram } from "./fake_driver.ts";
import { VirtioHarness } from "./virtio_harness.ts";

/** VIRTIO_F_VERSION_1 (32) and VIRTIO_F_RING_EVENT_IDX (29), which every device offers. */
const TRANSPORT = (1n << 32n) | (1n << 29n);

function host(name = "dev", writes: Array<[number, Uint8Array]> = []): BackendHost {
  return {
    mem: ram(),
    name,
    output: (fd) => (bytes) => void writes.push([fd, bytes.slice()]),
  };
}

function tempDisk(bytes: number): string {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  Deno.writeFileSync(path, new Uint8Array(bytes));
  return path;
}

Deno.test("devices: the registry holds blk, net, console and rng, each under its own type", () => {
  deepEqual([...virtioDeviceTypes.keys()], ["blk", "net", "console", "rng"]);
  for (const [type, device] of virtioDeviceTypes) equal(device.type, type);
  throws(
    () => openBackend({ type: "floppy" }, host()),
    TypeError,
    'no virtio device of type "floppy"',
  );
});

Deno.test("devices: virtio-blk describes the disk it probed, and its plan is plain data", () => {
  const path = tempDisk(3 * 512 + 100); // a trailing partial sector is not exposed
  try {
    for (const readOnly of [false, true]) {
      const { description: d, backend } = virtioBlk.describe({ path, readOnly }, 2);
      equal(d.name, `virtio-blk ${path}`);
      equal(d.deviceType, 2);
      equal(d.classCode, 0x01_80_00);
      equal(d.numQueues, 1);
      equal(d.queueMaxSize, 256);
      // SIZE_MAX (1), SEG_MAX (2), BLK_SIZE (6), FLUSH (9); RO (5) for a read-only disk.
      const ro = readOnly ? 1n << 5n : 0n;
      equal(d.features, TRANSPORT | (1n << 1n) | (1n << 2n) | (1n << 6n) | (1n << 9n) | ro);
      const config = new Uint8Array(60);
      const v = new DataView(config.buffer);
      v.setBigUint64(0, 3n, true); // capacity in sectors
      v.setUint32(8, 1024 * 1024, true); // size_max
      v.setUint32(12, 126, true); // seg_max
      v.setUint32(20, 512, true); // blk_size
      deepEqual(d.config, config);
      deepEqual(backend, { type: "blk", path, readOnly, id: "denovmm-disk2" });
      deepEqual(structuredClone(backend), backend);
    }
    throws(() => virtioBlk.describe({ path: `${path}.missing`, readOnly: false }, 0), Error);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("devices: a blk plan opens the image again, with its id and read-only mode", () => {
  const path = tempDisk(8 * 512);
  try {
    const plan: BlkPlan = { type: "blk", path, readOnly: true, id: "denovmm-disk1" };
    const opened = openBackend(plan, host());
    ok(opened.handler instanceof BlkDevice);
    const blk = opened.handler as BlkDevice;
    equal(blk.deviceId, "denovmm-disk1");
    ok(blk.backend instanceof FileBackend);
    equal((blk.backend as FileBackend).readOnly, true);
    equal(blk.backend.sizeBytes, 8 * 512);
    equal(opened.input, undefined, "nothing to poll besides its queue");
    (blk.backend as FileBackend).close();
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("devices: virtio-rng describes itself and fills the driver's buffers", () => {
  const { description: d, backend } = virtioRng.describe(undefined, 0);
  deepEqual(d, {
    name: "virtio-rng",
    deviceType: 4,
    classCode: 0x00_ff_00,
    numQueues: 1,
    queueMaxSize: 256,
    features: TRANSPORT,
    config: new Uint8Array(0),
  });
  deepEqual(backend, { type: "rng" });
  const h = host();
  const opened = openBackend(backend, h);
  equal(opened.input, undefined);
  const harness = new VirtioHarness(opened.handler, 1, h.mem);
  const [driver] = harness.bringUp(1);
  const gpa = driver.alloc(64);
  driver.publish(driver.addChain([{ len: 64, write: true, gpa }]));
  harness.runner.process(0);
  equal(driver.usedElem(0).len, 64);
  ok(h.mem.read(gpa, 64).some((b: number) => b !== 0), "random bytes (all zero: 2^-512)");
});

Deno.test("devices: virtio-console describes itself; its input is the eventfd, drained, then queue 0", () => {
  const wake = EventFd.create();
  const ring = InputRing.createState();
  try {
    const { description: d, backend } = virtioConsole.describe(
      { ring, inputFd: wake.fd, outFd: 7 },
      0,
    );
    deepEqual(d, {
      name: "virtio-console",
      deviceType: 3,
      classCode: 0x07_80_00,
      numQueues: 2,
      queueMaxSize: 256,
      features: TRANSPORT,
      // cols 80, rows 25, max_nr_ports 1, emerg_wr 0
      config: new Uint8Array([80, 0, 25, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
    });
    deepEqual(backend, { type: "console", ring, inputFd: wake.fd, outFd: 7 });
    const writes: Array<[number, Uint8Array]> = [];
    const h = host("virtio-console", writes);
    const opened = openBackend(backend as ConsolePlan, h);
    ok(opened.handler instanceof VirtioConsole);
    equal(opened.input?.fd, wake.fd);
    equal(opened.input?.queue, 0);
    ok(!opened.input?.pausedWhileStarved);
    wake.signal();
    opened.input?.drain?.();
    equal(wake.drain(), 0, "drain consumed the eventfd's count");
    // Output goes to the writer the thread gave for outFd; input comes from the ring.
    const harness = new VirtioHarness(opened.handler, 2, h.mem);
    const [rx, tx] = harness.bringUp(2);
    tx.publish(tx.addChain([{ len: 3, data: new TextEncoder().encode("out") }]));
    harness.runner.process(1);
    deepEqual(writes.map(([fd, b]) => [fd, new TextDecoder().decode(b)]), [[7, "out"]]);
    new InputRing(ring).push(new TextEncoder().encode("in"));
    const gpa = rx.alloc(16);
    rx.publish(rx.addChain([{ len: 16, write: true, gpa }]));
    harness.runner.process(0);
    equal(rx.usedElem(0).len, 2);
    equal(new TextDecoder().decode(h.mem.read(gpa, 2)), "in");
  } finally {
    wake.close();
  }
});

Deno.test("devices: a net plan opens the tap by fd; its input is the tap, paused while RX starves", () => {
  const tap = new FakeTap();
  try {
    const plan: NetPlan = { type: "net", tapFd: tap.fd, tapName: "tap7" };
    const opened = openBackend(plan, host("virtio-net tap7"));
    ok(opened.handler instanceof TapNet);
    const net = opened.handler as TapNet;
    equal(net.tapFd, tap.fd);
    equal(net.name, "virtio-net tap7");
    deepEqual(opened.input, { fd: tap.fd, queue: RX_QUEUE, pausedWhileStarved: true });
  } finally {
    tap.close();
  }
});

function canOpenTap(): boolean {
  try {
    libc.close(openTap("", 12).fd);
    return true;
  } catch (e) {
    if (e instanceof TapError) return false;
    throw e;
  }
}

Deno.test({
  name:
    "devices: virtio-net describes the tap it opened, with its MAC (default: 52:54:00:12:34:56+i)",
  ignore: !canOpenTap(), // needs CAP_NET_ADMIN and /dev/net/tun
  fn: () => {
    const mac = new Uint8Array([0x02, 1, 2, 3, 4, 5]);
    for (
      const [option, index, want] of [
        [{ tap: "" }, 3, [0x52, 0x54, 0x00, 0x12, 0x34, 0x59]],
        [{ tap: "", mac }, 0, [...mac]],
      ] as const
    ) {
      const { description: d, backend } = virtioNet.describe(option, index);
      try {
        equal(d.name, `virtio-net ${backend.tapName}`);
        ok(backend.tapName.length > 0, "the kernel's name for the tap");
        equal(backend.type, "net");
        equal(d.deviceType, 1);
        equal(d.classCode, 0x02_00_00);
        equal(d.numQueues, 2);
        equal(d.queueMaxSize, 256);
        equal(d.features, TRANSPORT | (1n << 5n) | (1n << 16n)); // MAC, STATUS
        deepEqual(d.config, new Uint8Array([...want, 1, 0])); // mac, status LINK_UP
      } finally {
        libc.close(backend.tapFd);
      }
    }
  },
});
