import { deepEqual, doesNotThrow, equal, ok } from "../assert.ts";
import type { IrqLine } from "../../src/bus/interrupt.ts";
import { Serial8250, SERIAL_RX_CAPACITY } from "../../src/devices/serial.ts";

const RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

/** An IRQ line that records every setLevel call. */
class RecordingIrq implements IrqLine {
  calls: boolean[] = [];
  get level(): boolean {
    return this.calls.at(-1) ?? false;
  }
  setLevel(high: boolean): void {
    this.calls.push(high);
  }
}

function uart(state = Serial8250.createState()) {
  const irq = new RecordingIrq();
  const out: number[] = [];
  const dev = new Serial8250(state, irq, (b) => out.push(b));
  const rd = (offset: number) => {
    const d = new Uint8Array(1);
    dev.read(offset, d);
    return d[0];
  };
  const wr = (offset: number, value: number) => dev.write(offset, Uint8Array.of(value));
  return { dev, irq, out, rd, wr, state };
}

Deno.test("serial: DLAB switches offsets 0/1 to the divisor latch and back", () => {
  const { rd, wr, out } = uart();
  wr(IER, 0x05);
  wr(LCR, 0x83); // DLAB + 8N1
  wr(RBR_THR, 0x01);
  wr(IER, 0x00);
  equal(rd(RBR_THR), 0x01);
  equal(rd(IER), 0x00);
  deepEqual(out, [], "a DLL write is not transmitted");
  wr(LCR, 0x03);
  equal(rd(LCR), 0x03);
  equal(rd(IER), 0x05, "IER kept while the latch was visible");
});

Deno.test("serial: a THR write reaches the sink at once and THRE/TEMT stay set", () => {
  const { rd, wr, out } = uart();
  wr(RBR_THR, 0x41);
  wr(RBR_THR, 0x42);
  deepEqual(out, [0x41, 0x42]);
  equal(rd(LSR) & 0x60, 0x60);
});

Deno.test("serial: enabling ETBEI raises the line, reading IIR reports THRE and drops it", () => {
  const { rd, wr, irq } = uart();
  wr(IER, 0x02);
  deepEqual(irq.calls, [true]);
  equal(rd(IIR_FCR), 0x02);
  deepEqual(irq.calls, [true, false]);
  equal(rd(IIR_FCR), 0x01, "no interrupt pending after the read");
  equal(irq.calls.length, 2, "setLevel only on changes");
});

Deno.test("serial: a THR write re-arms THRE, so a driver writing per interrupt never stalls", () => {
  const { rd, wr, irq } = uart();
  wr(IER, 0x02);
  rd(IIR_FCR);
  equal(irq.level, false);
  wr(RBR_THR, 0x61);
  equal(irq.level, true);
  equal(rd(IIR_FCR), 0x02);
});

Deno.test("serial: re-enabling ETBEI raises THRE again (Linux's UART_BUG_THRE probe)", () => {
  const { rd, wr } = uart();
  wr(IER, 0x02);
  equal(rd(IIR_FCR), 0x02);
  wr(IER, 0x00);
  wr(IER, 0x02);
  equal(rd(IIR_FCR), 0x02);
});

Deno.test("serial: IER bits 4-7 read back as zero", () => {
  const { rd, wr } = uart();
  wr(IER, 0xff);
  equal(rd(IER), 0x0f);
});

Deno.test("serial: pushInput with ERBFI raises RX data available, draining drops the line", () => {
  const { dev, rd, wr, irq } = uart();
  wr(IER, 0x01);
  deepEqual(irq.calls, []);
  equal(rd(LSR) & 0x01, 0, "DR clear while empty");
  equal(dev.pushInput(Uint8Array.of(0x68, 0x69)), 2);
  deepEqual(irq.calls, [true]);
  equal(rd(IIR_FCR), 0x04);
  equal(rd(LSR) & 0x01, 0x01, "DR set");
  equal(rd(RBR_THR), 0x68);
  equal(irq.level, true, "one byte still waits");
  equal(rd(RBR_THR), 0x69);
  deepEqual(irq.calls, [true, false]);
  equal(rd(LSR) & 0x01, 0);
  equal(rd(IIR_FCR), 0x01);
});

