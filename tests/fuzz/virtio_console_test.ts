// Hostile-guest fuzzing of virtio-console behind the virtio-pci transport: output chains of
// every size and shape, input buffers at RAM edges, typed bytes arriving at any time. No
// exception escapes, the device writes only the guest's input buffers and its used rings, and
// the console gets exactly the bytes of the output chains.
import { ok } from "../assert.ts";
import { InputRing } from "../../src/console/input_ring.ts";
import {
  CONSOLE_TX_MAX_CHAIN_BYTES,
  consoleConfig,
  VirtioConsole,
} from "../../src/virtio/console.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import { fuzz, FuzzStats, ops, pick } from "./harness.ts";
import { type FuzzBuf, fuzzRun, STEP_KINDS, type VirtioFuzzModel } from "./virtio_harness.ts";

const LENGTHS = [1, 80, 4096, 4097, 0, 12000, 2];

function buffers(q: number, a: number, b: number, c: number): FuzzBuf[] {
  const parts = 1 + (b % 3);
  return Array.from({ length: parts }, (_, k) => {
    const len = pick(LENGTHS, a + k);
    return q === 0
      ? { len, write: true }
      : { len, write: false, data: new Uint8Array(len).fill(c & 0xff) };
  });
}

Deno.test("fuzz virtio-console: no escape, no stray write, output is the chains' bytes", () => {
  const stats = new FuzzStats("virtio-console");
  fuzz(stats, ops(STEP_KINDS), (list) => {
    const model: VirtioFuzzModel = {
      description: {
        name: "console",
        deviceType: 3,
        classCode: 0x078000,
        numQueues: 2,
        queueMaxSize: 256,
        features: VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX,
        config: consoleConfig(),
      },
      backend: (ram) => {
        const input = new InputRing(InputRing.createState());
        let out = 0, readable = 0;
        const con = new VirtioConsole(ram.mem, input, (bytes) => void (out += bytes.length));
        return {
          device: {
            handle: (q, chain) => {
              if (q === 1) readable += Math.min(chain.readableBytes, CONSOLE_TX_MAX_CHAIN_BYTES);
              return con.handle(q, chain);
            },
            isFillQueue: (q) => con.isFillQueue(q),
            fill: (q, queue, budget) => con.fill(q, queue, budget),
          },
          hostEvent: (a, _b, c) => {
            input.push(new Uint8Array(pick([1, 3, 100, 4096, 5000], a)).fill(c & 0xff));
            return true;
          },
          endRun: () => ok(out === readable, `${out} bytes out of ${readable} readable`),
        };
      },
      chain: buffers,
    };
    return fuzzRun(model, stats, list);
  });
});
