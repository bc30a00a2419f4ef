// Hostile-guest fuzzing of virtio-net behind the virtio-pci transport, on a fake tap (a
// datagram socketpair): transmit chains of every size, receive buffers too small, split or at
// RAM edges, frames from the host of every size. No exception escapes, the device writes only
// the guest's receive buffers and its used rings, and every frame that reaches the tap is one
// the guest sent, with its header.
import { ok } from "../assert.ts";
import { netConfig, TapNet, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS } from "../../src/virtio/net.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../src/virtio/pci_state.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { fuzz, FuzzStats, ops, pick } from "./harness.ts";
import { FakeTap } from "./fake_tap.ts";
import { type FuzzBuf, fuzzRun, STEP_KINDS, type VirtioFuzzModel } from "./virtio_harness.ts";

const RX_LENGTHS = [1526, 65548, 2048, 12, 11, 100, 1514, 4096];
const TX_LENGTHS = [60, 1514, 0, 1, 2, 14, 65536, 65537, 9000];
const HOST_FRAMES = [60, 1514, 0, 11, 12, 13, 65548, 65536 + 12, 9000];

function frames(q: number, a: number, b: number, c: number): FuzzBuf[] {
  if (q === 0) {
    const len = pick(RX_LENGTHS, a);
    const parts = 1 + (b % 3);
    return Array.from({ length: parts }, (_, k) => ({
      len: Math.ceil(len / parts) + (k === 0 ? (c % 3) : 0),
      write: true,
    }));
  }
  const frame = pick(TX_LENGTHS, a);
  const header = new Uint8Array(12);
  header[0] = c % 5 === 0 ? c & 0xff : 0; // flags
  header[1] = c % 7 === 0 ? (c >> 8) & 0xff : 0; // gso_type
  const bufs: FuzzBuf[] = [{ len: 12, write: false, data: header }];
  if (b % 2) bufs.push({ len: frame, write: false, data: new Uint8Array(frame).fill(a & 0xff) });
  else if (frame > 0) {
    bufs.push({ len: 14, write: false }, { len: Math.max(frame - 14, 1), write: false });
  }
  return bufs;
}

Deno.test("fuzz virtio-net: no escape, no stray write, the tap sees only what the guest sent", () => {
  const stats = new FuzzStats("virtio-net");
  const tap = new FakeTap();
  const broken = EventFd.create(); // writes of anything but 8 bytes fail with EINVAL
  try {
    fuzz(stats, ops(STEP_KINDS), (list) => {
      let sent = 0;
      const model: VirtioFuzzModel = {
        description: {
          name: "net",
          deviceType: 1,
          classCode: 0x020000,
          numQueues: 2,
          queueMaxSize: 256,
          features: VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | VIRTIO_NET_F_MAC |
            VIRTIO_NET_F_STATUS,
          config: netConfig(Uint8Array.of(2, 0, 0, 0, 0, 1)),
        },
        backend: (ram) => {
          tap.drain();
          const net = new TapNet(tap.fd, ram.mem);
          const failing = new TapNet(broken.fd, ram.mem);
          let useFailing = false;
          return {
            device: {
              handle: (q, chain) => {
                if (q === 1 && !useFailing && chain.readableBytes > 12) sent++;
                return (useFailing ? failing : net).handle(q, chain);
              },
              isFillQueue: (q) => net.isFillQueue(q),
              fill: (q, queue, budget) => net.fill(q, queue, budget),
            },
            hostEvent: (a, b, c) => {
              // The tap's writes start or stop failing (EINVAL: a tap refusing the frame).
              if (a % 9 === 0) useFailing = !useFailing;
              const n = 1 + (b % 4);
              for (let i = 0; i < n; i++) {
                const frame = new Uint8Array(pick(HOST_FRAMES, a + i)).fill(c & 0xff);
                tap.send(frame);
              }
              return true;
            },
            endRun: () => {
              const out = tap.drain();
              ok(out.length <= sent, `${out.length} frames on the tap, ${sent} sent`);
              for (const len of out) ok(len > 12 && len <= 65548, `a frame of ${len} bytes`);
              stats.count("frames-out", out.length);
            },
          };
        },
        chain: frames,
      };
      return fuzzRun(model, stats, list);
    });
  } finally {
    tap.close();
    broken.close();
  }
});
