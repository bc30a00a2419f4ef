/**
 * Minimal i8042 PS/2 controller, keyboard-less. It exists so that Linux's i8042 driver finds a
 * controller that passes its self-test, and so that the reboot paths that pulse the CPU reset
 * line through it (command 0xFE, or output port bit 0 via 0xD1) end the VM. No device sits
 * behind it and it raises no interrupts; boot Linux with i8042.noaux to skip the mouse probe.
 *
 * Registered as one device over ports 0x60-0x64: offset 0 is the data port, offset 4 the
 * status (read) / command (write) port, offsets 1-3 read 0xff and ignore writes.
 *
 * @example
 * ```ts
 * bus.register(I8042_DATA_PORT, 5, new I8042(() => vm.requestReset()));
 * ```
 */
import { type BusDevice } from "../../../bus/device.ts";

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;

const DATA = 0;
const STATUS_COMMAND = 4;

const STATUS_OBF = 0x01; // output buffer full: a reply waits at the data port

const CMD_READ_CTR = 0x20;
const CMD_WRITE_CTR = 0x60;
const CMD_AUX_TEST = 0xa9;
const CMD_SELF_TEST = 0xaa;
const CMD_KBD_TEST = 0xab;
const CMD_WRITE_OUTPUT_PORT = 0xd1;

const SELF_TEST_PASSED = 0x55;
const INTERFACE_TEST_PASSED = 0x00;
const OUTPUT_PORT_RESET = 0x01; // output port bit 0 drives the CPU reset line, active low

// Command byte as firmware leaves it: keyboard interrupt, system flag (POST passed), scancode
// translation.
const DEFAULT_CTR = 0x45;

// What the next data-port write means.
const PENDING_NONE = 0;
const PENDING_COMMAND_BYTE = 1;
const PENDING_OUTPUT_PORT = 2;

/** The controller; `onReset` runs when the guest pulses the reset line. */
export class I8042 implements BusDevice {
  #ctr = DEFAULT_CTR;
  #output = 0;
  #outputFull = false;
  #pending = PENDING_NONE;
  readonly #onReset: () => void;

  constructor(onReset: () => void) {
    this.#onReset = onReset;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (offset === DATA) {
      data[0] = this.#output;
      this.#outputFull = false;
    } else if (offset === STATUS_COMMAND) {
      // Input buffer never full: commands complete at once.
      data[0] = this.#outputFull ? STATUS_OBF : 0;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === DATA) this.#writeData(data[0]);
    else if (offset === STATUS_COMMAND) this.#command(data[0]);
  }

  #reply(byte: number): void {
    this.#output = byte;
    this.#outputFull = true;
  }

  #writeData(value: number): void {
    const pending = this.#pending;
    this.#pending = PENDING_NONE;
    if (pending === PENDING_COMMAND_BYTE) this.#ctr = value;
    else if (pending === PENDING_OUTPUT_PORT && (value & OUTPUT_PORT_RESET) === 0) this.#onReset();
    // Otherwise the byte is for the keyboard, and there is none.
  }

  #command(cmd: number): void {
    this.#pending = PENDING_NONE;
    switch (cmd) {
      case CMD_READ_CTR:
        return this.#reply(this.#ctr);
      case CMD_WRITE_CTR:
        this.#pending = PENDING_COMMAND_BYTE;
        return;
      case CMD_SELF_TEST:
        return this.#reply(SELF_TEST_PASSED);
      case CMD_AUX_TEST:
      case CMD_KBD_TEST:
        return this.#reply(INTERFACE_TEST_PASSED);
      case CMD_WRITE_OUTPUT_PORT:
        this.#pending = PENDING_OUTPUT_PORT;
        return;
      default:
        // 0xF0-0xFF pulse the output port bits whose command bit is 0; bit 0 is reset (0xFE).
        if ((cmd & 0xf0) === 0xf0 && (cmd & OUTPUT_PORT_RESET) === 0) this.#onReset();
        // 0xA7/0xA8/0xAD/0xAE enable or disable ports: nothing behind them, no reply.
    }
  }
}
