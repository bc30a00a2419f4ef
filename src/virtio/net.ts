/**
 * virtio-net (virtio 1.2 §5.1) on a Linux tap: queue 0 receives, queue 1 transmits. The tap
 * speaks the same 12-byte virtio_net_hdr the driver does (IFF_VNET_HDR with
 * TUNSETVNETHDRSZ 12), so frames pass through with their header and no copy in between
 * beyond guest memory. No offloads are offered: the host kernel sees complete frames.
 */
import { errno, libc, SyscallError } from "../../ffi/libc.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { type DescriptorChain, readChain, type SplitQueue, writeChain } from "./queue.ts";

// The configuration side lives apart (the command line parses MACs without loading libc).
export { netConfig, parseMac, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS } from "./net_config.ts";

/** What receiving needs of the queue (a SplitQueue; a narrower type lets tests step in). */
export type RxQueue = Pick<SplitQueue, "hasAvailable" | "pop" | "pushUsed" | "armAvailEvent">;

export const VIRTIO_NET_HDR_BYTES = 12;
/** num_buffers sits at byte 10 of the header; without MRG_RXBUF it must say 1 (§5.1.6.3.1). */
const NUM_BUFFERS_OFFSET = 10;
/** Largest frame with its header: 64 KiB covers any frame the tap will hand over. */
const MAX_PACKET = 65536 + VIRTIO_NET_HDR_BYTES;
const EAGAIN = 11;
const EINTR = 4;

export const RX_QUEUE = 0;
export const TX_QUEUE = 1;

export class TapNet {
  readonly #packet = new Uint8Array(MAX_PACKET);

  constructor(readonly tapFd: number, private readonly mem: GuestMemory) {}

  /** A transmit chain: the header and frame the driver placed, out to the tap. */
  transmit(chain: DescriptorChain): number {
    const len = chain.readableBytes;
    if (len <= VIRTIO_NET_HDR_BYTES || len > MAX_PACKET) return 0; // nothing sensible: drop it
    const buf = this.#packet.subarray(0, len);
    readChain(this.mem, chain, buf);
    for (;;) {
      const n = Number(libc.write(this.tapFd, buf, BigInt(len)));
      if (n >= 0) return 0;
      const e = errno();
      if (e === EINTR) continue;
      // A full tap queue drops the frame, as a congested link would.
      if (e === EAGAIN) return 0;
      throw new SyscallError("write to tap", e);
    }
  }

  /**
   * Move frames from the tap into receive buffers until either runs out. Returns whether the
   * receive queue ran out of buffers (starved: the caller stops polling the tap until the driver
   * adds some and notifies, which armAvailEvent asked it to).
   */
  receive(queue: RxQueue): boolean {
    for (;;) {
      if (!queue.hasAvailable() && !queue.armAvailEvent()) return true;
      const n = Number(libc.read(this.tapFd, this.#packet, BigInt(MAX_PACKET)));
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) return false;
        throw new SyscallError("read from tap", e);
      }
      if (n < VIRTIO_NET_HDR_BYTES) continue;
      new DataView(this.#packet.buffer).setUint16(NUM_BUFFERS_OFFSET, 1, true);
      const chain = queue.pop();
      if (chain === undefined) return true;
      // A buffer too small for the frame gets nothing (the frame is dropped): a driver without
      // MRG_RXBUF must post buffers that hold any frame (§5.1.6.3.1).
      const written = chain.writableBytes >= n
        ? writeChain(this.mem, chain, this.#packet.subarray(0, n))
        : 0;
      queue.pushUsed(chain.head, written);
    }
  }
}
