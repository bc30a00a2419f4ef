/**
 * denovmm's arm64 machine as every thread sees it ({@link PlatformWiring}): the memory map, PCI
 * through ECAM only, INTx on GIC SPIs, MSIs through the ITS by requester ID, the 8250 in MMIO and
 * the PCI I/O window that carries the debug-exit port. Nothing of the boot protocol (the device
 * tree, the Image loader): the main thread's ./platform.ts adds that.
 *
 * @module
 */
import type { DeviceWiring, PlatformWiring } from "../platform.ts";
import type { IrqLine } from "../../bus/interrupt.ts";
import { Serial8250 } from "../../devices/serial.ts";
import { DEBUG_EXIT_LENGTH, DEBUG_EXIT_PORT, DebugExit } from "../../devices/debug_exit.ts";
import { KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI } from "../../../ffi/kvm_arm64.ts";
import { FIRST_MSI_GSI, intxSpi, spiIntid, UART_SPI } from "./interrupts.ts";
import {
  type Arm64Layout,
  memoryLayout,
  PCI_ECAM,
  PCI_IO,
  PCI_IO_CPU_SIZE,
  PCI_IO_CPU_START,
  PCI_MMIO32,
  UART,
} from "./memory_map.ts";
import { PciIoWindow } from "./pci_io_window.ts";
import { arm64Registers } from "./registers.ts";

/** The 8250's registers are bytes, one apart (the device tree says reg-shift 0). */
const UART_REGISTERS = 8;

/** The UART's interrupt: a level on its SPI. */
const uartLine = (irq: DeviceWiring["irq"]): IrqLine => ({
  setLevel: (high) => irq(UART_SPI, high),
});

export const arm64Wiring: PlatformWiring<Arm64Layout> = {
  name: "arm64",
  memoryLayout,
  pciIo: PCI_IO,
  pciMmio32: PCI_MMIO32,
  pciEcam: PCI_ECAM,
  // KVM's default routing sends GSI n to SPI n; a KVM_SET_GSI_ROUTING replaces it, so the SPIs
  // that irqfds raise (the INTx lines of passed-through functions) are repeated below MSIs'.
  defaultGsiRoutes: Object.freeze(
    Array.from({ length: FIRST_MSI_GSI }, (_, gsi) => Object.freeze({ gsi, chip: 0, pin: gsi })),
  ),
  firstMsiGsi: FIRST_MSI_GSI,
  intxGsi: intxSpi,
  consoleIrq: uartLine,
  irqLineArg: (gsi) => (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | spiIntid(gsi),
  msiDevid: true,
  registers: arm64Registers,
  registerConfigAccess(_pio, mmio, access) {
    mmio.register(PCI_ECAM.gpa, PCI_ECAM.size, access.ecam, "pci ecam");
  },
  registerDevices(pio, mmio, w) {
    const serial = new Serial8250(w.serialState, uartLine(w.irq), w.consoleOut);
    mmio.register(UART.gpa, UART_REGISTERS, serial, "serial (ttyS0)");
    mmio.register(PCI_IO_CPU_START, PCI_IO_CPU_SIZE, new PciIoWindow(pio), "pci i/o window");
    pio.register(
      DEBUG_EXIT_PORT,
      DEBUG_EXIT_LENGTH,
      new DebugExit((s) => w.stop(s, "debug-exit port")),
      "debug-exit",
    );
  },
};
