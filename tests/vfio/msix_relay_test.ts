import { equal, ok } from "../assert.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import {
  Msix,
  MSIX_CONTROL_ENABLE,
  msixCapabilityBody,
  PCI_CAP_ID_MSIX,
  planMsix,
} from "../../src/pci/msix.ts";
import type { MsiVectorGroup, MsiVectorsPlan } from "../../src/bus/interrupt.ts";
import { RecordingVectors } from "../bus/recording_vectors.ts";
import { msixRelays, type RelayPlan } from "../../src/vfio/msix_relay.ts";

/** A passed-through device's MSI-X as the plan has it: shadow config, table state, eventfds;
 * and the guest's view of the same table, to enable, program and mask vectors. */
function passthrough(vectors: number) {
  const shadow = PciConfigSpace.createState();
  const cfg = new PciConfigSpace(shadow);
  cfg.addBar(1, { kind: "mem32", size: 0x1000 });
  const { body, writable } = msixCapabilityBody(vectors, 1, 0, 1, 0x800);
  const cap = cfg.addCapability(PCI_CAP_ID_MSIX, body, writable);
  const irq = Array.from({ length: vectors }, () => EventFd.create());
  const device = Array.from({ length: vectors }, () => EventFd.create());
  const plan: RelayPlan = {
    shadow,
    msix: {
      ...planMsix(vectors, cap),
      deviceCapOffset: cap,
      tableBar: 1,
      tableOffset: 0,
      pbaBar: 1,
      pbaOffset: 0x800,
    },
    interrupts: {
      msix: {
        deviceFds: device.map((e) => e.fd),
        vectors: {
          irqFds: irq.map((e) => e.fd),
          routes: new SharedArrayBuffer(4),
          name: "t",
          devid: 8,
        },
      },
      modes: new SharedArrayBuffer(20),
    },
  };
  /** The machine's side: a vector group whose trigger writes the vector's irqfd. */
  const attach = (vp: MsiVectorsPlan): MsiVectorGroup => ({
    trigger: (v) => new EventFd(vp.irqFds[v]).signal(),
    route: () => true,
    release: () => {},
  });
  const guest = new Msix(plan.msix!, cfg, new RecordingVectors());
  const w32 = (offset: number, value: number) => {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, value, true);
    guest.tableWrite(offset, d);
  };
  const enable = () => {
    cfg.write(cap + 2, 2, MSIX_CONTROL_ENABLE);
    guest.controlChanged();
  };
  const program = (v: number, masked: boolean) => {
    w32(16 * v, 0xfee0_0000);
    w32(16 * v + 4, 0);
    w32(16 * v + 8, 0x40 + v);
    w32(16 * v + 12, masked ? 1 : 0);
  };
  const close = () => [...irq, ...device].forEach((e) => e.close());
  return { plan, guest, irq, device, enable, program, close, attach };
}

Deno.test("msix relay: one fd per vector, the device's eventfd; none without MSI-X", () => {
  const p = passthrough(3);
  try {
    const relays = msixRelays([p.plan, { ...p.plan, msix: undefined }], p.attach);
    equal(relays.length, 3);
    relays.forEach((r, v) => equal(r.fd, p.plan.interrupts.msix!.deviceFds[v]));
  } finally {
    p.close();
  }
});

Deno.test("msix relay: the device's signal reaches the vector's irqfd while the guest has it unmasked", () => {
  const p = passthrough(2);
  try {
    p.enable();
    p.program(0, false);
    p.program(1, false);
    const relays = msixRelays([p.plan], p.attach);
    p.device[1].signal();
    relays[1].onReadable();
    equal(p.irq[1].drain(), 1, "vector 1 signalled");
    equal(p.irq[0].drain(), 0, "vector 0 left alone");
    equal(p.device[1].drain(), 0, "the device's eventfd was drained");
    // Readable with nothing counted (a spurious wake-up): nothing is raised.
    relays[0].onReadable();
    equal(p.irq[0].drain(), 0);
  } finally {
    p.close();
  }
});

Deno.test("msix relay: a masked vector's signal stays pending in the PBA, not raised", () => {
  const p = passthrough(2);
  try {
    p.enable();
    p.program(0, true);
    const relays = msixRelays([p.plan], p.attach);
    p.device[0].signal();
    relays[0].onReadable();
    equal(p.irq[0].drain(), 0, "not raised while masked");
    ok(p.guest.pending(0), "pending");
    equal(p.device[0].drain(), 0, "the device's eventfd was drained");
  } finally {
    p.close();
  }
});
