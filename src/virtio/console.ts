/**
 * virtio-console (virtio 1.2 §5.3), one port and no multiport: queue 0 carries input to the
 * guest's hvc0, queue 1 its output. Input comes from the main thread's stdin through an
 * InputRing; output goes straight to the console fd from the I/O Worker.
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { InputRing } from "../console/input_ring.ts";
import { type DescriptorChain, readChain, type SplitQueue, writeChain } from "./queue.ts";

export const CONSOLE_RX_QUEUE = 0;
export const CONSOLE_TX_QUEUE = 1;
const MAX_CHUNK = 4096;

/** struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr (sizes unused without
 * VIRTIO_CONSOLE_F_SIZE, but present so the driver reads a full struct). */
export function consoleConfig(): Uint8Array {
  const c = new Uint8Array(12);
  const v = new DataView(c.buffer);
  v.setUint16(0, 80, true);
  v.setUint16(2, 25, true);
  v.setUint32(4, 1, true);
  return c;
}

export class VirtioConsole {
  readonly #buf = new Uint8Array(MAX_CHUNK);

  constructor(
    private readonly mem: GuestMemory,
    private readonly input: InputRing,
    private readonly write: (bytes: Uint8Array) => void,
  ) {}

  /** Guest output: the chain's bytes to the console. */
  transmit(chain: DescriptorChain): number {
    let skip = 0;
    while (skip < chain.readableBytes) {
      const n = readChain(
        this.mem,
        chain,
        this.#buf.subarray(0, Math.min(MAX_CHUNK, chain.readableBytes - skip)),
        skip,
      );
      if (n === 0) break;
      this.write(this.#buf.subarray(0, n));
      skip += n;
    }
    return 0;
  }

  /** Whether typed bytes wait for receive buffers. */
  pending(): boolean {
    return this.input.count() > 0;
  }

  /** Guest input: bytes from the ring into receive buffers while both last; returns chains used. */
  receive(queue: SplitQueue): number {
    let used = 0;
    while (this.input.count() > 0 && queue.hasAvailable()) {
      const chain = queue.pop();
      if (chain === undefined) break;
      const n = this.input.pop(this.#buf.subarray(0, Math.min(MAX_CHUNK, chain.writableBytes)));
      queue.pushUsed(chain.head, writeChain(this.mem, chain, this.#buf.subarray(0, n)));
      used++;
    }
    return used;
  }
}
