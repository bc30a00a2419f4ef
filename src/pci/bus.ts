/**
 * PCI bus 0: configuration mechanism #1 (ports 0xcf8 address, 0xcfc-0xcff data), PCI Express
 * ECAM (config space by MMIO: one access is one exit, where conf1 takes two) and the
 * routing of BAR accesses to functions. Knows nothing of KVM: functions plug in, and every
 * thread builds its own PciBus over shared state (the address latch, each function's config
 * space), so a BAR the guest moves on one vCPU moves for all of them at once: accesses are
 * matched against the BARs as currently programmed, not against a registration.
 */
import type { BusDevice } from "../bus/device.ts";
import { leValue, setLeValue } from "../bus/device.ts";
import type { PciAddressSpace, PciBarHit } from "./config_space.ts";

/** What the bus needs of a function's configuration space (PciConfigSpace has all of it; a
 * passthrough device answers partly from the real device). */
export interface PciConfigAccess {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
  barContaining(addr: number, len: number, space: PciAddressSpace): Readonly<PciBarHit> | undefined;
  /** Whether the function has any BAR in `space` (fixed once it is on the bus). */
  declaresBars(space: PciAddressSpace): boolean;
}

export const PCI_CONF1_ADDRESS_PORT = 0xcf8;
export const PCI_CONF1_PORTS = 8; // 0xcf8-0xcff
export const PCI_MAX_SLOTS = 32;

/** One function as a thread sees it: its config space and what its BARs do. */
export interface PciFunction {
  readonly config: PciConfigAccess;
  /** `data.length` bytes at `offset` into BAR `index`. */
  barRead(index: number, offset: number, data: Uint8Array): void;
  barWrite(index: number, offset: number, data: Uint8Array): void;
}

// conf1 address register (PCI 3.0 §3.2.2.3.2): enable, bus, device, function, register.
const CONF1_ENABLE = 0x8000_0000;
/** Config space a function has; ECAM addresses 4 KiB per function (PCIe 6.0 §7.2.2). */
const CONFIG_SPACE_BYTES = 256;
const ECAM_FUNCTION_BYTES = 4096;

export class PciBus {
  readonly #slots: Array<PciFunction | undefined> = new Array(PCI_MAX_SLOTS);
  readonly #present: PciFunction[] = [];
  readonly #address: Int32Array;
  /** Windows list the functions present when they are made: none may come after. */
  #windowsMade = false;

  /** The conf1 address latch is one register for the whole machine, shared by all vCPUs
   * (Linux serialises config accesses with its own lock, as it must on real hardware). */
  static createState(): SharedArrayBuffer {
    return new SharedArrayBuffer(4);
  }

  constructor(state: SharedArrayBuffer) {
    this.#address = new Int32Array(state);
  }

  add(slot: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= PCI_MAX_SLOTS || this.#slots[slot]) {
      throw new RangeError(`PCI slot ${slot} is not free`);
    }
    if (this.#windowsMade) throw new RangeError("PCI functions are added before any window");
    this.#slots[slot] = fn;
    this.#present.push(fn);
  }

