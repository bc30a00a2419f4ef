// Emulated MSI and MSI-X in a PciConfigSpace: a guest write of any width and alignment that
// covers Message Control reaches it (issue 11 item 10 is the passthrough side of this; here
// the emulated side is held to the same rule).
import { deepEqual, equal } from "../assert.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import { Msix, msixCapabilityBody, PCI_CAP_ID_MSIX, planMsix } from "../../src/pci/msix.ts";
import { RecordingVectors } from "../bus/recording_vectors.ts";
import { MsiCapability, msiCapabilityBody, PCI_CAP_ID_MSI } from "../../src/pci/msi.ts";

function withBoth() {
  const cfg = new PciConfigSpace(PciConfigSpace.createState());
  const msiBody = msiCapabilityBody({ vectors: 1, address64: true });
  const msiAt = cfg.addCapability(PCI_CAP_ID_MSI, msiBody.body, msiBody.writable);
  const x = msixCapabilityBody(2, 1, 0, 1, 0x800);
  const msixAt = cfg.addCapability(PCI_CAP_ID_MSIX, x.body, x.writable);
  const group = new RecordingVectors();
  const msix = new Msix(planMsix(2, msixAt), cfg, group);
  const signals = {
    get delivered() {
      return group.triggered.map(([v]) => v);
    },
  };
  return { cfg, msiAt, msixAt, msi: new MsiCapability(cfg, msiAt), msix, signals };
}

Deno.test("capability writes: a dword at the MSI-X capability's ID enables it and delivers", () => {
  const { cfg, msixAt, msix, signals } = withBoth();
  msix.tableWrite(0, Uint8Array.of(0, 0, 0xe0, 0xfe));
  msix.tableWrite(12, Uint8Array.of(0, 0, 0, 0)); // vector 0 unmasked
  cfg.write(msixAt + 2, 2, 0x8000 | 0x4000); // enabled, function masked
  equal(msix.trigger(0), true);
  deepEqual(signals.delivered, [], "held pending while the function is masked");
  // One dword at the ID: ID, next pointer (read-only), then Message Control, unmasked.
  cfg.write(msixAt, 4, (0x8000 << 16) | (cfg.read(msixAt, 2) & 0xffff));
  equal(msix.enabled(), true);
  equal(msix.functionMasked(), false);
  deepEqual(signals.delivered, [0], "the pending vector is delivered at once");
  // A word over the next pointer and Message Control's low byte leaves Enable (high byte).
  cfg.write(msixAt + 1, 2, 0);
  equal(msix.enabled(), true);
  cfg.write(msixAt + 3, 1, 0);
  equal(msix.enabled(), false);
});

Deno.test("capability writes: a dword at the MSI capability's ID enables it", () => {
  const { cfg, msiAt, msi } = withBoth();
  cfg.write(msiAt + 4, 4, 0xfee0_0000);
  cfg.write(msiAt + 12, 2, 0x41);
  cfg.write(msiAt, 4, (1 << 16) | cfg.read(msiAt, 2));
  equal(msi.enabled(), true);
  deepEqual(msi.message(0), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 });
  // A byte at the capability's second byte (next pointer) does not touch Message Control.
  cfg.write(msiAt + 1, 1, 0);
  equal(msi.enabled(), true);
  cfg.write(msiAt + 1, 2, 0);
  equal(msi.enabled(), false);
});
