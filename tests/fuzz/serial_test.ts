// Hostile-guest fuzzing of the 8250 UART: register accesses of every width at and past its 8
// ports, DLAB and loopback games, host input floods, and Linux's own set-up sequence.
import { equal, ok } from "../assert.ts";
import { Serial8250, SERIAL_RX_CAPACITY } from "../../src/devices/serial.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const WIDTHS = [1, 1, 1, 2, 4, 8];
// What Linux's 8250 driver writes at probe and open (offset, value).
const LINUX_SETUP: Array<[number, number]> = [
  [3, 0x80],
  [0, 0x01],
  [1, 0x00],
  [3, 0x03],
  [2, 0xc7],
  [4, 0x0b],
  [1, 0x0f],
  [4, 0x1b],
  [4, 0x0b],
];

Deno.test("fuzz serial: no access escapes, TX bytes are exactly the THR writes, IRQ edges alternate", () => {
  const stats = new FuzzStats("8250 serial");
  fuzz(stats, ops(5), (list) => {
    let level = false;
    const irq = {
      setLevel: (high: boolean) => {
        ok(high !== level, "the line is only driven on a change");
        level = high;
      },
    };
    const sent: number[] = [];
    const uart = new Serial8250(Serial8250.createState(), irq, (b) => sent.push(b));
    let lcr = 0, mcr = 0;
    const want: number[] = [];
    let accesses = 0;
    const write = (offset: number, data: Uint8Array) => {
      for (let i = 0; i < data.length; i++) {
        const at = offset + i;
        if (at === 0 && (lcr & 0x80) === 0 && (mcr & 0x10) === 0) want.push(data[i]);
        if (at === 3) lcr = data[i];
        if (at === 4) mcr = data[i] & 0x1f;
      }
      uart.write(offset, data);
      accesses++;
    };
    for (const [kind, a, b, c] of list) {
      if (kind === 0 || kind === 1) {
        write(a % 10, leBytes(pick(WIDTHS, b), c, b));
      } else if (kind === 2) {
        const d = new Uint8Array(pick(WIDTHS, b));
        uart.read(a % 10, d);
        accesses++;
      } else if (kind === 3) {
        const n = uart.pushInput(new Uint8Array(b % 5000).fill(c & 0xff));
        ok(n >= 0 && n <= b % 5000);
      } else {
        for (const [offset, value] of LINUX_SETUP) write(offset, Uint8Array.of(value));
      }
      const space = uart.rxSpace();
      ok(space >= 0 && space <= SERIAL_RX_CAPACITY);
    }
    // Drain with the receive interrupt on: every byte leaves, then RBR reads 0.
    write(3, Uint8Array.of(0x03));
    write(1, Uint8Array.of(0x01));
    const one = new Uint8Array(1);
    for (let i = 0; i <= SERIAL_RX_CAPACITY && uart.rxSpace() < SERIAL_RX_CAPACITY; i++) {
      uart.read(0, one); // not counted: the harness's own clean-up
    }
    equal(uart.rxSpace(), SERIAL_RX_CAPACITY);
    equal(sent.join(), want.join(), "bytes to the console");
    return accesses;
  });
});