  /** Ports 0xcf8-0xcff. Only a dword at 0xcf8 is the address register (byte accesses there
   * belong to the old mechanism #2, which Linux probes and we do not implement). */
  readonly conf1: BusDevice = {
    read: (offset, data) => {
      if (offset === 0 && data.length === 4) {
        return setLeValue(data, Atomics.load(this.#address, 0));
      }
      if (offset < 4) return void data.fill(0xff);
      const fn = this.#target();
      const reg = (Atomics.load(this.#address, 0) & 0xfc) + (offset - 4);
      if (fn === undefined || reg + data.length > CONFIG_SPACE_BYTES) return void data.fill(0xff);
      setLeValue(data, fn.config.read(reg, data.length));
    },
    write: (offset, data) => {
      if (offset === 0 && data.length === 4) {
        return void Atomics.store(this.#address, 0, leValue(data) | 0);
      }
      if (offset < 4) return;
      const fn = this.#target();
      const reg = (Atomics.load(this.#address, 0) & 0xfc) + (offset - 4);
      if (fn === undefined || reg + data.length > CONFIG_SPACE_BYTES) return;
      fn.config.write(reg, data.length, leValue(data));
    },
  };

  /**
   * The ECAM region of bus 0 (1 MiB; its offset is device << 15 | function << 12 | register).
   * Accesses must be 1, 2 or 4 bytes, naturally aligned (PCIe 6.0 §7.2.2.1): others, and those
   * to an absent function, read all-ones and write nothing, as a master abort. Functions here
   * are conventional PCI with 256 bytes of config space: their extended space reads 0 (no
   * extended capability), which Linux also takes as "ECAM works" for the host bridge.
   */
  readonly ecam: BusDevice = {
    read: (offset, data) => {
      const fn = this.#ecamTarget(offset, data.length);
      if (fn === undefined) return void data.fill(0xff);
      const reg = offset % ECAM_FUNCTION_BYTES;
      if (reg >= CONFIG_SPACE_BYTES) return void data.fill(0);
      setLeValue(data, fn.config.read(reg, data.length));
    },
    write: (offset, data) => {
      const fn = this.#ecamTarget(offset, data.length);
      const reg = offset % ECAM_FUNCTION_BYTES;
      if (fn === undefined || reg >= CONFIG_SPACE_BYTES) return;
      fn.config.write(reg, data.length, leValue(data));
    },
  };

  #ecamTarget(offset: number, size: number): PciFunction | undefined {
    if ((size !== 1 && size !== 2 && size !== 4) || offset % size !== 0) return undefined;
    const fn = Math.floor(offset / ECAM_FUNCTION_BYTES);
    // Bus 0 only (the region is 1 MiB), function 0 of each slot.
    if (fn >= PCI_MAX_SLOTS * 8 || fn % 8 !== 0) return undefined;
    return this.#slots[fn / 8];
  }

  /** The function the latch selects: bus 0, function 0 of a present slot, enable bit set. */
  #target(): PciFunction | undefined {
    const a = Atomics.load(this.#address, 0) >>> 0;
    if ((a & CONF1_ENABLE) === 0) return undefined;
    const bus = (a >>> 16) & 0xff;
    const slot = (a >>> 11) & 0x1f;
    const func = (a >>> 8) & 0x7;
    // Bits 27:24 carry AMD's extended register number; config space here is 256 bytes.
    if (bus !== 0 || func !== 0 || ((a >>> 24) & 0xf) !== 0) return undefined;
    return this.#slots[slot];
  }

  /** A bus device for an address window (the MMIO hole, or I/O ports) that forwards each
   * access to the function whose enabled BAR holds it; nothing there reads all-ones. */
  window(
    base: number,
    space: PciAddressSpace,
    unclaimed: (write: boolean, addr: number, size: number) => void,
  ): BusDevice {
    // Loops written out (no result object) because this is on the exit path of every access.
    // Only the functions with a BAR in this space are asked: which those are is fixed once
    // they are on the bus, and the host bridge, first on every bus, has none.
    const fns = this.#present.filter((fn) => fn.config.declaresBars(space));
    this.#windowsMade = true;
    return {
      read: (offset, data) => {
        for (const fn of fns) {
          const hit = fn.config.barContaining(base + offset, data.length, space);
          if (hit) return fn.barRead(hit.index, hit.offset, data);
        }
        data.fill(0xff);
        unclaimed(false, base + offset, data.length);
      },
      write: (offset, data) => {
        for (const fn of fns) {
          const hit = fn.config.barContaining(base + offset, data.length, space);
          if (hit) return fn.barWrite(hit.index, hit.offset, data);
        }
        unclaimed(true, base + offset, data.length);
      },
    };
  }
}
