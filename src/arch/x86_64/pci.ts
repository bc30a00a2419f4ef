/**
 * How a PC's PCI bus is reached: config space through ports 0xCF8/0xCFC (conf1, what Linux tries
 * first) and through ECAM (what the MCFG table names, for the extended config space), and where
 * the BARs go below 4 GiB (the 32-bit MMIO hole up to the ECAM region; I/O ports above the
 * legacy range). The bus itself is generic (src/pci/bus.ts); these are the PC's addresses for it.
 *
 * @module
 */
import type { Bus } from "../../bus/bus.ts";
import type { BusDevice } from "../../bus/device.ts";
import { PCI_CONF1_ADDRESS_PORT, PCI_CONF1_PORTS } from "../../pci/bus.ts";
import type { GuestRange } from "../../memory/regions.ts";
import { MMIO_HOLE_START, PCI_ECAM_SIZE, PCI_ECAM_START } from "./memory_map.ts";

/** BARs go from the start of the 32-bit hole up to the ECAM region (then the IOAPIC). */
export const PCI_MMIO_START = MMIO_HOLE_START;
export const PCI_MMIO_END = PCI_ECAM_START;
/** Port I/O space for I/O BARs: everything above the ISA/legacy range. */
export const PCI_IO_START = 0x1000;
export const PCI_IO_END = 0x10000;

export const PCI_MMIO32: GuestRange = Object.freeze({
  gpa: PCI_MMIO_START,
  size: PCI_MMIO_END - PCI_MMIO_START,
});
export const PCI_IO: GuestRange = Object.freeze({
  gpa: PCI_IO_START,
  size: PCI_IO_END - PCI_IO_START,
});
export const PCI_ECAM: GuestRange = Object.freeze({ gpa: PCI_ECAM_START, size: PCI_ECAM_SIZE });

/** Put conf1 (ports 0xCF8-0xCFF) and ECAM on this thread's buses. */
export function registerConfigAccess(
  pio: Bus,
  mmio: Bus,
  access: { conf1: BusDevice; ecam: BusDevice },
): void {
  pio.register(PCI_CONF1_ADDRESS_PORT, PCI_CONF1_PORTS, access.conf1, "pci conf1");
  mmio.register(PCI_ECAM_START, PCI_ECAM_SIZE, access.ecam, "pci ecam");
}
