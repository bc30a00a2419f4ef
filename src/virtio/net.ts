/**
 * virtio-net (virtio 1.2 §5.1) on a Linux tap: queue 0 receives, queue 1 transmits. The tap
 * speaks the same 12-byte virtio_net_hdr the driver does (IFF_VNET_HDR with
 * TUNSETVNETHDRSZ 12), so frames pass through with their header and no copy in between
 * beyond guest memory. No offloads are offered: the host kernel sees complete frames.
 */
import { errno, libc, strerror } from "../../ffi/libc.ts";
import { EAGAIN, EINTR, errnoName } from "../../ffi/errno.ts";
import { logRateLimited } from "../log.ts";
import type { FillResult, QueueHandler } from "./device_runner.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { type DescriptorChain, readChain, type SplitQueue, writeChain } from "./queue.ts";
import { openTap } from "../../ffi/tun.ts";
import { type BackendPlan, QUEUE_SIZE, TRANSPORT_FEATURES, type VirtioDevice } from "./device.ts";
import { netConfig, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS } from "./net_config.ts";

// The configuration side lives apart (the command line parses MACs without loading libc).
export { netConfig, parseMac, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS } from "./net_config.ts";

/** What receiving needs of the queue (a SplitQueue; a narrower type lets tests step in). */
export type RxQueue = Pick<SplitQueue, "hasAvailable" | "pop" | "pushUsed" | "armAvailEvent">;

export const VIRTIO_NET_HDR_BYTES = 12;
/** num_buffers sits at byte 10 of the header; without MRG_RXBUF it must say 1 (§5.1.6.3.1). */
const NUM_BUFFERS_OFFSET = 10;
/** Largest frame with its header: 64 KiB covers any frame the tap will hand over. */
const MAX_PACKET = 65536 + VIRTIO_NET_HDR_BYTES;

export const RX_QUEUE = 0;
export const TX_QUEUE = 1;

/** `--network tap[=NAME][,mac=MAC]`. */
export interface NetOption {
  /** Tap interface name; "" lets the kernel choose (tap0, tap1, ...). */
  tap: string;
  mac?: Uint8Array;
}

/** The tap the main thread opened, by fd. */
export interface NetPlan extends BackendPlan {
  type: "net";
  tapFd: number;
  tapName: string;
}

const VIRTIO_ID_NET = 1;
const CLASS_ETHERNET = 0x02_00_00;
/** Locally administered (bit 1), unicast: 52:54:00 is the prefix QEMU users know. */
const DEFAULT_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/**
 * virtio-net on a tap. The main thread opens the tap (so a missing permission fails before the
 * guest starts); the I/O thread reads frames from it into the receive queue whenever it is
 * readable and the queue has buffers.
 */
export const virtioNet: VirtioDevice<NetOption, NetPlan> = {
  type: "net",
  describe(net, index) {
    const mac = net.mac ??
      Uint8Array.from(DEFAULT_MAC.map((b, j) => j === 5 ? (b + index) & 0xff : b));
    const tap = openTap(net.tap, VIRTIO_NET_HDR_BYTES);
    return {
      description: {
        name: `virtio-net ${tap.name}`,
        deviceType: VIRTIO_ID_NET,
        classCode: CLASS_ETHERNET,
        numQueues: 2,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS,
        config: netConfig(mac),
      },
      backend: { type: "net", tapFd: tap.fd, tapName: tap.name },
    };
  },
  open(plan, host) {
    return {
      handler: new TapNet(plan.tapFd, host.mem, host.name),
      input: { fd: plan.tapFd, queue: RX_QUEUE, pausedWhileStarved: true },
    };
  },
};

/** Why a frame was dropped: each counted, each logged at most once a second. */
export interface NetDrops {
  /** Transmit: the tap refused the frame (down: EIO; deleted: EBADFD; ...). */
  txTapError: number;
  /** Transmit: the tap's queue was full (EAGAIN), as a congested link drops. */
  txFull: number;
  /** Transmit: shorter than an Ethernet header or longer than any frame. */
  txMalformed: number;
  /** Receive: a read from the tap failed with something other than EAGAIN. */
  rxTapError: number;
  /** Receive: the driver's buffer was too small for the frame. */
  rxTooSmall: number;
}

