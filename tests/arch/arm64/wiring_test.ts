// The arm64 machine as every thread wires it, on any host: its memory map, the numbers KVM is
// given for its interrupt lines, and the devices a guest reaches through the MMIO bus.
import { deepEqual, equal, throws } from "../../assert.ts";
import { Bus } from "../../../src/bus/bus.ts";
import { Serial8250 } from "../../../src/devices/serial.ts";
import { arm64Wiring } from "../../../src/arch/arm64/wiring.ts";
import {
  GIC_ITS,
  gicRedistributors,
  memoryLayout,
  PCI_ECAM,
  PCI_IO_CPU_START,
  PCI_MMIO32,
  pciMmio64Window,
  RAM_START,
  UART,
} from "../../../src/arch/arm64/memory_map.ts";
import { MemoryLayoutError } from "../../../src/memory/regions.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

Deno.test("arm64 memory map: RAM from 2 GiB in one region, nothing overlaps, BARs above RAM", () => {
  const l = memoryLayout(256 * MiB);
  deepEqual(l.regions, [{ gpa: RAM_START, size: 256 * MiB, hostOffset: 0 }]);
  equal(l.ramEnd, RAM_START + 256 * MiB);
  const ranges = [
    { gpa: 0x0800_0000, size: 64 * 1024 },
    GIC_ITS,
    gicRedistributors(256),
    UART,
    { gpa: PCI_IO_CPU_START, size: 64 * 1024 },
    PCI_ECAM,
    PCI_MMIO32,
    { gpa: RAM_START, size: 256 * MiB },
  ].sort((a, b) => a.gpa - b.gpa);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    equal(prev.gpa + prev.size <= ranges[i].gpa, true, `0x${prev.gpa.toString(16)} overlaps`);
  }
  // 64-bit BARs: from the first GiB boundary past RAM, within a 40-bit IPA space.
  deepEqual(pciMmio64Window(l, 40), { gpa: 3 * GiB, size: 3 * GiB });
  equal(pciMmio64Window(memoryLayout(1024 * GiB), 40).size, 0);
  // Whole 64 KiB: what a 64 KiB-page host can hand to KVM.
  throws(() => memoryLayout(256 * MiB + 4096), /multiple of 64 KiB/);
  throws(() => memoryLayout(16 * MiB), MemoryLayoutError);
});

Deno.test("arm64 wiring: KVM_IRQ_LINE takes SPI n as type 1, INTID 32 + n; routes keep SPIs", () => {
  equal(arm64Wiring.irqLineArg(1), 0x0100_0021);
  equal(arm64Wiring.irqLineArg(7), 0x0100_0027);
  equal(arm64Wiring.msiDevid, true);
  equal(arm64Wiring.firstMsiGsi, 32);
  deepEqual(arm64Wiring.defaultGsiRoutes.slice(0, 2), [
    { gsi: 0, chip: 0, pin: 0 },
    { gsi: 1, chip: 0, pin: 1 },
  ]);
  equal(arm64Wiring.defaultGsiRoutes.length, 32);
  // INTA# of slots 1, 2, 3, 4 and INTB# of slot 1 share the four INTx SPIs by the swizzle.
  deepEqual([1, 2, 3, 4].map((s) => arm64Wiring.intxGsi(s)), [5, 6, 7, 4]);
  equal(arm64Wiring.intxGsi(1, 2), 6);
});

Deno.test("arm64 wiring: the 8250 in MMIO, the debug-exit port through the PCI I/O window", () => {
  const pio = new Bus("pio", 0x10000);
  const mmio = new Bus("mmio", 2 ** 52);
  const out: number[] = [];
  const irqs: Array<[number, boolean]> = [];
  const stops: Array<[number, string]> = [];
  arm64Wiring.registerDevices(pio, mmio, {
    serialState: Serial8250.createState(),
    irq: (gsi, high) => irqs.push([gsi, high]),
    consoleOut: (b) => out.push(b),
    stop: (status, why) => stops.push([status, why]),
  });
  // THR at the UART's base: the byte reaches the console.
  const uart = mmio.find(UART.gpa, 1)!;
  uart.device.write(UART.gpa - uart.base, new Uint8Array([0x41]));
  deepEqual(out, [0x41]);
  // IER with THRE enabled raises the UART's SPI (1).
  uart.device.write(UART.gpa + 1 - uart.base, new Uint8Array([0x02]));
  deepEqual(irqs.at(-1), [1, true]);
  // A byte to port 0x501 (Linux's outb, a store into the I/O window) ends the VM with it.
  const win = mmio.find(PCI_IO_CPU_START + 0x501, 1)!;
  win.device.write(PCI_IO_CPU_START + 0x501 - win.base, new Uint8Array([7]));
  deepEqual(stops, [[7, "debug-exit port"]]);
  // A port nothing decodes reads all-ones and takes writes without effect.
  const data = new Uint8Array(2);
  win.device.read(0x2000, data);
  deepEqual([...data], [0xff, 0xff]);
  win.device.write(0x2000, data);
  equal(stops.length, 1);
});

Deno.test("arm64 wiring: config space through ECAM only", () => {
  const pio = new Bus("pio", 0x10000);
  const mmio = new Bus("mmio", 2 ** 52);
  const dev = { read: () => {}, write: () => {} };
  arm64Wiring.registerConfigAccess(pio, mmio, { conf1: dev, ecam: dev });
  equal(mmio.find(PCI_ECAM.gpa, 4)?.device, dev);
  equal(pio.find(0xcf8, 4), undefined);
});