Deno.test("serial: input is held while the guest has RX interrupts off, and kept whole", () => {
  const { dev, rd, wr, irq } = uart();
  dev.pushInput(Uint8Array.of(1, 2));
  equal(rd(LSR) & 0x01, 0, "DR stays clear until the driver listens");
  equal(rd(RBR_THR), 0, "Linux's start-up RBR reads do not eat held input");
  deepEqual(irq.calls, []);
  wr(IER, 0x01);
  equal(rd(LSR) & 0x01, 0x01);
  deepEqual([rd(RBR_THR), rd(RBR_THR)], [1, 2]);
});

Deno.test("serial: RX data outranks THRE in IIR", () => {
  const { dev, rd, wr } = uart();
  wr(IER, 0x03);
  dev.pushInput(Uint8Array.of(7));
  equal(rd(IIR_FCR), 0x04);
  rd(RBR_THR);
  equal(rd(IIR_FCR), 0x02, "THRE still pending: reading IIR did not report it earlier");
});

Deno.test("serial: FIFO enable is reported in IIR bits 6-7", () => {
  const { rd, wr } = uart();
  equal(rd(IIR_FCR), 0x01);
  wr(IIR_FCR, 0xc7);
  equal(rd(IIR_FCR), 0xc1);
  wr(IER, 0x02);
  equal(rd(IIR_FCR), 0xc2);
  wr(IIR_FCR, 0x00);
  equal(rd(IIR_FCR), 0x01);
});

Deno.test("serial: loopback returns THR on RBR and wires MCR to MSR", () => {
  const { dev, rd, wr, out } = uart();
  equal(rd(MSR) & 0xf0, 0xb0, "DCD|DSR|CTS outside loopback");
  wr(MCR, 0x10 | 0x0a); // LOOP | OUT2 | RTS, as Linux's autoconfig probes
  equal(rd(MSR) & 0xf0, 0x90, "RTS→CTS, OUT2→DCD");
  wr(RBR_THR, 0x5a);
  deepEqual(out, [], "nothing leaves the chip in loopback");
  equal(rd(LSR) & 0x01, 0x01);
  equal(rd(RBR_THR), 0x5a);
  wr(MCR, 0x10 | 0x05); // DTR | OUT1
  equal(rd(MSR) & 0xf0, 0x60, "DTR→DSR, OUT1→RI");
  wr(MCR, 0x00);
  wr(RBR_THR, 0x5b);
  deepEqual(out, [0x5b]);
  wr(IER, 0x01);
  dev.pushInput(Uint8Array.of(1));
  equal(rd(RBR_THR), 1);
});

Deno.test("serial: MCR changes in loopback raise a modem status interrupt, MSR read clears", () => {
  const { rd, wr, irq } = uart();
  wr(MCR, 0x10);
  rd(MSR);
  wr(IER, 0x08);
  equal(irq.level, false);
  wr(MCR, 0x12); // RTS → CTS changes
  equal(irq.level, true);
  equal(rd(IIR_FCR), 0x00);
  equal(rd(MSR), 0x10 | 0x01, "CTS with DCTS");
  equal(irq.level, false);
  equal(rd(MSR), 0x10);
});

Deno.test("serial: loopback overrun sets LSR.OE, raises line status first, LSR read clears", () => {
  const { dev, rd, wr } = uart();
  dev.pushInput(new Uint8Array(SERIAL_RX_CAPACITY));
  wr(IER, 0x07);
  wr(MCR, 0x10);
  wr(RBR_THR, 0x33);
  equal(rd(IIR_FCR), 0x06, "line status outranks RX data and THRE");
  equal(rd(LSR) & 0x02, 0x02);
  equal(rd(LSR) & 0x02, 0);
  equal(rd(IIR_FCR), 0x04);
});

Deno.test("serial: the scratch register holds what was written", () => {
  const { rd, wr } = uart();
  wr(SCR, 0xa5);
  equal(rd(SCR), 0xa5);
});

Deno.test("serial: LSR writes are ignored", () => {
  const { rd, wr } = uart();
  wr(LSR, 0x00);
  equal(rd(LSR), 0x60);
});

