/**
 * 8250/16550A UART (COM1: ports 0x3f8-0x3ff, IRQ 4), enough for Linux's 8250 driver as console
 * and tty. Register names and rules follow the TI/National PC16550D datasheet.
 *
 * Several threads touch one UART: every vCPU Worker runs the guest's register accesses and the
 * main thread pushes stdin bytes. All state therefore lives in a SharedArrayBuffer and every
 * operation holds a spinlock kept in that buffer; each thread builds its own `Serial8250` over
 * the same state, with its own IRQ line and output sink.
 *
 * Transmission is instant: a THR write hands the byte to the sink at once, so THRE and TEMT
 * are always set. Received bytes wait in a 4 KiB ring: the guest sees a 16550 FIFO, but
 * pasted or piped input is held rather than dropped.
 *
 * @example
 * ```ts
 * const state = Serial8250.createState();
 * const uart = new Serial8250(state, irq, (b) => out.push(b));
 * bus.register(0x3f8, 8, uart);
 * uart.pushInput(new TextEncoder().encode("root\n"));
 * ```
 */
import type { BusDevice } from "../bus/device.ts";
import type { IrqLine } from "../bus/interrupt.ts";
import { spinLock, spinUnlock } from "../spin_lock.ts";

/** COM1 base port and its ISA IRQ, the PC standard. */
export const SERIAL_COM1_PORT = 0x3f8;
export const SERIAL_COM1_IRQ = 4;
/** Bytes of received input buffered before `pushInput` reports a partial count. */
export const SERIAL_RX_CAPACITY = 4096;

// Register offsets (datasheet Table 2). DLAB (LCR bit 7) turns offsets 0/1 into DLL/DLM.
const RBR_THR = 0;
const IER = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const IER_ERBFI = 0x01; // received data available
const IER_ETBEI = 0x02; // transmitter holding register empty
const IER_ELSI = 0x04; // receiver line status
const IER_EDSSI = 0x08; // modem status

// IIR interrupt IDs, highest priority first (datasheet Table 4).
const IIR_NONE = 0x01;
const IIR_LINE_STATUS = 0x06;
const IIR_RX_DATA = 0x04;
const IIR_THR_EMPTY = 0x02;
const IIR_MODEM_STATUS = 0x00;
const IIR_FIFOS_ENABLED = 0xc0;

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;

// Int32 slots at the start of the shared state; the RX ring bytes follow.
const S_LOCK = 0;
const S_IER = 1;
const S_LCR = 2;
const S_MCR = 3;
const S_SCR = 4;
const S_DLL = 5;
const S_DLM = 6;
const S_FIFO_ENABLED = 7;
const S_THRE_PENDING = 8; // THRE interrupt latched until IIR reports it or THR is written
const S_LSR_ERRORS = 9; // OE, cleared by reading LSR
const S_MSR_DELTAS = 10; // DCTS/DDSR/TERI/DDCD, cleared by reading MSR
const S_IRQ_LEVEL = 11;
const S_RX_HEAD = 12;
const S_RX_COUNT = 13;
const HEADER_BYTES = 16 * 4;
const STATE_BYTES = HEADER_BYTES + SERIAL_RX_CAPACITY;

/** What the modem inputs read as: a connected, ready line, or MCR wired back in loopback. */
function modemLines(mcr: number): number {
  if ((mcr & MCR_LOOP) === 0) return MSR_DCD | MSR_DSR | MSR_CTS;
  // Datasheet, MCR bit 4: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
  return ((mcr & 0x01) ? MSR_DSR : 0) | ((mcr & 0x02) ? MSR_CTS : 0) |
    ((mcr & 0x04) ? MSR_RI : 0) | ((mcr & 0x08) ? MSR_DCD : 0);
}

/** A 16550A over shared state; see the module doc. */
export class Serial8250 implements BusDevice {
  readonly #s: Int32Array;
  readonly #rx: Uint8Array;
  readonly #irq: IrqLine;
  readonly #sink: (byte: number) => void;

  /** Allocate the shared state of one UART, reset as after power-on (9600 baud divisor). */
  static createState(): SharedArrayBuffer {
    const state = new SharedArrayBuffer(STATE_BYTES);
    new Int32Array(state, 0, HEADER_BYTES / 4)[S_DLL] = 12; // 115200 / 12 = 9600 baud
    return state;
  }

