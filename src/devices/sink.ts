/**
 * A device that ignores writes and reads as zero. Linux pokes legacy ports that have no
 * function on a VM: port 0x80 (the POST-code port, written by `io_delay` for a short bus
 * delay) and 0xed (the alternative delay port). Claiming them keeps those exits cheap and off
 * the unclaimed-access log, where a real stray access would otherwise be lost among them.
 *
 * @example
 * ```ts
 * bus.register(0x80, 1, new PortSink());
 * bus.register(0xed, 1, new PortSink());
 * ```
 */
import { type BusDevice } from "../bus/device.ts";

export class PortSink implements BusDevice {
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(_offset: number, _data: Uint8Array): void {}
}