Deno.test("serial: pushInput returns a partial count when the ring fills, rxSpace tracks it", () => {
  const { dev, rd, wr } = uart();
  wr(IER, 0x01);
  equal(dev.rxSpace(), SERIAL_RX_CAPACITY);
  equal(dev.pushInput(new Uint8Array(SERIAL_RX_CAPACITY - 3).fill(0x30)), SERIAL_RX_CAPACITY - 3);
  equal(dev.rxSpace(), 3);
  equal(dev.pushInput(Uint8Array.of(1, 2, 3, 4, 5)), 3);
  equal(dev.rxSpace(), 0);
  equal(dev.pushInput(Uint8Array.of(9)), 0);
  for (let i = 0; i < SERIAL_RX_CAPACITY - 3; i++) rd(RBR_THR);
  deepEqual([rd(RBR_THR), rd(RBR_THR), rd(RBR_THR)], [1, 2, 3], "order kept across the wrap");
  equal(dev.rxSpace(), SERIAL_RX_CAPACITY);
  equal(dev.pushInput(Uint8Array.of(4, 5)), 2, "the rest fits once drained");
  deepEqual([rd(RBR_THR), rd(RBR_THR)], [4, 5]);
});

Deno.test("serial: two instances over one state share registers and the IRQ level", () => {
  const a = uart();
  const b = uart(a.state);
  a.wr(SCR, 0x77);
  equal(b.rd(SCR), 0x77);
  b.wr(IER, 0x01);
  a.dev.pushInput(Uint8Array.of(0x21));
  deepEqual(a.irq.calls, [true], "the thread that raised it drives its line");
  equal(b.rd(RBR_THR), 0x21);
  deepEqual(b.irq.calls, [false], "the thread that cleared it drives its line");
  deepEqual(a.irq.calls, [true]);
});

Deno.test("serial: every offset and width reads and writes without throwing", () => {
  const { dev } = uart();
  dev.pushInput(Uint8Array.of(1, 2, 3));
  for (const width of [1, 2, 4, 8]) {
    for (let offset = 0; offset < 8; offset++) {
      const data = new Uint8Array(width);
      doesNotThrow(() => dev.read(offset, data));
    }
  }
  const wide = new Uint8Array(4);
  dev.read(6, wide);
  equal(wide[2], 0xff, "bytes past the 8 registers float high");
  equal(wide[3], 0xff);
  doesNotThrow(() => dev.write(5, new Uint8Array(8)));
});

Deno.test("serial: a Worker pushing input while this thread drains loses and reorders nothing", async () => {
  const total = 500_000;
  const state = Serial8250.createState();
  const serialUrl = new URL("../../src/devices/serial.ts", import.meta.url).href;
  const source = `
    import { Serial8250 } from "${serialUrl}";
    self.onmessage = (e) => {
      const { state, total } = e.data;
      const levels = [];
      const uart = new Serial8250(state, { setLevel: (h) => levels.push(h) }, () => {});
      const chunk = new Uint8Array(97);
      let sent = 0;
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        for (let i = 0; i < n; i++) chunk[i] = (sent + i) & 0xff;
        sent += uart.pushInput(chunk.subarray(0, n));
      }
      self.postMessage({ raised: levels.filter((h) => h).length });
    };
  `;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const done = new Promise<{ raised: number }>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(e);
  });
  const { rd, wr, irq } = uart(state);
  wr(IER, 0x01);
  worker.postMessage({ state, total });
  let received = 0;
  let mismatches = 0;
  const deadline = Date.now() + 20_000;
  while (received < total && Date.now() < deadline) {
    if ((rd(LSR) & 0x01) === 0) continue;
    if (rd(RBR_THR) !== (received & 0xff)) mismatches++;
    received++;
  }
  const { raised } = await done;
  worker.terminate();
  URL.revokeObjectURL(url);
  equal(received, total);
  equal(mismatches, 0);
  equal(rd(IIR_FCR), 0x01, "nothing left pending");
  equal(irq.calls.filter((h) => !h).length, raised, "every raise from the worker was lowered here");
  ok(raised > 0);
});
