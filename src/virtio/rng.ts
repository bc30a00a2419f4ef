/**
 * virtio-rng request handling (virtio 1.2 §5.4): the driver offers writable buffers and the
 * device fills them from the host's CSPRNG (crypto.getRandomValues, which draws on the OS).
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { type DescriptorChain, forEachSlice } from "./queue.ts";
import { type BackendPlan, QUEUE_SIZE, TRANSPORT_FEATURES, type VirtioDevice } from "./device.ts";

const VIRTIO_ID_ENTROPY = 4;
const CLASS_UNCLASSIFIED = 0x00_ff_00;

/** virtio-rng (`--rng`): one request queue, no config, nothing to open on the host. */
export const virtioRng: VirtioDevice<undefined, BackendPlan> = {
  type: "rng",
  describe() {
    return {
      description: {
        name: "virtio-rng",
        deviceType: VIRTIO_ID_ENTROPY,
        classCode: CLASS_UNCLASSIFIED,
        numQueues: 1,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES,
        config: new Uint8Array(0),
      },
      backend: { type: "rng" },
    };
  },
  open(_plan, { mem }) {
    return { handler: { handle: (_queue, chain) => handleRngRequest(mem, chain) } };
  },
};

/** Web Crypto refuses more than 65536 bytes per getRandomValues call. */
const GET_RANDOM_MAX_BYTES = 65536;

/**
 * Bytes filled per request at most. §5.4.6.2 lets the device use less than the whole buffer,
 * and a cap keeps a guest's multi-gigabyte buffer from stalling the I/O Worker; Linux's
 * hwrng asks for far less.
 */
export const RNG_MAX_BYTES_PER_REQUEST = 1024 * 1024;

/**
 * Fill the chain's writable buffers with random bytes (up to
 * {@link RNG_MAX_BYTES_PER_REQUEST}); returns the bytes written, 0 for a chain with no
 * writable buffer.
 *
 * @example
 * ```ts
 * for (let chain = q.pop(); chain; chain = q.pop()) {
 *   q.pushUsed(chain.head, handleRngRequest(mem, chain));
 * }
 * ```
 */
export function handleRngRequest(mem: GuestMemory, chain: DescriptorChain): number {
  const len = Math.min(chain.writableBytes, RNG_MAX_BYTES_PER_REQUEST);
  return forEachSlice(mem, chain.writable, 0, len, fillRandom);
}

function fillRandom(view: Uint8Array): void {
  for (let at = 0; at < view.length; at += GET_RANDOM_MAX_BYTES) {
    crypto.getRandomValues(view.subarray(at, at + GET_RANDOM_MAX_BYTES));
  }
}
