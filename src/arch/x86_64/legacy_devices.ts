/**
 * The PC legacy devices a Linux guest needs, put on a port-I/O bus. Called once on every
 * thread that runs guest accesses (each vCPU Worker): device objects are per thread, while
 * state that threads must agree on (the UART's registers and input) lives in shared memory.
 */
import type { Bus } from "../../bus/bus.ts";
import type { DeviceWiring } from "../platform.ts";
import { isaLine } from "./interrupts.ts";
import { Serial8250, SERIAL_COM1_IRQ, SERIAL_COM1_PORT } from "../../devices/serial.ts";
import { I8042, I8042_DATA_PORT } from "./devices/i8042.ts";
import { DEBUG_EXIT_LENGTH, DEBUG_EXIT_PORT, DebugExit } from "../../devices/debug_exit.ts";
import { CMOS_INDEX_PORT, CmosRtc } from "./devices/cmos_rtc.ts";
import { PortSink } from "../../devices/sink.ts";
import { ACPI_PM_PORT, ACPI_PM_PORTS, AcpiPm } from "../../devices/acpi_pm.ts";

/** Ports Linux writes for I/O delays (POST code 0x80, the 0xed alternative): claimed, ignored. */
const POST_PORT = 0x80;
const ALT_DELAY_PORT = 0xed;

/** `w.irq` raises ISA lines (GSIs 0-15) on the in-kernel PIC/IOAPIC. */
export function registerLegacyDevices(pio: Bus, w: DeviceWiring): void {
  const serial = new Serial8250(w.serialState, isaLine(w.irq, SERIAL_COM1_IRQ), w.consoleOut);
  pio.register(SERIAL_COM1_PORT, 8, serial, "serial (ttyS0)");
  // Reset through the keyboard controller is how `reboot=k` guests end: the VM is done.
  pio.register(I8042_DATA_PORT, 5, new I8042(() => w.stop(0, "i8042 reset")), "i8042");
  pio.register(
    DEBUG_EXIT_PORT,
    DEBUG_EXIT_LENGTH,
    new DebugExit((s) => w.stop(s, "debug-exit port")),
    "debug-exit",
  );
  // `poweroff` (ACPI S5) and `reboot=a` (the FADT's reset register): the VM is done.
  pio.register(ACPI_PM_PORT, ACPI_PM_PORTS, new AcpiPm((why) => w.stop(0, why)), "acpi-pm");
  pio.register(CMOS_INDEX_PORT, 2, new CmosRtc(), "cmos-rtc");
  pio.register(POST_PORT, 1, new PortSink(), "post-code");
  pio.register(ALT_DELAY_PORT, 1, new PortSink(), "io-delay");
}
