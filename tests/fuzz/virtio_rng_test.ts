// Hostile-guest fuzzing of virtio-rng behind the virtio-pci transport: request buffers of any
// size and shape, at RAM edges and beyond. No exception escapes, and the device writes only
// the guest's buffers and its used ring.
import { handleRngRequest } from "../../src/virtio/rng.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import { fuzz, FuzzStats, ops, pick } from "./harness.ts";
import { type FuzzBuf, fuzzRun, STEP_KINDS, type VirtioFuzzModel } from "./virtio_harness.ts";

const LENGTHS = [64, 1, 16, 4096, 512, 65537, 0, 64];

function buffers(_q: number, a: number, b: number, c: number): FuzzBuf[] {
  const parts = 1 + (b % 3);
  return Array.from({ length: parts }, (_, k) => ({
    len: pick(LENGTHS, a + k),
    write: c % 9 !== 0 || k > 0, // sometimes a readable buffer first
  }));
}

Deno.test("fuzz virtio-rng: no escape, no stray write", () => {
  const stats = new FuzzStats("virtio-rng");
  fuzz(stats, ops(STEP_KINDS), (list) => {
    const model: VirtioFuzzModel = {
      description: {
        name: "rng",
        deviceType: 4,
        classCode: 0x00ff00,
        numQueues: 1,
        queueMaxSize: 256,
        features: VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX,
        config: new Uint8Array(0),
      },
      backend: (ram) => ({ device: { handle: (_q, chain) => handleRngRequest(ram.mem, chain) } }),
      chain: buffers,
    };
    return fuzzRun(model, stats, list);
  });
});
