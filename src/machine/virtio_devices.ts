/**
 * From the command line's device options to virtio device requests: opening (and so
 * checking) each disk on the main thread, so a bad path fails before the guest starts.
 */
import { blkConfig, blkFeatures, FileBackend } from "../virtio/blk.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../virtio/pci_state.ts";
import type { VirtioDeviceRequest } from "./pci_devices.ts";
import { openTap } from "../../ffi/tun.ts";
import { consoleConfig } from "../virtio/console.ts";
import {
  netConfig,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_BYTES,
} from "../virtio/net.ts";

export interface NetOption {
  /** Tap interface name; "" lets the kernel choose (tap0, tap1, ...). */
  tap: string;
  mac?: Uint8Array;
}

export interface DiskOption {
  path: string;
  readOnly: boolean;
}

const VIRTIO_ID_NET = 1;
const VIRTIO_ID_BLOCK = 2;
const VIRTIO_ID_CONSOLE = 3;
const CLASS_COMMUNICATION_OTHER = 0x07_80_00;
const CLASS_ETHERNET = 0x02_00_00;
/** Locally administered (bit 1), unicast: 52:54:00 is the prefix QEMU users know. */
const DEFAULT_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const VIRTIO_ID_ENTROPY = 4;
const CLASS_STORAGE_OTHER = 0x01_80_00;
const CLASS_UNCLASSIFIED = 0x00_ff_00;
const QUEUE_SIZE = 256;
const TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX;

/** The plumbing of a virtio console: the ring stdin fills and the eventfd that says so. */
export interface VirtioConsoleIo {
  ring: SharedArrayBuffer;
  inputFd: number;
  outFd: number;
}

export function virtioRequests(
  disks: DiskOption[],
  rng: boolean,
  nets: NetOption[] = [],
  console?: VirtioConsoleIo,
): VirtioDeviceRequest[] {
  const requests: VirtioDeviceRequest[] = disks.map((d, i) => {
    const probe = new FileBackend(d.path, { readOnly: d.readOnly });
    const size = probe.sizeBytes;
    probe.close();
    return {
      description: {
        name: `virtio-blk ${d.path}`,
        deviceType: VIRTIO_ID_BLOCK,
        classCode: CLASS_STORAGE_OTHER,
        numQueues: 1,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES | blkFeatures(d.readOnly),
        config: blkConfig(size),
      },
      backend: { kind: "blk", path: d.path, readOnly: d.readOnly, id: `denovmm-disk${i}` },
    };
  });
  nets.forEach((n, i) => {
    const mac = n.mac ?? Uint8Array.from(DEFAULT_MAC.map((b, j) => j === 5 ? (b + i) & 0xff : b));
    const tap = openTap(n.tap, VIRTIO_NET_HDR_BYTES);
    requests.push({
      description: {
        name: `virtio-net ${tap.name}`,
        deviceType: VIRTIO_ID_NET,
        classCode: CLASS_ETHERNET,
        numQueues: 2,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS,
        config: netConfig(mac),
      },
      backend: { kind: "net", tapFd: tap.fd, tapName: tap.name },
    });
  });
  if (console) {
    requests.push({
      description: {
        name: "virtio-console",
        deviceType: VIRTIO_ID_CONSOLE,
        classCode: CLASS_COMMUNICATION_OTHER,
        numQueues: 2,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES,
        config: consoleConfig(),
      },
      backend: { kind: "console", ...console },
    });
  }
  if (rng) {
    requests.push({
      description: {
        name: "virtio-rng",
        deviceType: VIRTIO_ID_ENTROPY,
        classCode: CLASS_UNCLASSIFIED,
        numQueues: 1,
        queueMaxSize: QUEUE_SIZE,
        features: TRANSPORT_FEATURES,
        config: new Uint8Array(0),
      },
      backend: { kind: "rng" },
    });
  }
  return requests;
}
