/**
 * From the command line's device options to virtio device requests: opening (and so
 * checking) each disk on the main thread, so a bad path fails before the guest starts.
 */
import { blkConfig, blkFeatures, FileBackend } from "../virtio/blk.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../virtio/pci_state.ts";
import type { VirtioDeviceRequest } from "./pci_devices.ts";

export interface DiskOption {
  path: string;
  readOnly: boolean;
}

const VIRTIO_ID_BLOCK = 2;
const VIRTIO_ID_ENTROPY = 4;
const CLASS_STORAGE_OTHER = 0x01_80_00;
const CLASS_UNCLASSIFIED = 0x00_ff_00;
const QUEUE_SIZE = 256;
const TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX;

export function virtioRequests(disks: DiskOption[], rng: boolean): VirtioDeviceRequest[] {
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
