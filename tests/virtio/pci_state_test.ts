import { equal, ok } from "../assert.ts";
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
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

/** One driver-side operation on the common config: raw, or a step of §3.1.1's bring-up. */
type Step = Array<[write: boolean, offset: number, size: number, value: number]>;

const FEATURE_VALUES = [
  Number(FEATURES & 0xffff_ffffn),
  Number(FEATURES >> 32n),
  0,
  1 << 3, // not offered
];

/** Accesses as a driver makes them during bring-up (§3.1.1, §4.1.5.1.3), and anything at all. */
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    // A whole bring-up (§3.1.1), sometimes without the status write that ends it.
    weight: 2,
    arbitrary: fc.integer({ min: 0, max: 3 }).map((end): Step => {
      const driver = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
      const accesses: Step = [
        [true, 0x14, 1, STATUS_ACKNOWLEDGE],
        [true, 0x14, 1, driver],
        [true, 0x08, 4, 0],
        [true, 0x0c, 4, FEATURE_VALUES[0]],
        [true, 0x08, 4, 1],
        [true, 0x0c, 4, FEATURE_VALUES[1]],
        [true, 0x14, 1, driver | STATUS_FEATURES_OK],
      ];
      if (end !== 0) accesses.push([true, 0x14, 1, driver | STATUS_FEATURES_OK | STATUS_DRIVER_OK]);
      return accesses;
    }),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.boolean(),
      fc.integer({ min: -4, max: 0x60 }),
      fc.integer({ min: 0, max: 9 }),
      fc.nat(),
    ).map((a): Step => [a]),
  },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.constantFrom(
        STATUS_ACKNOWLEDGE,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK,
        0,
      ),
      fc.integer({ min: 0, max: 0xff }),
    ).map((v): Step => [[true, 0x14, 1, v]]),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(
      fc.integer({ min: 0, max: 2 }),
      fc.oneof(fc.constantFrom(...FEATURE_VALUES), fc.nat()),
      fc.integer({ min: 0, max: 3 }).map((n) => n !== 0), // the whole offer, mostly
    ).map(([select, value, both]): Step => {
      const lo = select === 1 ? FEATURE_VALUES[1] : FEATURE_VALUES[0];
      return both
        ? [[true, 0x08, 4, 0], [true, 0x0c, 4, lo | (value & (1 << 3))], [true, 0x08, 4, 1], [
          true,
          0x0c,
          4,
          FEATURE_VALUES[1],
        ]]
        : [[true, 0x08, 4, select], [true, 0x0c, 4, value >>> 0]];
    }),
  },
  {
    weight: 4,
    arbitrary: fc.tuple(
      fc.integer({ min: 0, max: 2 }),
      fc.oneof(fc.constantFrom(1, 16, 64, 256), fc.integer({ min: 0, max: 1024 })),
      fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(VIRTIO_NO_VECTOR), fc.nat(0xffff)),
      fc.nat(),
      fc.boolean(),
    ).map(([q, size, vector, addr, enable]) => {
      const accesses: Step = [
        [true, 0x16, 2, q],
        [true, 0x18, 2, size],
        [true, 0x20, 4, addr & ~15],
        [true, 0x28, 4, (addr & ~15) + 0x1000],
        [true, 0x30, 4, (addr & ~15) + 0x2000],
        [true, 0x1a, 2, vector],
      ];
      if (enable) accesses.push([true, 0x1c, 2, 1]);
      return accesses;
    }),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.nat(0xffff)).map((
      v,
    ): Step => [[true, 0x10, 2, v]]),
  },
);

Deno.test("virtio-pci (property): any common-config access sequence keeps virtio 1.2's rules", () => {
  const reached = { featuresOk: 0, driverOk: 0, queueEnabled: 0, vector: 0, reset: 0 };
  let runs = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 5, maxLength: 40, size: "max" }), (steps) => {
      runs++;
      const s = device();
      const seen = {
        featuresOk: false,
        driverOk: false,
        queueEnabled: false,
        vector: false,
        reset: false,
      };
      let status = 0;
      const enabled = [false, false];
      for (const accesses of steps) {
        for (const [write, offset, size, value] of accesses) {
          if (write) s.writeCommon(offset, size, value >>> 0);
          else s.readCommon(offset, size);
          if (write && offset === 0x14 && size === 1 && (value & 0xff) === 0) {
            // §4.1.4.3.1: writing 0 resets the device; it reads back 0 and forgets the driver.
            equal(s.readCommon(0x14, 1), 0);
            equal(s.driverFeatures, 0n);
            equal(s.configVector, VIRTIO_NO_VECTOR);
            for (let q = 0; q < 2; q++) {
              ok(!s.queueEnabled(q));
              equal(s.queueVector(q), VIRTIO_NO_VECTOR);
            }
            status = 0;
            enabled.fill(false);
            seen.reset = true;
            continue;
          }
          const now = s.status;
          // §2.1.1: the driver never clears a status bit except by reset.
          equal(now & status, status, "status bits only grow until reset");
          status = now;
          if (now & STATUS_FEATURES_OK) {
            // §3.1.1: FEATURES_OK sticks only for a subset of the offer, with VERSION_1.
            equal(s.driverFeatures & ~FEATURES, 0n, "only offered features accepted");
            ok(s.driverFeatures & VIRTIO_F_VERSION_1, "VERSION_1 accepted");
            seen.featuresOk = true;
          }
          if (now & STATUS_DRIVER_OK) {
            // §3.1.1: DRIVER_OK comes after FEATURES_OK was accepted.
            ok(now & STATUS_FEATURES_OK, "DRIVER_OK without FEATURES_OK");
            seen.driverOk = true;
          }
          for (let q = 0; q < 2; q++) {
            const a = s.queueAddresses(q);
            ok(a.size > 0 && a.size <= 256 && (a.size & (a.size - 1)) === 0, `size ${a.size}`);
            const v = s.queueVector(q);
            ok(v === VIRTIO_NO_VECTOR || v < 3, `vector ${v}`);
            if (v !== VIRTIO_NO_VECTOR) seen.vector = true;
            // §4.1.4.3.2: the driver cannot disable a queue (only reset does).
            if (enabled[q]) ok(s.queueEnabled(q), `queue ${q} disabled without reset`);
            enabled[q] = s.queueEnabled(q);
            if (enabled[q]) seen.queueEnabled = true;
          }
          const c = s.configVector;
          ok(c === VIRTIO_NO_VECTOR || c < 3, `config vector ${c}`);
        }
      }
      for (const k of Object.keys(seen) as Array<keyof typeof seen>) if (seen[k]) reached[k]++;
    }),
    { numRuns: 300 },
  );
  for (const [what, hits] of Object.entries(reached)) {
    console.log(`virtio-pci property: ${what} in ${hits} of ${runs} runs`);
    const least = what === "reset" ? 0.1 : 0.2;
    ok(hits / runs >= least, `${what} reached in only ${hits} of ${runs} runs`);
  }
});
