import { equal, ok, throws } from "../assert.ts";
import { Bus, BusConflictError } from "../../src/bus/bus.ts";
import type { BusDevice } from "../../src/bus/device.ts";

const dev = (): BusDevice => ({ read: () => {}, write: () => {} });

Deno.test("bus: finds the device whose range holds the whole access", () => {
  const bus = new Bus("pio", 0x10000);
  const a = dev();
  const b = dev();
  bus.register(0x3f8, 8, a, "serial");
  bus.register(0x60, 5, b, "i8042");
  equal(bus.find(0x3f8, 1)?.device, a);
  equal(bus.find(0x3ff, 1)?.device, a);
  equal(bus.find(0x3fe, 2)?.device, a);
  equal(bus.find(0x3ff, 2), undefined, "an access straddling the end is unclaimed");
  equal(bus.find(0x400, 1), undefined);
  equal(bus.find(0x64, 1)?.device, b);
  equal(bus.find(0x0, 1), undefined);
});

Deno.test("bus: overlapping or out-of-bus ranges are refused", () => {
  const bus = new Bus("pio", 0x10000);
  bus.register(0x3f8, 8, dev(), "serial");
  throws(() => bus.register(0x3fc, 8, dev(), "other"), BusConflictError);
  throws(() => bus.register(0x3f0, 9, dev(), "other"), BusConflictError);
  throws(() => bus.register(0xfffe, 4, dev(), "late"), BusConflictError);
  throws(() => bus.register(-1, 4, dev(), "neg"), BusConflictError);
  bus.register(0x3f0, 8, dev(), "adjacent");
  ok(bus.find(0x3f7, 1));
});

Deno.test("bus: unregister frees the range", () => {
  const bus = new Bus("mmio", 2 ** 48);
  bus.register(0xd000_0000, 0x1000, dev(), "bar");
  ok(bus.unregister(0xd000_0000));
  equal(bus.find(0xd000_0000, 4), undefined);
  bus.register(0xd000_0800, 0x1000, dev(), "moved");
  ok(bus.find(0xd000_1000, 4));
});
