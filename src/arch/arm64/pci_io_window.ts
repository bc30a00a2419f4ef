/**
 * PCI I/O space on arm64: there are no I/O instructions, so the host bridge maps port space into
 * memory (the device tree's `ranges` say where) and Linux's inb/outb are loads and stores there.
 * This device takes those accesses and hands them to the port-I/O bus, where I/O BARs and the
 * debug-exit port live as on a PC: port N is at the window's base + N.
 *
 * @module
 */
import type { Bus } from "../../bus/bus.ts";
import type { BusDevice } from "../../bus/device.ts";

export class PciIoWindow implements BusDevice {
  constructor(private readonly ports: Bus) {}

  read(offset: number, data: Uint8Array): void {
    const e = this.ports.find(offset, data.length);
    // Nothing decodes the port: a floating bus reads all-ones, as on a PC.
    if (e === undefined) data.fill(0xff);
    else e.device.read(offset - e.base, data);
  }

  write(offset: number, data: Uint8Array): void {
    const e = this.ports.find(offset, data.length);
    e?.device.write(offset - e.base, data);
  }
}
