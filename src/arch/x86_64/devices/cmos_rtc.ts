/**
 * MC146818 CMOS RTC at ports 0x70 (index; bit 7 masks NMI, which we ignore) and 0x71 (data).
 * The clock registers read the host's current UTC time, in BCD and 24-hour mode; the guest
 * cannot set it. Every other index is 128 bytes of battery-backed RAM the guest may use.
 *
 * @example
 * ```ts
 * bus.register(CMOS_INDEX_PORT, 2, new CmosRtc());
 * ```
 */
import { type BusDevice } from "../../../bus/device.ts";

export const CMOS_INDEX_PORT = 0x70;

const INDEX = 0;
const DATA = 1;

// Register indexes (MC146818 datasheet, address map; century from the PC/ACPI convention).
const SECONDS = 0x00;
const MINUTES = 0x02;
const HOURS = 0x04;
const DAY_OF_WEEK = 0x06;
const DAY_OF_MONTH = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const CENTURY = 0x32;
/** Where the century is, for the FADT's CENTURY field. */
export const CMOS_CENTURY_INDEX = CENTURY;
/** The ISA IRQ a PC's clock has (ours raises none: no alarm or periodic interrupt). */
export const CMOS_RTC_IRQ = 8;

const REG_A_VALUE = 0x26; // UIP clear; 32.768 kHz divider, 1024 Hz periodic rate
const REG_B_VALUE = 0x02; // 24-hour mode, DM=0 (BCD), no interrupts enabled
const REG_C_VALUE = 0x00; // no interrupt flags
const REG_D_VALUE = 0x80; // VRT: RAM and time are valid

function bcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

export class CmosRtc implements BusDevice {
  #index = 0;
  readonly #ram = new Uint8Array(128);
  readonly #now: () => Date;

  /** `now` is the clock source; tests pass a fixed Date. */
  constructor(now: () => Date = () => new Date()) {
    this.#now = now;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (offset === INDEX) data[0] = this.#index;
    else if (offset === DATA) data[0] = this.#readRegister(this.#index);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === INDEX) this.#index = data[0] & 0x7f;
    else if (offset === DATA && !this.#isClockRegister(this.#index)) {
      this.#ram[this.#index] = data[0];
    }
  }

  /** Time and status registers come from the host clock; guest writes to them are dropped. */
  #isClockRegister(index: number): boolean {
    return index === SECONDS || index === MINUTES || index === HOURS ||
      (index >= DAY_OF_WEEK && index <= REG_D) || index === CENTURY;
  }

  #readRegister(index: number): number {
    switch (index) {
      case REG_A:
        return REG_A_VALUE;
      case REG_B:
        return REG_B_VALUE;
      case REG_C:
        return REG_C_VALUE;
      case REG_D:
        return REG_D_VALUE;
    }
    if (!this.#isClockRegister(index)) return this.#ram[index];
    const t = this.#now();
    switch (index) {
      case SECONDS:
        return bcd(t.getUTCSeconds());
      case MINUTES:
        return bcd(t.getUTCMinutes());
      case HOURS:
        return bcd(t.getUTCHours());
      case DAY_OF_WEEK:
        return bcd(t.getUTCDay() + 1); // 1 = Sunday
      case DAY_OF_MONTH:
        return bcd(t.getUTCDate());
      case MONTH:
        return bcd(t.getUTCMonth() + 1);
      case YEAR:
        return bcd(t.getUTCFullYear() % 100);
      default: // CENTURY
        return bcd(Math.floor(t.getUTCFullYear() / 100));
    }
  }
}