  constructor(state: SharedArrayBuffer, irq: IrqLine, sink: (byte: number) => void) {
    if (state.byteLength !== STATE_BYTES) {
      throw new RangeError(`serial state is ${state.byteLength} bytes, want ${STATE_BYTES}`);
    }
    this.#s = new Int32Array(state, 0, HEADER_BYTES / 4);
    this.#rx = new Uint8Array(state, HEADER_BYTES, SERIAL_RX_CAPACITY);
    this.#irq = irq;
    this.#sink = sink;
  }

  /** Guest read. A wider access is split into byte accesses, as the ISA bus does for an 8-bit part. */
  read(offset: number, data: Uint8Array): void {
    this.#lock();
    try {
      for (let i = 0; i < data.length; i++) data[i] = this.#readRegister(offset + i);
      this.#updateIrq();
    } finally {
      this.#unlock();
    }
  }

  /** Guest write, split into byte accesses like `read`. */
  write(offset: number, data: Uint8Array): void {
    let tx = -1;
    this.#lock();
    try {
      for (let i = 0; i < data.length; i++) {
        if (this.#writeRegister(offset + i, data[i])) tx = data[i];
      }
      this.#updateIrq();
    } finally {
      this.#unlock();
    }
    // Outside the lock: the sink may block on stdout, and other threads must not spin on that.
    if (tx >= 0) this.#sink(tx);
  }

  /** Append host input to the RX ring; returns how many bytes fit (the caller retries the rest). */
  pushInput(bytes: Uint8Array): number {
    this.#lock();
    try {
      let n = 0;
      while (n < bytes.length && this.#pushRx(bytes[n])) n++;
      this.#updateIrq();
      return n;
    } finally {
      this.#unlock();
    }
  }

  /** Free bytes in the RX ring. */
  rxSpace(): number {
    this.#lock();
    const space = SERIAL_RX_CAPACITY - this.#s[S_RX_COUNT];
    this.#unlock();
    return space;
  }

  /**
   * Received bytes are shown to the guest only while it has the received-data interrupt on
   * (or in loopback). Linux's 8250 probe and start-up read RBR with interrupts off to throw
   * stale bytes away; holding host input back until the driver listens keeps piped stdin
   * whole. A real UART would drop them; a VMM's input has nowhere better to wait.
   */
  #rxVisible(): boolean {
    const s = this.#s;
    return s[S_RX_COUNT] > 0 && ((s[S_IER] & IER_ERBFI) !== 0 || (s[S_MCR] & MCR_LOOP) !== 0);
  }

  #lock(): void {
    spinLock(this.#s, S_LOCK);
  }

  #unlock(): void {
    spinUnlock(this.#s, S_LOCK);
  }

  #readRegister(offset: number): number {
    const s = this.#s;
    const dlab = (s[S_LCR] & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR:
        if (dlab) return s[S_DLL];
        return this.#rxVisible() ? this.#popRx() : 0;
      case IER:
        return dlab ? s[S_DLM] : s[S_IER];
      case IIR_FCR: {
        const id = this.#interruptId();
        // Datasheet: reading IIR clears a THRE interrupt when THRE is the reported source.
        if (id === IIR_THR_EMPTY) s[S_THRE_PENDING] = 0;
        return id | (s[S_FIFO_ENABLED] ? IIR_FIFOS_ENABLED : 0);
      }
      case LCR:
        return s[S_LCR];
      case MCR:
        return s[S_MCR];
      case LSR: {
        const lsr = (this.#rxVisible() ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | s[S_LSR_ERRORS];
        s[S_LSR_ERRORS] = 0;
        return lsr;
      }
      case MSR: {
        const msr = modemLines(s[S_MCR]) | s[S_MSR_DELTAS];
        s[S_MSR_DELTAS] = 0;
        return msr;
      }
      case SCR:
        return s[S_SCR];
      default:
        return 0xff; // past the 8 registers: nothing drives the bus
    }
  }

  /** Returns true when `value` was written to THR and must go to the sink. */
  #writeRegister(offset: number, value: number): boolean {
    const s = this.#s;
    const dlab = (s[S_LCR] & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR:
        if (dlab) {
          s[S_DLL] = value;
          return false;
        }
        // Writing THR clears a pending THRE interrupt, but the byte leaves at once and THR is
        // empty again, which latches THRE anew: Linux writes a FIFO's worth per THRE interrupt
        // and stalls unless another one follows.
        s[S_THRE_PENDING] = 1;
        if ((s[S_MCR] & MCR_LOOP) === 0) return true;
        // Loopback: the transmitter feeds the receiver; a full receiver is an overrun.
        if (!this.#pushRx(value)) s[S_LSR_ERRORS] |= LSR_OE;
        return false;
      case IER:
        if (dlab) {
          s[S_DLM] = value;
        } else {
          // Bits 4-7 are always 0 on a 16550 (Linux probes this to tell it from an XScale).
          const ier = value & 0x0f;
          // Enabling ETBEI while THR is empty raises THRE (Linux's UART_BUG_THRE test needs it).
          if ((ier & IER_ETBEI) !== 0 && (s[S_IER] & IER_ETBEI) === 0) s[S_THRE_PENDING] = 1;
          s[S_IER] = ier;
        }
        return false;
      case IIR_FCR:
        // FCR bit 0 enables the FIFOs, which IIR bits 6-7 report. The RX-clear bit is not
        // honoured: the ring holds host input still "on the wire", and Linux clears the FIFOs at
        // every open, which would throw away piped input.
        s[S_FIFO_ENABLED] = value & 0x01;
        return false;
      case LCR:
        s[S_LCR] = value;
        return false;
      case MCR: {
        const before = modemLines(s[S_MCR]);
        s[S_MCR] = value & 0x1f;
        const after = modemLines(s[S_MCR]);
        const changed = before ^ after;
        s[S_MSR_DELTAS] |= ((changed & MSR_CTS) ? MSR_DCTS : 0) |
          ((changed & MSR_DSR) ? MSR_DDSR : 0) |
          ((before & MSR_RI) && !(after & MSR_RI) ? MSR_TERI : 0) | // trailing edge only
          ((changed & MSR_DCD) ? MSR_DDCD : 0);
        return false;
      }
      case SCR:
        s[S_SCR] = value;
        return false;
      default:
        return false; // LSR and MSR are read-only; past the registers nothing listens
    }
  }

  /** Highest-priority pending interrupt (datasheet Table 4), masked by IER. */
  #interruptId(): number {
    const s = this.#s;
    const ier = s[S_IER];
    if ((ier & IER_ELSI) && s[S_LSR_ERRORS]) return IIR_LINE_STATUS;
    if ((ier & IER_ERBFI) && s[S_RX_COUNT] > 0) return IIR_RX_DATA;
    if ((ier & IER_ETBEI) && s[S_THRE_PENDING]) return IIR_THR_EMPTY;
    if ((ier & IER_EDSSI) && s[S_MSR_DELTAS]) return IIR_MODEM_STATUS;
    return IIR_NONE;
  }

  /** Drive the line from the interrupt state. Called under the lock so that level changes from
   * different threads reach the interrupt controller in the order they happened. */
  #updateIrq(): void {
    const level = this.#interruptId() === IIR_NONE ? 0 : 1;
    if (this.#s[S_IRQ_LEVEL] === level) return;
    this.#irq.setLevel(level === 1);
    this.#s[S_IRQ_LEVEL] = level;
  }

  #popRx(): number {
    const s = this.#s;
    if (s[S_RX_COUNT] === 0) return 0;
    const byte = this.#rx[s[S_RX_HEAD]];
    s[S_RX_HEAD] = (s[S_RX_HEAD] + 1) % SERIAL_RX_CAPACITY;
    s[S_RX_COUNT]--;
    return byte;
  }

  #pushRx(byte: number): boolean {
    const s = this.#s;
    if (s[S_RX_COUNT] === SERIAL_RX_CAPACITY) return false;
    this.#rx[(s[S_RX_HEAD] + s[S_RX_COUNT]) % SERIAL_RX_CAPACITY] = byte;
    s[S_RX_COUNT]++;
    return true;
  }
}
