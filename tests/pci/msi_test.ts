import { deepEqual, equal, throws } from "../assert.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import {
  MSI_CONTROL_64BIT,
  MSI_CONTROL_PER_VECTOR_MASK,
  MsiCapability,
  msiCapabilityBody,
  msiCapabilitySize,
  PCI_CAP_ID_MSI,
} from "../../src/pci/msi.ts";

function withMsi(vectors: number, address64: boolean, size?: number) {
  const cfg = new PciConfigSpace(PciConfigSpace.createState());
  const { body, writable } = msiCapabilityBody({ vectors, address64, size });
  const at = cfg.addCapability(PCI_CAP_ID_MSI, body, writable);
  return { cfg, at, msi: new MsiCapability(cfg, at) };
}

Deno.test("msi: capability sizes follow the 64-bit and per-vector-mask bits", () => {
  equal(msiCapabilitySize(0), 10);
  equal(msiCapabilitySize(MSI_CONTROL_64BIT), 14);
  equal(msiCapabilitySize(MSI_CONTROL_PER_VECTOR_MASK), 20);
  equal(msiCapabilitySize(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASK), 24);
});

Deno.test("msi: control says capable of N vectors, 64-bit, and never per-vector masking", () => {
  const { cfg, at } = withMsi(4, true, 24);
  equal(cfg.read(at, 1), PCI_CAP_ID_MSI);
  const control = cfg.read(at + 2, 2);
  equal((control >> 1) & 7, 2, "MMC = log2(4)");
  equal(control & MSI_CONTROL_64BIT, MSI_CONTROL_64BIT);
  equal(control & MSI_CONTROL_PER_VECTOR_MASK, 0);
  // A device's 24-byte capability keeps its size; the mask/pending words read 0, stay 0.
  cfg.write(at + 16, 4, 0xffffffff);
  equal(cfg.read(at + 16, 4), 0);
  // MMC is read-only: a guest cannot claim more vectors.
  cfg.write(at + 2, 2, 0xffff);
  equal((cfg.read(at + 2, 2) >> 1) & 7, 2);
});

Deno.test("msi: 64-bit messages carry the vector in the low data bits", () => {
  const { cfg, at, msi } = withMsi(4, true);
  cfg.write(at + 4, 4, 0xfee0_100f); // the low two bits are reserved (dword aligned)
  cfg.write(at + 8, 4, 0x1);
  cfg.write(at + 12, 2, 0x4061);
  equal(msi.enabled(), false);
  cfg.write(at + 2, 2, 0x0001 | (2 << 4)); // enable, MME = 4 vectors
  equal(msi.enabled(), true);
  equal(msi.vectors(), 4);
  deepEqual(msi.message(0), { addressLo: 0xfee0_100c, addressHi: 1, data: 0x4060 });
  deepEqual(msi.message(3), { addressLo: 0xfee0_100c, addressHi: 1, data: 0x4063 });
});

Deno.test("msi: an upper address dword of 2^21 or more keeps every bit of the address", () => {
  // As one number (hi * 2^32 + lo), 0xffff_fffe_fee0_100c would lose its low bits.
  const { cfg, at, msi } = withMsi(1, true);
  cfg.write(at + 4, 4, 0xfee0_100c);
  cfg.write(at + 8, 4, 0xffff_fffe);
  cfg.write(at + 12, 2, 0x41);
  cfg.write(at + 2, 2, 0x0001);
  deepEqual(msi.message(0), { addressLo: 0xfee0_100c, addressHi: 0xffff_fffe, data: 0x41 });
});

Deno.test("msi: 32-bit messages keep data at +8; a guest asking for more vectors gets the capable", () => {
  const { cfg, at, msi } = withMsi(2, false);
  cfg.write(at + 4, 4, 0xfee0_0000);
  cfg.write(at + 8, 2, 0x0031);
  cfg.write(at + 2, 2, 0x0001 | (5 << 4)); // MME = 32 vectors, capable of 2
  equal(msi.vectors(), 2);
  deepEqual(msi.message(1), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x0031 });
  deepEqual(msi.message(0), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x0030 });
});

Deno.test("msi: vector counts that are not powers of two up to 32 are refused", () => {
  for (const v of [0, 3, 64]) {
    throws(() => msiCapabilityBody({ vectors: v, address64: false }), /power of two/);
  }
});
