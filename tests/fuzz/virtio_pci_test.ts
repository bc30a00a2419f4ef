// Hostile-guest fuzzing of the virtio-pci transport itself (VirtioPciFunction over
// VirtioPciState, behind the PCI bus): the same mix of bring-ups and hostile register
// accesses as the device fuzzers, with the transport's rules checked after every operation
// (virtio 1.2 §2.1, §3.1.1, §4.1.4.3, §4.1.5.1.2).
import { equal, ok } from "../assert.ts";
import {
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VIRTIO_NO_VECTOR,
} from "../../src/virtio/pci_state.ts";
import { NOTIFY_OFFSET } from "../../src/virtio/pci_transport.ts";
import { fuzz, FuzzStats, ops } from "./harness.ts";
import { step, STEP_KINDS, type VirtioFuzzModel, VirtioFuzzRig } from "./virtio_harness.ts";

const OFFERED = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | (1n << 5n);
const MAX_SIZE = 256;
const QUEUES = 3;

const model: VirtioFuzzModel = {
  description: {
    name: "transport",
    deviceType: 1,
    classCode: 0x020000,
    numQueues: QUEUES,
    queueMaxSize: MAX_SIZE,
    features: OFFERED,
    config: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  },
  backend: () => ({ device: { handle: () => 0 } }),
  chain: (_q, a) => [{ len: 1 + (a % 64), write: true }],
};

Deno.test("fuzz virtio-pci: status, features, queues and vectors keep the spec's rules", () => {
  const stats = new FuzzStats("virtio-pci transport");
  fuzz(stats, ops(STEP_KINDS), (list) => {
    const rig = new VirtioFuzzRig(model, stats);
    const s = rig.fn.state;
    let status = s.status;
    let frozen: string[] = [];
    let sawDriverOk = false;
    let generation = s.resetGeneration;
    for (const op of list) {
      step(rig, op);
      const now = s.status;
      // The driver clears status bits only by reset (§2.1.1, §4.1.4.3.1).
      if (s.resetGeneration === generation) {
        equal(now & status & ~0x40, status & ~0x40, "status bits only grow");
      }
      status = now;
      if (now & STATUS_DRIVER_OK) {
        ok(now & STATUS_FEATURES_OK, "DRIVER_OK without FEATURES_OK (§3.1.1)");
        sawDriverOk = true;
      }
      if (now & STATUS_FEATURES_OK) {
        equal(s.negotiatedFeatures & ~OFFERED, 0n, "only offered features in force");
        ok(s.negotiatedFeatures & VIRTIO_F_VERSION_1, "VERSION_1 in force");
      }
      const fields: string[] = [];
      for (let q = 0; q < QUEUES; q++) {
        const a = s.queueAddresses(q);
        ok(a.size > 0 && a.size <= MAX_SIZE && (a.size & (a.size - 1)) === 0, `size ${a.size}`);
        const v = s.queueVector(q);
        ok(v === VIRTIO_NO_VECTOR || v < QUEUES + 1, `vector ${v}`);
        fields.push(s.queueEnabled(q) ? JSON.stringify(a) : "");
      }
      const c = s.configVector;
      ok(c === VIRTIO_NO_VECTOR || c < QUEUES + 1, `config vector ${c}`);
      // §4.1.4.3.2: queue fields do not change while the queue is enabled.
      if (s.resetGeneration === generation) {
        fields.forEach((f, q) => {
          if (f !== "" && frozen[q]) equal(f, frozen[q], `queue ${q} changed while enabled`);
        });
      }
      frozen = fields;
      generation = s.resetGeneration;
      // Notify slots where BAR 0 decodes, or nowhere.
      const bar = rig.fn.config.barInfo(0)!;
      const want = rig.fn.config.memoryEnabled() && bar.address !== 0
        ? bar.address + NOTIFY_OFFSET
        : 0;
      equal(s.ioeventfdBase(), want, "notify slots follow BAR 0");
    }
    if (sawDriverOk) stats.count("runs-driver-ok");
    return rig.accesses;
  });
});
