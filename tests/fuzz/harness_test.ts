// The fuzz harness catches what it is there to catch: a device that writes one byte outside
// the buffers the guest gave it, or into a readable one, fails the run with StrayWriteError.
import { equal, ok, throws } from "../assert.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import type { DescriptorChain } from "../../src/virtio/queue.ts";
import {
  FuzzRam,
  FuzzStats,
  HIGH_RAM_GPA,
  LOW_RAM_BYTES,
  type Op,
  StrayWriteError,
} from "./harness.ts";
import { fuzzRun, type VirtioFuzzModel } from "./virtio_harness.ts";

Deno.test("fuzz harness: FuzzRam tells the driver's writes and allowed ranges from stray ones", () => {
  const ram = new FuzzRam();
  ram.w32(0x100, 0xdeadbeef); // the driver's own
  ram.mem.writeU8(0x200, 1); // the device's, allowed
  ram.allow(0x200, 1);
  ram.check();
  ram.mem.writeU16(LOW_RAM_BYTES - 2, 0xffff); // the device's, not allowed
  ram.mem.writeU8(HIGH_RAM_GPA, 7);
  throws(() => ram.check(), StrayWriteError);
  ram.check(); // taken into the shadow: reported once
  equal(ram.offset(LOW_RAM_BYTES, 1), -1, "the hole is not RAM");
  equal(ram.offset(HIGH_RAM_GPA, 1), LOW_RAM_BYTES);
});

/** A device that serves each chain and then writes `extra` into guest memory as well. */
function rogue(extra: (chain: DescriptorChain, mem: FuzzRam) => void): VirtioFuzzModel {
  return {
    description: {
      name: "rogue",
      deviceType: 4,
      classCode: 0xff00,
      numQueues: 1,
      queueMaxSize: 256,
      features: VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX,
      config: new Uint8Array(0),
    },
    backend: (ram) => ({
      device: {
        handle: (_q, chain) => {
          extra(chain, ram);
          return 0;
        },
      },
    }),
    chain: () => [{ len: 8, write: false }, { len: 64, write: true }],
  };
}

/** A bring-up and ten requests. */
const RUN: Op[] = [[1, 1, 1, 1], ...Array.from({ length: 10 }, (): Op => [1, 0, 1, 0])];

Deno.test("fuzz harness: a device writing one byte past its buffer is a stray write", () => {
  const stats = new FuzzStats("rogue");
  const past = rogue((chain, ram) => {
    const w = chain.writable[0];
    ram.mem.writeU8(w.gpa + w.len, 0xee);
  });
  throws(() => fuzzRun(past, stats, RUN), StrayWriteError);
  ok(stats.counts.get("chains")! > 0, "chains were processed");
});

Deno.test("fuzz harness: a device writing into a readable buffer is a stray write", () => {
  const stats = new FuzzStats("rogue");
  const intoReadable = rogue((chain, ram) => ram.mem.writeU8(chain.readable[0].gpa, 0xee));
  throws(() => fuzzRun(intoReadable, stats, RUN), StrayWriteError);
});

Deno.test("fuzz harness: a device writing only its writable buffers passes", () => {
  const stats = new FuzzStats("honest");
  const honest = rogue((chain, ram) => {
    const w = chain.writable[0];
    ram.mem.slice(w.gpa, w.len).fill(0xee);
  });
  ok(fuzzRun(honest, stats, RUN) > 0);
  ok(stats.counts.get("chains")! >= 10);
});
