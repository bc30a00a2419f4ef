// The PC's PCI addresses (src/arch/x86_64/pci.ts): the windows src/machine/pci_devices.ts plans
// BARs in (through the platform), and config space reachable at 0xCF8 and the ECAM.
import { deepEqual, equal } from "../../assert.ts";
import { Bus } from "../../../src/bus/bus.ts";
import type { BusDevice } from "../../../src/bus/device.ts";
import {
  PCI_ECAM,
  PCI_IO,
  PCI_MMIO32,
  registerConfigAccess,
} from "../../../src/arch/x86_64/pci.ts";
import { x86_64 } from "../../../src/arch/x86_64/platform.ts";
import { PCI_ECAM_SIZE, PCI_ECAM_START } from "../../../src/arch/x86_64/memory_map.ts";

Deno.test("x86 pci: the BAR windows are the ones the machine plans in", () => {
  deepEqual([x86_64.pciMmio32, x86_64.pciIo, x86_64.pciEcam], [PCI_MMIO32, PCI_IO, PCI_ECAM]);
  deepEqual(PCI_MMIO32, { gpa: 0xc000_0000, size: 0xfeb0_0000 - 0xc000_0000 });
  deepEqual(PCI_IO, { gpa: 0x1000, size: 0xf000 });
  deepEqual(PCI_ECAM, { gpa: PCI_ECAM_START, size: PCI_ECAM_SIZE });
});

Deno.test("x86 pci: conf1 answers at ports 0xCF8-0xCFF, the ECAM at its MMIO region", () => {
  const pio = new Bus("port I/O", 0x10000);
  const mmio = new Bus("MMIO", 2 ** 52);
  const conf1: BusDevice = { read: () => {}, write: () => {} };
  const ecam: BusDevice = { read: () => {}, write: () => {} };
  registerConfigAccess(pio, mmio, { conf1, ecam });
  const at = (bus: Bus, addr: number, len: number) => {
    const e = bus.find(addr, len);
    return e && { base: e.base, size: e.size, device: e.device };
  };
  deepEqual(at(pio, 0xcf8, 4), { base: 0xcf8, size: 8, device: conf1 });
  deepEqual(at(pio, 0xcff, 1), { base: 0xcf8, size: 8, device: conf1 });
  equal(pio.find(0xcf7, 1), undefined);
  equal(pio.find(0xd00, 1), undefined, "nothing past 0xCFF");
  deepEqual(at(mmio, PCI_ECAM_START + 0x8_0004, 4), {
    base: PCI_ECAM_START,
    size: PCI_ECAM_SIZE,
    device: ecam,
  });
  equal(mmio.find(PCI_ECAM_START + PCI_ECAM_SIZE, 1), undefined);
});
