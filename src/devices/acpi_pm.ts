/**
 * The hardware-reduced ACPI sleep and reset registers (ACPI 6.5 §4.8.3.7 and §4.8.3.6), three
 * byte-wide I/O ports the FADT names: how `poweroff` and `reboot=a` end the VM.
 *
 * Linux powers off by writing SLP_TYPx (the first value of the DSDT's \_S5 package) and SLP_EN
 * to the sleep control register, after clearing WAK_STS in the sleep status register; then it
 * waits for the machine to go. A reset is RESET_VALUE written to the reset register. Both end
 * the VM with status 0, as a reset through the i8042 does: the guest chose to stop.
 *
 * @example
 * ```ts
 * pio.register(ACPI_PM_PORT, ACPI_PM_PORTS, new AcpiPm((why) => vm.stop(0, why)), "acpi-pm");
 * ```
 */
import type { BusDevice } from "../bus/device.ts";

/** First of the three ports; 0x600 is free on our PC (QEMU's q35 puts its PM block there too). */
export const ACPI_PM_PORT = 0x600;
export const ACPI_PM_PORTS = 3;
export const SLEEP_CONTROL_OFFSET = 0;
export const SLEEP_STATUS_OFFSET = 1;
export const RESET_OFFSET = 2;
/** What the reset register takes to reset (any value would do; the FADT says which). */
export const RESET_VALUE = 0x01;
/** The SLP_TYP the DSDT's \_S5 names: soft off. Other sleep states are not offered. */
export const SLP_TYP_S5 = 5;

// Sleep control register bits (§4.8.3.7).
const SLP_EN = 1 << 5;
const SLP_TYP_SHIFT = 2;
const SLP_TYP_MASK = 0x7;

export class AcpiPm implements BusDevice {
  readonly #end: (why: string) => void;

  /** `end` is called with what the guest asked for ("ACPI power off", "ACPI reset"). */
  constructor(end: (why: string) => void) {
    this.#end = end;
  }

  /** Nothing to report: WAK_STS never sets, as the machine never wakes from a sleep state. */
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(offset: number, data: Uint8Array): void {
    // Only byte accesses are defined; a wider one is taken by its first byte's register.
    const value = data[0];
    if (offset === SLEEP_CONTROL_OFFSET) {
      const type = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
      if ((value & SLP_EN) !== 0 && type === SLP_TYP_S5) this.#end("ACPI power off");
    } else if (offset === RESET_OFFSET && value === RESET_VALUE) {
      this.#end("ACPI reset");
    }
  }
}
