import { equal, ok } from "../assert.ts";
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_FEATURES_OK,
  VIRTIO_F_VERSION_1,
  VIRTIO_NO_VECTOR,
  VirtioPciState,
} from "../../src/virtio/pci_state.ts";
import fc from "fast-check";

const FEATURES = VIRTIO_F_VERSION_1 | (1n << 9n);

function device() {
  return new VirtioPciState(VirtioPciState.create(2, 256, 3, FEATURES));
}

Deno.test("virtio-pci: device features read through the select register", () => {
  const s = device();
  s.writeCommon(0x00, 4, 0);
  equal(s.readCommon(0x04, 4), 1 << 9);
  s.writeCommon(0x00, 4, 1);
  equal(s.readCommon(0x04, 4), 1, "VERSION_1 is bit 32");
  s.writeCommon(0x00, 4, 7);
  equal(s.readCommon(0x04, 4), 0);
  equal(s.readCommon(0x12, 2), 2, "num_queues");
});

Deno.test("virtio-pci: FEATURES_OK sticks only for a subset of the offer with VERSION_1", () => {
  const s = device();
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  s.writeCommon(0x08, 4, 0);
  s.writeCommon(0x0c, 4, (1 << 9) | (1 << 3)); // bit 3 is not offered
  s.writeCommon(0x08, 4, 1);
  s.writeCommon(0x0c, 4, 1);
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  equal(s.readCommon(0x14, 1) & STATUS_FEATURES_OK, 0, "refused: unoffered feature");
  s.writeCommon(0x08, 4, 0);
  s.writeCommon(0x0c, 4, 1 << 9);
  s.writeCommon(0x08, 4, 1);
  s.writeCommon(0x0c, 4, 0); // no VERSION_1
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  equal(s.readCommon(0x14, 1) & STATUS_FEATURES_OK, 0, "refused: legacy interface");
  s.writeCommon(0x0c, 4, 1);
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  ok(s.readCommon(0x14, 1) & STATUS_FEATURES_OK);
  equal(s.driverFeatures, FEATURES);
  s.writeCommon(0x0c, 4, 0);
  equal(s.driverFeatures, FEATURES, "features are frozen once FEATURES_OK is set");
});

Deno.test("virtio-pci: queue registers, enable, and reset", () => {
  const s = device();
  const gen = s.resetGeneration;
  s.writeCommon(0x16, 2, 1);
  equal(s.readCommon(0x18, 2), 256, "size starts at the maximum");
  s.writeCommon(0x18, 2, 100); // not a power of two
  equal(s.readCommon(0x18, 2), 256);
  s.writeCommon(0x18, 2, 512); // above the maximum
  equal(s.readCommon(0x18, 2), 256);
  s.writeCommon(0x18, 2, 64);
  s.writeCommon(0x20, 4, 0x1000);
  s.writeCommon(0x24, 4, 0x1);
  s.writeCommon(0x28, 4, 0x2000);
  s.writeCommon(0x30, 4, 0x3000);
  s.writeCommon(0x1a, 2, 2);
  equal(s.readCommon(0x1a, 2), 2);
  s.writeCommon(0x1a, 2, 3); // only 3 vectors: 0..2
  equal(s.readCommon(0x1a, 2), VIRTIO_NO_VECTOR, "an impossible vector reads back NO_VECTOR");
  equal(s.readCommon(0x1e, 2), 1, "queue_notify_off");
  equal(s.writeCommon(0x1c, 2, 1), "queue");
  ok(s.queueEnabled(1));
  const a = s.queueAddresses(1);
  equal(a.size, 64);
  equal(a.descGpa, 0x1_0000_1000);
  equal(a.availGpa, 0x2000);
  equal(a.usedGpa, 0x3000);
  s.writeCommon(0x18, 2, 32);
  equal(s.queueAddresses(1).size, 64, "no changes while enabled");
  equal(s.writeCommon(0x14, 1, 0), "reset");
  ok(!s.queueEnabled(1));
  equal(s.status, 0);
  equal(s.resetGeneration, gen + 1);
  s.writeCommon(0x16, 2, 5);
  equal(s.readCommon(0x18, 2), 0, "a queue that does not exist reads size 0");
});

Deno.test("virtio-pci: the driver can neither clear status bits nor set NEEDS_RESET", () => {
  const s = device();
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DEVICE_NEEDS_RESET);
  equal(s.status, STATUS_ACKNOWLEDGE);
  s.markNeedsReset();
  s.writeCommon(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  equal(s.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DEVICE_NEEDS_RESET);
});

Deno.test("virtio-pci: ISR reads clear it and lower INTx once", () => {
  const s = device();
  let lowered = 0;
  s.raiseIsr(1);
  equal(s.readIsr(() => lowered++), 1);
  equal(s.readIsr(() => lowered++), 0);
  equal(lowered, 1);
});

Deno.test("virtio-pci: any common-config access sequence never throws and keeps invariants", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.boolean(),
          fc.integer({ min: -4, max: 0x60 }),
          fc.integer({ min: 0, max: 9 }),
          fc.nat(),
        ),
        { maxLength: 60 },
      ),
      (ops) => {
        const s = device();
        for (const [write, offset, size, value] of ops) {
          if (write) s.writeCommon(offset, size, value >>> 0);
          else s.readCommon(offset, size);
        }
        for (let q = 0; q < 2; q++) {
          const size = s.queueAddresses(q).size;
          if (size === 0 || (size & (size - 1)) !== 0 || size > 256) return false;
          const v = s.queueVector(q);
          if (v !== VIRTIO_NO_VECTOR && v >= 3) return false;
        }
        return (s.driverFeatures & ~FEATURES) === 0n || (s.status & STATUS_FEATURES_OK) === 0;
      },
    ),
  );
});
