import { deepEqual, equal } from "../assert.ts";
import {
  BAR0_SIZE,
  DEVICE_CONFIG_OFFSET,
  NOTIFY_OFFSET,
  VIRTIO_PCI_DEVICE_BASE,
  VIRTIO_PCI_VENDOR,
} from "../../src/virtio/pci_transport.ts";
import { RecordingDevice, VirtioHarness } from "./virtio_harness.ts";

Deno.test("virtio-pci function: ids, and a notify reaches the hook only for a real queue", () => {
  const h = new VirtioHarness(new RecordingDevice(), 2);
  equal(h.fn.config.read(0, 2), VIRTIO_PCI_VENDOR);
  equal(h.fn.config.read(2, 2), VIRTIO_PCI_DEVICE_BASE + 4);
  h.notify(1);
  h.notify(0);
  // Past the last queue, unaligned, or anywhere else in the notify window: ignored.
  h.fn.barWrite(0, NOTIFY_OFFSET + 4 * 2, new Uint8Array(2));
  h.fn.barWrite(0, NOTIFY_OFFSET + 2, new Uint8Array(2));
  h.fn.barWrite(0, BAR0_SIZE - 4, new Uint8Array(4));
  deepEqual(h.notifies, [1, 0]);
});

Deno.test("virtio-pci function: device config reads, past its end read zero; writes are ignored", () => {
  const h = new VirtioHarness(new RecordingDevice());
  new Uint8Array(h.plan.deviceConfig).set([1, 2, 3, 4, 5, 6, 7, 8]);
  const data = new Uint8Array(4);
  h.fn.barRead(0, DEVICE_CONFIG_OFFSET + 6, data);
  deepEqual([...data], [7, 8, 0, 0]);
  h.fn.barWrite(0, DEVICE_CONFIG_OFFSET, new Uint8Array([9, 9, 9, 9]));
  h.fn.barRead(0, DEVICE_CONFIG_OFFSET, data);
  deepEqual([...data], [1, 2, 3, 4]);
});

Deno.test("virtio-pci function: a common-config access of the wrong width reads 0 and writes nothing", () => {
  const h = new VirtioHarness(new RecordingDevice());
  h.write(0x16, 2, 0);
  equal(h.read(0x18, 2), 256);
  h.write(0x18, 4, 16); // queue_size is 16 bits
  h.write(0x18, 1, 16);
  equal(h.read(0x18, 2), 256);
  equal(h.read(0x18, 4), 0);
  // A kick only for what the Worker must see.
  const kicks = h.kicks;
  h.write(0x16, 2, 0);
  equal(h.kicks, kicks);
});

Deno.test("virtio-pci function: every BAR 0 and BAR 1 offset and width is survivable", () => {
  const h = new VirtioHarness(new RecordingDevice(), 2);
  h.bringUp();
  for (const bar of [0, 1]) {
    for (let off = 0; off < (bar === 0 ? BAR0_SIZE : 0x1000); off += 3) {
      for (const size of [1, 2, 4, 8]) {
        const data = new Uint8Array(size).fill(0xa5);
        h.fn.barRead(bar, off, data);
        if (off !== 0x14) h.fn.barWrite(bar, off, data); // not status: keep the device up
      }
    }
  }
});
