/**
 * virtio-console (virtio 1.2 §5.3), one port and no multiport: queue 0 carries input to the
 * guest's hvc0, queue 1 its output. Input comes from the main thread's stdin through an
 * InputRing; output goes straight to the console fd from the I/O Worker.
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { InputRing } from "../console/input_ring.ts";
import { type DescriptorChain, readChain, type SplitQueue, writeChain } from "./queue.ts";
import type { FillResult, QueueHandler } from "./device_runner.ts";
import { logRateLimited } from "../log.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { type BackendPlan, QUEUE_SIZE, TRANSPORT_FEATURES, type VirtioDevice } from "./device.ts";

export const CONSOLE_RX_QUEUE = 0;
export const CONSOLE_TX_QUEUE = 1;
const MAX_CHUNK = 4096;
/**
 * Output bytes taken from one transmit chain at most; the rest is dropped (and counted). Linux's
 * hvc driver sends a page at a time; a guest that chains a gigabyte would otherwise hold the
 * I/O Worker for hundreds of thousands of writes.
 */
export const CONSOLE_TX_MAX_CHAIN_BYTES = 64 * 1024;

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

/** The plumbing of a virtio console: the ring stdin fills, the eventfd that says so, and the fd
 * its output goes to. */
export interface VirtioConsoleIo {
  ring: SharedArrayBuffer;
  inputFd: number;
  outFd: number;
}

export interface ConsolePlan extends BackendPlan, VirtioConsoleIo {
  type: "console";
}

const VIRTIO_ID_CONSOLE = 3;
const CLASS_COMMUNICATION_OTHER = 0x07_80_00;

/**
 * virtio-console (`--console virtio`). The main thread fills the ring from stdin and signals
 * the eventfd; the I/O thread drains the eventfd and moves what the ring holds into the
 * receive queue.
 */
export const virtioConsole: VirtioDevice<VirtioConsoleIo, ConsolePlan> = {
  type: "console",
  describe(io) {
    return {
      description: {
        name: "virtio-console",
        deviceType: VIRTIO_ID_CONSOLE,
        classCode: CLASS_COMMUNICATION_OTHER,
        numQueues: 2,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES,
        config: consoleConfig(),
      },
      backend: { type: "console", ring: io.ring, inputFd: io.inputFd, outFd: io.outFd },
    };
  },
  open(plan, host) {
    const wake = new EventFd(plan.inputFd);
    return {
      handler: new VirtioConsole(host.mem, new InputRing(plan.ring), host.output(plan.outFd)),
      input: { fd: plan.inputFd, queue: CONSOLE_RX_QUEUE, drain: () => void wake.drain() },
    };
  },
};

export class VirtioConsole implements QueueHandler {
  readonly #buf = new Uint8Array(MAX_CHUNK);
  /** Output bytes dropped past {@link CONSOLE_TX_MAX_CHAIN_BYTES}. */
  droppedBytes = 0;

  constructor(
    private readonly mem: GuestMemory,
    private readonly input: InputRing,
    private readonly write: (bytes: Uint8Array) => void,
  ) {}

  isFillQueue(queue: number): boolean {
    return queue === CONSOLE_RX_QUEUE;
  }

  handle(queue: number, chain: DescriptorChain): number {
    return queue === CONSOLE_TX_QUEUE ? this.transmit(chain) : 0;
  }

  fill(_queue: number, q: SplitQueue, budget: number): FillResult {
    let used = 0;
    do {
      used += this.receive(q, budget - used);
    } while (used < budget && this.pending() && q.armAvailEvent());
    if (!this.pending()) return "idle";
    return used >= budget ? "more" : "starved";
  }

  /** Guest output: the chain's bytes to the console, up to the per-chain cap. */
  transmit(chain: DescriptorChain): number {
    const total = Math.min(chain.readableBytes, CONSOLE_TX_MAX_CHAIN_BYTES);
    let skip = 0;
    while (skip < total) {
      const n = readChain(
        this.mem,
        chain,
        this.#buf.subarray(0, Math.min(MAX_CHUNK, total - skip)),
        skip,
      );
      if (n === 0) break;
      this.write(this.#buf.subarray(0, n));
      skip += n;
    }
    if (chain.readableBytes > total) {
      this.droppedBytes += chain.readableBytes - total;
      logRateLimited(
        "virtio-console: long chain",
        `virtio-console: output chain of ${chain.readableBytes} bytes cut to ${total} ` +
          `(${this.droppedBytes} bytes dropped so far)`,
      );
    }
    return 0;
  }

  /** Whether typed bytes wait for receive buffers. */
  pending(): boolean {
    return this.input.count() > 0;
  }

  /** Guest input: bytes from the ring into receive buffers while both last (at most `budget`
   * chains); returns chains used. */
  receive(queue: SplitQueue, budget = Infinity): number {
    let used = 0;
    while (used < budget && this.input.count() > 0 && queue.hasAvailable()) {
      const chain = queue.pop();
      if (chain === undefined) break;
      const n = this.input.pop(this.#buf.subarray(0, Math.min(MAX_CHUNK, chain.writableBytes)));
      queue.pushUsed(chain.head, writeChain(this.mem, chain, this.#buf.subarray(0, n)));
      used++;
    }
    return used;
  }
}