/** An Ethernet header: the least a frame must carry after its virtio header. */
const ETH_HLEN = 14;

export class TapNet implements QueueHandler {
  readonly #packet = new Uint8Array(MAX_PACKET);
  readonly #packetView = new DataView(this.#packet.buffer);
  readonly drops: NetDrops = {
    txTapError: 0,
    txFull: 0,
    txMalformed: 0,
    rxTapError: 0,
    rxTooSmall: 0,
  };

  constructor(
    readonly tapFd: number,
    private readonly mem: GuestMemory,
    readonly name = "virtio-net",
  ) {}

  isFillQueue(queue: number): boolean {
    return queue === RX_QUEUE;
  }

  handle(queue: number, chain: DescriptorChain): number {
    return queue === TX_QUEUE ? this.transmit(chain) : 0;
  }

  fill(_queue: number, q: SplitQueue, budget: number): FillResult {
    return this.receive(q, budget);
  }

  /**
   * A transmit chain: the header and frame the driver placed, out to the tap. Whatever goes
   * wrong on the host side (the tap down or deleted, its queue full) drops this frame only.
   */
  transmit(chain: DescriptorChain): number {
    const len = chain.readableBytes;
    if (len < VIRTIO_NET_HDR_BYTES + ETH_HLEN || len > MAX_PACKET) {
      this.#drop("txMalformed", `transmit chain of ${len} bytes is not a frame`);
      return 0;
    }
    const buf = this.#packet.subarray(0, len);
    readChain(this.mem, chain, buf);
    // No offload was offered (§5.1.6.2): flags, gso_type, hdr_len, gso_size and the checksum
    // fields mean nothing, and the tap would refuse a frame for them. Zero them.
    buf.fill(0, 0, NUM_BUFFERS_OFFSET);
    for (;;) {
      const n = Number(libc.write(this.tapFd, buf, BigInt(len)));
      if (n >= 0) return 0;
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) this.#drop("txFull", "tap queue full");
      else this.#drop("txTapError", `write to tap: ${errnoName(e)} (${strerror(e)})`);
      return 0;
    }
  }

  /**
   * Move frames from the tap into receive buffers until either runs out or `budget` frames
   * moved: "starved" when the receive queue ran out of buffers (the caller stops polling the
   * tap until the driver adds some and notifies, which armAvailEvent asked it to), "idle" when
   * the tap had no more, "more" when the budget ran out.
   */
  receive(queue: RxQueue, budget = Infinity): FillResult {
    for (let frames = 0;; frames++) {
      if (frames >= budget) return "more";
      if (!queue.hasAvailable() && !queue.armAvailEvent()) return "starved";
      const n = Number(libc.read(this.tapFd, this.#packet, BigInt(MAX_PACKET)));
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) return "idle";
        // The tap went away under us (deleted: EBADFD) or failed: stop reading it until the
        // driver posts buffers again, rather than spin on an fd that is always "readable".
        this.#drop("rxTapError", `read from tap: ${errnoName(e)} (${strerror(e)})`);
        return "starved";
      }
      if (n < VIRTIO_NET_HDR_BYTES) continue;
      this.#packetView.setUint16(NUM_BUFFERS_OFFSET, 1, true);
      const chain = queue.pop();
      if (chain === undefined) return "starved";
      // A buffer too small for the frame gets nothing (the frame is dropped): a driver without
      // MRG_RXBUF must post buffers that hold any frame (§5.1.6.3.1).
      let written = 0;
      if (chain.writableBytes >= n) {
        written = writeChain(this.mem, chain, this.#packet.subarray(0, n));
      } else {
        this.#drop("rxTooSmall", `receive buffer of ${chain.writableBytes} bytes < frame of ${n}`);
      }
      queue.pushUsed(chain.head, written);
    }
  }

  #drop(cause: keyof NetDrops, why: string): void {
    const count = ++this.drops[cause];
    logRateLimited(
      `${this.name}: ${cause}`,
      `${this.name}: frame dropped: ${why} (${count} dropped so far)`,
    );
  }
}
