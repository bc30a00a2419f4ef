/**
 * The PC as every thread of the machine sees it ({@link PlatformWiring}): the memory map, the
 * BAR windows and conf1/ECAM, the IOAPIC's INTx swizzle and default routes, and the legacy
 * ports. Nothing of the boot protocol, ACPI or CPUID: a vCPU or I/O Worker loads this module
 * graph, not the main thread's (./platform.ts).
 *
 * @module
 */
import type { PlatformWiring } from "../platform.ts";
import { SERIAL_COM1_IRQ } from "../../devices/serial.ts";
import { DEFAULT_GSI_ROUTES, FIRST_MSI_GSI, intxPin, isaLine } from "./interrupts.ts";
import { registerLegacyDevices } from "./legacy_devices.ts";
import { type MemoryLayout, memoryLayout } from "./memory_map.ts";
import { PCI_ECAM, PCI_IO, PCI_MMIO32, registerConfigAccess } from "./pci.ts";
import { x86Registers } from "./registers.ts";

export const x86_64Wiring: PlatformWiring<MemoryLayout> = {
  name: "x86_64",
  memoryLayout,
  pciIo: PCI_IO,
  pciMmio32: PCI_MMIO32,
  pciEcam: PCI_ECAM,
  defaultGsiRoutes: DEFAULT_GSI_ROUTES,
  firstMsiGsi: FIRST_MSI_GSI,
  intxGsi: intxPin,
  consoleIrq: (irq) => isaLine(irq, SERIAL_COM1_IRQ),
  // KVM_IRQ_LINE takes the GSI itself; MSI routes carry no device ID.
  irqLineArg: (gsi) => gsi,
  msiDevid: false,
  registers: x86Registers,
  registerConfigAccess,
  registerDevices: (pio, _mmio, wiring) => registerLegacyDevices(pio, wiring),
};
