/**
 * Fuzzing a virtio device the way a hostile guest reaches it: config cycles and MMIO through
 * the PCI bus into the virtio-pci transport (VirtioPciFunction over its VirtioPciState), queue
 * enables and notifies into the I/O Worker's DeviceRunner (src/virtio/device_runner.ts, which
 * builds the SplitQueues and hands chains to the device model), and descriptor chains in a
 * {@link FuzzRam}.
 *
 * Every run mixes a driver's bring-up (features, queues, MSI-X, DRIVER_OK) and valid-looking
 * requests, so queues really get enabled and chains really processed, with hostile ones:
 * register writes of any width anywhere in the BARs, rings at RAM edges, past them, unaligned
 * or overlapping, descriptors at 4 GiB, 2^53 and 2^64, loops, nested and empty indirect
 * tables, avail.idx jumps, BAR moves and resets at any point.
 *
 * Each chain the device pops is walked again here, independently, and its writable buffers
 * (with the queue's used ring) are all it may write; FuzzRam.check proves it wrote nowhere
 * else. Each used element must name a chain the device popped and not report more bytes than
 * the chain could take.
 */
import { RecordingVectors } from "../bus/recording_vectors.ts";
import { deepEqual, equal, ok } from "../assert.ts";
import { PciBus } from "../../src/pci/bus.ts";
import { DeviceRunner, type QueueHandler } from "../../src/virtio/device_runner.ts";
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  VIRTIO_F_RING_EVENT_IDX,
  VirtioPciState,
} from "../../src/virtio/pci_state.ts";
import {
  BAR0_SIZE,
  BAR1_SIZE,
  DEVICE_CONFIG_OFFSET,
  ISR_OFFSET,
  MSIX_PBA_OFFSET,
  NOTIFY_OFFSET,
  planVirtioPci,
  type VirtioDeviceDescription,
  VirtioPciFunction,
} from "../../src/virtio/pci_transport.ts";
import type { DescriptorChain, SplitQueue } from "../../src/virtio/queue.ts";
import {
  EDGE_GPAS,
  EDGE_LENGTHS,
  FuzzRam,
  type FuzzStats,
  HIGH_RAM_BYTES,
  HIGH_RAM_GPA,
  leBytes,
  LOW_RAM_BYTES,
  type Op,
  pick,
} from "./harness.ts";

const F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4;

/** A device model as a run builds it, with what the fuzzer does on the host's side. */
export interface DeviceBackend {
  device: QueueHandler;
  /** Something happens on the host side (a frame arrives, a key is typed); true: serve the
   * device's fill queues, as the I/O Worker does when the source's fd is readable. */
  hostEvent?(a: number, b: number, c: number): boolean;
  /** The run is over: check what the device did to its backing store. */
  endRun?(): void;
}

/** One buffer of a chain the fuzzing driver lays out. */
export interface FuzzBuf {
  len: number;
  write: boolean;
  data?: Uint8Array;
  /** A hostile placement instead of the data area. */
  gpa?: number;
}

/** A virtio device model under fuzz. */
export interface VirtioFuzzModel {
  description: VirtioDeviceDescription;
  backend(ram: FuzzRam, stats: FuzzStats): DeviceBackend;
  /** A valid-looking request for queue `q`, shaped by a, b, c. */
  chain(q: number, a: number, b: number, c: number): FuzzBuf[];
}

/** Where the fuzzing driver puts things in the low region. */
const QUEUE_AREA = 0x1000;
const QUEUE_AREA_STRIDE = 0x4000;
const DATA_START = 0x1_0000;
const DATA_END = LOW_RAM_BYTES - 0x1000;
const BAR0_GPA = 0xe000_0000;
const BAR1_GPA = 0xe000_4000;
const HOLE = 0xc000_0000;
const SLOT = 1;

/** The independent walk of a chain the queue accepted (§2.7.5): its buffers by direction. */
function referenceWalk(ram: FuzzRam, descGpa: number, size: number, head: number) {
  const readable: Array<{ gpa: number; len: number }> = [];
  const writable: Array<{ gpa: number; len: number }> = [];
  const view = new DataView(ram.bytes.buffer);
  let table = descGpa, n = size, i = head;
  for (let steps = 0; steps < 2 * 32768 + 2; steps++) {
    const at = ram.offset(table + 16 * i, 16);
    if (at < 0 || i >= n) throw new Error(`reference walk left the table at ${i}`);
    const addr = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
    const len = view.getUint32(at + 8, true);
    const flags = view.getUint16(at + 12, true);
    if (flags & F_INDIRECT) {
      table = addr;
      n = len / 16;
      i = 0;
      continue;
    }
    if (len > 0) (flags & F_WRITE ? writable : readable).push({ gpa: addr, len });
    if (!(flags & F_NEXT)) return { readable, writable };
    i = view.getUint16(at + 14, true);
  }
  throw new Error("reference walk did not end");
}

/**
 * Checks every chain the device pops against an independent walk, lets it write those
 * chains' writable buffers, and checks every used element it publishes.
 */
class ChainWatch {
  /** Heads popped and not yet used, per queue, with their writable bytes. */
  readonly #outstanding = new Map<string, number[]>();
  #generation = -1;

  constructor(
    readonly ram: FuzzRam,
    readonly state: VirtioPciState,
    readonly stats: FuzzStats,
  ) {}

  /** Runs inside the device's handling of a chain: the guest acts meanwhile (a vCPU would). */
  inside: () => void = () => {};

  popped(q: number, chain: DescriptorChain): void {
    // §3.1.1, §2.1.2: only a live device takes chains (DRIVER_OK, not broken, no reset due).
    ok(this.state.live, `a chain popped with status 0x${this.state.status.toString(16)}`);
    // A reset (or a fault, which waits for one) abandons the chains in flight.
    if (this.state.resetGeneration !== this.#generation) {
      this.#generation = this.state.resetGeneration;
      this.#outstanding.clear();
    }
    this.stats.accesses++;
    this.stats.count("chains");
    const a = this.state.queueAddresses(q);
    const ref = referenceWalk(this.ram, a.descGpa, a.size, chain.head);
    deepEqual(chain.readable, ref.readable, "readable buffers");
    deepEqual(chain.writable, ref.writable, "writable buffers");
    for (const s of ref.writable) this.ram.allow(s.gpa, s.len);
    const key = `${q}:${chain.head}`;
    const list = this.#outstanding.get(key) ?? [];
    list.push(chain.writableBytes);
    this.#outstanding.set(key, list);
  }

  used(q: number, head: number, writtenLen: number): void {
    const list = this.#outstanding.get(`${q}:${head}`);
    ok(list !== undefined && list.length > 0, `used head ${head} was never popped`);
    const writable = list.shift()!;
    ok(
      Number.isInteger(writtenLen) && writtenLen >= 0 && writtenLen <= writable,
      `used len ${writtenLen} for a chain of ${writable} writable bytes`,
    );
  }

  /** `queue` as the device sees it, with its pops and used elements watched. */
  queue(q: number, queue: SplitQueue): SplitQueue {
    return new Proxy(queue, {
      get: (target, prop) => {
        if (prop === "pop") {
          return () => {
            const chain = target.pop();
            if (chain) this.popped(q, chain);
            return chain;
          };
        }
        if (prop === "pushUsed") {
          return (head: number, len: number) => {
            this.used(q, head, len);
            target.pushUsed(head, len);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }

  /** `device` with every chain it handles or fills watched. */
  device(device: QueueHandler): QueueHandler {
    const watched: QueueHandler = {
      handle: (q, chain) => {
        this.popped(q, chain);
        let n;
        try {
          this.inside();
          n = device.handle(q, chain);
        } catch (e) {
          this.#outstanding.get(`${q}:${chain.head}`)?.pop(); // a fault: never used
          throw e;
        }
        this.used(q, chain.head, n);
        return n;
      },
    };
    if (device.isFillQueue && device.fill) {
      watched.isFillQueue = (q) => device.isFillQueue!(q);
      watched.fill = (q, queue, budget) => device.fill!(q, this.queue(q, queue), budget);
    }
    return watched;
  }
}

/** The driver's idea of one queue. */
interface DriverQueue {
  size: number;
  desc: number;
  avail: number;
  used: number;
  nextDesc: number;
  availIdx: number;
}

/** Queue placements: mostly sane, then at the edges of RAM and beyond. */
function placement(q: number, size: number, how: number) {
  const desc = 16 * size, avail = 6 + 2 * size, used = 6 + 8 * size;
  const area = QUEUE_AREA + q * QUEUE_AREA_STRIDE;
  const sane = { desc: area, avail: area + 0x1000, used: area + 0x1400 };
  switch (how % 16) {
    case 8: // wholly in the RAM at 4 GiB
      return {
        desc: HIGH_RAM_GPA + q * 0x4000,
        avail: HIGH_RAM_GPA + q * 0x4000 + 0x1000,
        used: HIGH_RAM_GPA + q * 0x4000 + 0x1400,
      };
    case 9: { // the used ring ending at the end of low RAM, the others just below
      const u = (LOW_RAM_BYTES - used) & ~3;
      const a = (u - avail) & ~1;
      return { desc: (a - desc) & ~15, avail: a, used: u };
    }
    case 10: // the used ring 2 bytes past the end of RAM at 4 GiB
      return { ...sane, used: (HIGH_RAM_GPA + HIGH_RAM_BYTES - used + 4) & ~3 };
    case 11: // unaligned
      return { desc: sane.desc + 8, avail: sane.avail + 1, used: sane.used + 2 };
    case 12: // in the hole, at 2^53, at 2^64 - 4
      return { desc: 0xd000_0000, avail: 2 ** 53, used: 2 ** 64 - 4 };
    case 13: // everything on top of each other
      return { desc: area, avail: area, used: area };
    case 14: // the used ring over the descriptor table
      return { ...sane, used: area };
    default:
      return sane;
  }
}

/** One device under fuzz, reached only through the bus, as a guest reaches it. */
export class VirtioFuzzRig {
  readonly ram = new FuzzRam();
  readonly fn: VirtioPciFunction;
  readonly bus: PciBus;
  readonly runner: DeviceRunner;
  readonly backend: DeviceBackend;
  readonly #mmio;
  readonly #driver: Array<DriverQueue | undefined> = [];
  #dataNext = DATA_START;
  #notifyAt = 0;
  readonly #watch: ChainWatch;
  #kicked = false;
  readonly #notified = new Set<number>();
  accesses = 0;

  constructor(readonly model: VirtioFuzzModel, readonly stats: FuzzStats) {
    const plan = planVirtioPci(model.description, SLOT, BAR0_GPA, BAR1_GPA, 5);
    this.backend = model.backend(this.ram, stats);
    const watch = new ChainWatch(this.ram, new VirtioPciState(plan.virtioState), stats);
    this.#watch = watch;
    // The I/O Worker is another thread: a vCPU's kick or notify only wakes it, and it runs
    // after the access (see worker()).
    const hooks = {
      notify: (q: number) => void this.#notified.add(q),
      kick: () => {
        this.allowUsedRings();
        this.#kicked = true;
      },
      notifyMoved: (from: number, to: number) => {
        equal(from, this.#notifyAt, "notify slots moved from where they were");
        this.#notifyAt = to;
      },
    };
    // The vCPU's and the I/O thread's instances share the machine's routes.
    const vectors = new RecordingVectors();
    this.fn = new VirtioPciFunction(plan, hooks, vectors, { setLevel: () => {} });
    this.runner = new DeviceRunner(
      plan,
      this.ram.mem,
      watch.device(this.backend.device),
      {
        trigger: (v) => (stats.count("msi-x"), vectors.trigger(v)),
        route: (first, end, message) => vectors.route(first, end, message),
        release: () => vectors.release(),
      },
      { setLevel: (high) => void (high && stats.count("intx")) },
    );
    this.bus = new PciBus(PciBus.createState());
    this.bus.add(SLOT, this.fn);
    this.#mmio = this.bus.window(HOLE, "memory", () => {});
  }

  /** The I/O Worker wakes: a kick syncs every queue, then each notified queue is served. */
  worker(): void {
    if (this.#kicked) {
      this.#kicked = false;
      while (this.runner.sync()) this.stats.count("budget-turns");
    }
    for (const q of this.#notified) {
      this.#notified.delete(q);
      this.serve(q);
    }
  }

  /**
   * The guest resets the device while the I/O Worker is inside a request: the status must not
   * read 0 until the Worker has left the queues (the reset is then complete, and nothing more
   * may be written to the guest).
   */
  armResetInside(): void {
    this.#watch.inside = () => {
      this.#watch.inside = () => {};
      this.common(0x14, 1, 0);
      this.stats.count("resets-inside");
      ok(this.commonRead(0x14, 1) !== 0, "status read 0 while the device was in a request");
    };
  }

  /** The guest's view after a reset it wrote: 0 once the Worker has left the queues. */
  disarm(): void {
    this.#watch.inside = () => {};
  }

  /** The I/O Worker's turn on queue q: it comes back while the runner says work is left. */
  serve(q: number): void {
    if (q >= this.fn.state.numQueues) return;
    while (this.runner.process(q)) this.stats.count("budget-turns");
  }

  /** The device may write the used ring (and avail_event) of every queue the driver enabled. */
  allowUsedRings(): void {
    const state = this.fn.state;
    if (state.status & STATUS_DEVICE_NEEDS_RESET) return; // a broken device writes nothing
    for (let q = 0; q < state.numQueues; q++) {
      if (!state.queueEnabled(q)) continue;
      const a = state.queueAddresses(q);
      this.ram.allow(a.usedGpa + 2, 4 + 8 * a.size);
    }
  }

  // ---- The guest's accesses. ----

  mmioWrite(gpa: number, data: Uint8Array): void {
    this.accesses++;
    if (gpa >= HOLE && gpa + data.length <= 2 ** 32) this.#mmio.write(gpa - HOLE, data);
  }
  mmioRead(gpa: number, width: number): number {
    this.accesses++;
    const d = new Uint8Array(width).fill(0xff); // nothing decodes there: all-ones
    if (gpa >= HOLE && gpa + width <= 2 ** 32) this.#mmio.read(gpa - HOLE, d);
    let v = 0;
    for (let i = Math.min(width, 4) - 1; i >= 0; i--) v = v * 256 + d[i];
    return v;
  }
  common(offset: number, width: number, value: number): void {
    this.mmioWrite(this.bar0() + offset, leBytes(width, value));
  }
  commonRead(offset: number, width: number): number {
    return this.mmioRead(this.bar0() + offset, width);
  }
  configWrite(offset: number, width: number, value: number): void {
    this.accesses += 2;
    this.bus.conf1.write(0, leBytes(4, 0x8000_0000 | (SLOT << 11) | (offset & 0xfc)));
    // The I/O bus delivers only accesses wholly inside 0xcf8-0xcff (src/bus/bus.ts).
    if ((offset & 3) + width <= 4) this.bus.conf1.write(4 + (offset & 3), leBytes(width, value));
  }
  configRead(offset: number, width: number): number {
    this.accesses += 2;
    this.bus.conf1.write(0, leBytes(4, 0x8000_0000 | (SLOT << 11) | (offset & 0xfc)));
    const d = new Uint8Array(width);
    this.bus.conf1.read(4 + (offset & 3), d);
    return d.reduceRight((v, b) => v * 256 + b, 0);
  }
  bar0(): number {
    return (this.fn.config.barInfo(0)?.address ?? 0) || BAR0_GPA;
  }
  bar1(): number {
    return (this.fn.config.barInfo(1)?.address ?? 0) || BAR1_GPA;
  }
  /** A notify: with an ioeventfd placed KVM would hand it to the I/O Worker, which runs the
   * same process(q) the function's notify hook runs here. */
  notify(q: number): void {
    this.mmioWrite(this.bar0() + NOTIFY_OFFSET + 4 * q, leBytes(2, q));
  }

  /** A driver's bring-up (§3.1.1), with its choices taken from a, b, c. */
  bringUp(a: number, b: number, c: number): void {
    this.configWrite(0x04, 2, 0x0006); // memory decode and bus mastering
    this.common(0x14, 1, 0);
    this.common(0x14, 1, STATUS_ACKNOWLEDGE);
    this.common(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const offered = this.model.description.features;
    this.common(0x00, 4, 0);
    this.commonRead(0x04, 4);
    this.common(0x00, 4, 1);
    this.commonRead(0x04, 4);
    // Mostly what is offered (with or without EVENT_IDX), sometimes more, sometimes less.
    let want = offered;
    if (a % 3 === 1) want &= ~VIRTIO_F_RING_EVENT_IDX;
    if (a % 7 === 6) want |= BigInt(c >>> 0) | (1n << 40n);
    if (a % 11 === 10) want = 0n;
    this.common(0x08, 4, 0);
    this.common(0x0c, 4, Number(want & 0xffff_ffffn));
    this.common(0x08, 4, 1);
    this.common(0x0c, 4, Number((want >> 32n) & 0xffff_ffffn));
    this.common(0x14, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    this.commonRead(0x14, 1);
    const n = this.fn.state.numQueues;
    for (let q = 0; q < n; q++) {
      this.common(0x16, 2, q);
      const max = this.commonRead(0x18, 2);
      const size = b % 4 === 0 ? pick([1, 2, 4, 8, 256, 3, 0, 512], b >> 2) : max >> (b % 3) * 2;
      this.common(0x18, 2, size);
      const real = this.fn.state.queueAddresses(q).size;
      const p = placement(q, real, (b >> 4) + q);
      this.common(0x20, 4, p.desc % 2 ** 32);
      this.common(0x24, 4, Math.floor(p.desc / 2 ** 32));
      this.common(0x28, 4, p.avail % 2 ** 32);
      this.common(0x2c, 4, Math.floor(p.avail / 2 ** 32));
      this.common(0x30, 4, p.used % 2 ** 32);
      this.common(0x34, 4, Math.floor(p.used / 2 ** 32));
      this.common(0x1a, 2, c % 5 === 4 ? c & 0xffff : q + 1);
      // The driver zeroes its rings before it enables the queue.
      for (const [gpa, len] of [[p.avail, 6 + 2 * real], [p.used, 6 + 8 * real]]) {
        if (this.ram.offset(gpa, len) >= 0) this.ram.write(gpa, new Uint8Array(len));
      }
      this.#driver[q] = { size: real, ...p, nextDesc: 0, availIdx: 0 };
      this.common(0x1c, 2, 1);
    }
    this.common(0x10, 2, 0);
    // MSI-X: program and unmask every vector, then enable (or leave it off: INTx).
    if (c % 4 !== 3) {
      for (let v = 0; v < this.fn.plan.msix.vectors; v++) {
        this.mmioWrite(this.bar1() + 16 * v, leBytes(8, 0xfee0_0000, 0));
        this.mmioWrite(this.bar1() + 16 * v + 8, leBytes(4, 0x20 + v));
        this.mmioWrite(this.bar1() + 16 * v + 12, leBytes(4, 0));
      }
      const control = this.configRead(0x34, 1);
      // Walk to the MSI-X capability (id 0x11).
      for (let at = control, i = 0; at !== 0 && i < 16; i++) {
        if (this.configRead(at, 1) === 0x11) {
          this.configWrite(at + 2, 2, 0x8000);
          break;
        }
        at = this.configRead(at + 1, 1);
      }
    }
    this.common(
      0x14,
      1,
      STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    if ((this.fn.state.status & STATUS_DRIVER_OK) !== 0) this.stats.count("driver-ok");
  }

  #alloc(len: number): number {
    const need = Math.ceil(Math.max(len, 1) / 16) * 16;
    if (this.#dataNext + need > DATA_END) this.#dataNext = DATA_START;
    const gpa = this.#dataNext;
    this.#dataNext += need;
    return gpa;
  }

  /** Lay out `bufs` in queue q's table (indirect when asked) and make the chain available. */
  post(q: number, bufs: FuzzBuf[], indirect: boolean): void {
    const d = this.#driver[q];
    if (d === undefined || bufs.length === 0) return;
    const place = (b: FuzzBuf) => {
      if (b.gpa !== undefined) return b.gpa;
      if (b.len > DATA_END - DATA_START) return this.#alloc(16);
      const gpa = this.#alloc(b.len);
      if (b.data) this.ram.write(gpa, b.data);
      return gpa;
    };
    const setDesc = (
      table: number,
      i: number,
      addr: number,
      len: number,
      flags: number,
      next: number,
    ) => {
      this.ram.w64(table + 16 * i, BigInt(Math.min(addr, 2 ** 64 - 1)));
      this.ram.w32(table + 16 * i + 8, len >>> 0);
      this.ram.w16(table + 16 * i + 12, flags);
      this.ram.w16(table + 16 * i + 14, next);
    };
    const head = d.nextDesc % d.size;
    if (indirect) {
      const table = this.#alloc(16 * bufs.length);
      bufs.forEach((b, k) => {
        const more = k + 1 < bufs.length;
        setDesc(
          table,
          k,
          place(b),
          b.len,
          (b.write ? F_WRITE : 0) | (more ? F_NEXT : 0),
          more ? k + 1 : 0,
        );
      });
      setDesc(d.desc, head, table, 16 * bufs.length, F_INDIRECT, 0);
      d.nextDesc = (head + 1) % d.size;
    } else {
      bufs.forEach((b, k) => {
        const i = (head + k) % d.size;
        const more = k + 1 < bufs.length;
        setDesc(
          d.desc,
          i,
          place(b),
          b.len,
          (b.write ? F_WRITE : 0) | (more ? F_NEXT : 0),
          (i + 1) % d.size,
        );
      });
      d.nextDesc = (head + bufs.length) % d.size;
    }
    this.ram.w16(d.avail + 4 + 2 * (d.availIdx % d.size), head);
    d.availIdx = (d.availIdx + 1) & 0xffff;
    this.ram.w16(d.avail + 2, d.availIdx);
  }

  /** A hostile chain: edge addresses and lengths, raw flags, loops. */
  postHostile(q: number, a: number, b: number, c: number): void {
    const d = this.#driver[q];
    if (d === undefined) return;
    const n = 1 + (a % 5);
    const bufs: FuzzBuf[] = [];
    for (let k = 0; k < n; k++) {
      const len = b % 3 === 0 ? (c >>> (k * 3)) % 9000 : pick(EDGE_LENGTHS, (b >>> (k * 3)) + k);
      const edge = pick(EDGE_GPAS, (c >>> (k * 4)) + k);
      // Ending at an edge of RAM (or past it), or over the queue's own rings, or anywhere.
      const where = (a >>> (k + 3)) % 4;
      const ring = pick([d.desc, d.avail, d.used, d.used + 4 + 8 * d.size], c >>> (k * 2));
      const gpa = where === 0
        ? Math.max(0, edge - len + ((c >>> k) % 5) - 2)
        : where === 1
        ? ring + ((c >>> k) % 8)
        : undefined;
      bufs.push({ len, write: ((a >> (k + 8)) & 1) === 1, gpa });
    }
    this.post(q, bufs, (c & 8) !== 0);
    if (b % 7 === 0) {
      // A loop, or a next past the table, or INDIRECT together with NEXT.
      const i = (d.nextDesc + d.size - 1) % d.size;
      this.ram.w16(d.desc + 16 * i + 12, pick([F_NEXT, F_NEXT | F_WRITE, F_INDIRECT | F_NEXT], c));
      this.ram.w16(d.desc + 16 * i + 14, pick([i, d.size, 0xffff, (i + d.size - 1) % d.size], b));
    }
  }

  /** Raw writes to the rings: avail.idx jumps, heads past the table, flags and event words. */
  scribble(q: number, a: number, b: number, c: number): void {
    const d = this.#driver[q];
    if (d === undefined) return;
    const targets = [
      d.avail + 2,
      d.avail,
      d.avail + 4 + 2 * ((d.availIdx + (b % 3)) % d.size),
      d.avail + 4 + 2 * d.size, // used_event
      d.desc + 16 * (a % d.size) + (b % 16),
      d.used + (b % 8),
    ];
    const gpa = pick(targets, a);
    if (b % 2) this.ram.w16(gpa, c & 0xffff);
    else this.ram.w32(gpa, c);
    if (gpa === d.avail + 2) d.availIdx = c & 0xffff;
  }

  /** The guest reset the device: the driver forgets its queues. */
  forget(): void {
    this.#driver.length = 0;
  }

  driverQueue(q: number): DriverQueue | undefined {
    return this.#driver[q];
  }
}

const WIDTHS = [1, 2, 4, 4, 4, 8, 3];

/** Interpret one op on a rig; see the module doc. */
export function step(rig: VirtioFuzzRig, op: Op): void {
  const [kind, a, b, c] = op;
  const n = rig.fn.state.numQueues;
  const q = a % (n + (b % 5 === 0 ? 1 : 0));
  if (kind === STEP_KINDS - 1 && b % 2 === 0) { // a reset while the device is in a request
    rig.post(q, rig.model.chain(q, a, b, c), false);
    rig.notify(q);
    rig.armResetInside();
    rig.worker();
    rig.disarm();
    if (rig.commonRead(0x14, 1) === 0) {
      rig.ram.check(); // what it wrote before the reset was its right; from here on nothing is
      rig.forget();
    }
    return;
  }
  // Kinds past the named ones are more valid requests: most runs should move data.
  switch (kind >= 14 || (kind === 11 && b % 4 !== 0) ? 1 : kind) {
    case 0: // a driver (re)starts the device when it is not live, now and then when it is
      if (!rig.fn.state.live || b % 4 === 0) return rig.bringUp(a, b, c);
      rig.post(q, rig.model.chain(q, a, b, c), false);
      return rig.notify(q);
    case 1:
    case 2:
    case 3: { // a valid-looking request, then a notify
      rig.post(q, rig.model.chain(q, a, b, c), b % 6 === 5);
      if (c % 8 !== 7) rig.notify(q);
      return;
    }
    case 4:
      rig.postHostile(q, a, b, c);
      return rig.notify(q);
    case 5: // notify a queue, or past the last one, or the slot between
      return rig.mmioWrite(
        rig.bar0() + NOTIFY_OFFSET + (a % (4 * n + 8)),
        leBytes(pick(WIDTHS, b), c),
      );
    case 6: { // common config, any offset, any width
      const offset = b % 3 ? a % 0x40 : pick([0x14, 0x16, 0x18, 0x1a, 0x1c, 0x0c, 0x10], a);
      return rig.common(offset, pick(WIDTHS, b >> 2), c);
    }
    case 7: { // reads anywhere in BAR 0 and BAR 1 (ISR reads clear it)
      const at = pick([0, ISR_OFFSET, DEVICE_CONFIG_OFFSET, NOTIFY_OFFSET, BAR0_SIZE - 4], a) +
        (b % 64);
      rig.mmioRead(c % 2 ? rig.bar0() + at : rig.bar1() + (a % (BAR1_SIZE + 8)), pick(WIDTHS, b));
      return;
    }
    case 8: { // MSI-X table and PBA writes
      const at = c % 2 ? 16 * (a % 8) + 4 * (b % 4) : MSIX_PBA_OFFSET + (a % 16);
      return rig.mmioWrite(rig.bar1() + at, leBytes(pick(WIDTHS, b), c));
    }
    case 9: { // config space: command, BAR moves and sizing, MSI-X control
      const offset = pick([0x04, 0x10, 0x14, 0x10, 0x3c, 0x40 + (a % 0xc0)], a);
      const value = pick([c, 0xffff_ffff, 0, BAR0_GPA + 0x10000 * (b % 4), 0xffff_c000], b);
      if (offset === 0x04 || offset === 0x10 || offset === 0x14) rig.stats.count("bar-writes");
      return rig.configWrite(offset, pick([4, 2, 1], c), value);
    }
    case 10:
      return rig.scribble(q, a, b, c);
    case 11: // reset, and the driver notices
      rig.common(0x14, 1, 0);
      rig.stats.count("resets");
      return rig.forget();
    case 12:
      if (rig.backend.hostEvent?.(a, b, c)) {
        for (let fq = 0; fq < n; fq++) if (rig.backend.device.isFillQueue?.(fq)) rig.serve(fq);
      }
      return;
    default: { // MMIO anywhere near the BARs, in and across their edges
      const base = pick(
        [rig.bar0(), rig.bar0() + BAR0_SIZE, rig.bar1() + BAR1_SIZE, HOLE, 2 ** 32],
        a,
      );
      const at = base + (b % 32) - 16;
      if (c % 2) rig.mmioWrite(at, leBytes(pick(WIDTHS, b >> 5), c));
      else rig.mmioRead(at, pick(WIDTHS, b >> 5));
    }
  }
}

/** Op kinds {@link step} knows (14 named, the rest valid requests). */
export const STEP_KINDS = 22;

/** One fuzz run: a fresh device, a bring-up most of the time, then the ops; returns accesses. */
export function fuzzRun(model: VirtioFuzzModel, stats: FuzzStats, list: Op[]): number {
  const rig = new VirtioFuzzRig(model, stats);
  const first = list[0];
  if (first && first[1] % 8 !== 0) rig.bringUp(first[1], first[2], first[3]);
  let broken = false;
  for (const op of list) {
    // The used rings of the queues enabled now (and, through kicks, of those enabled during
    // the op) are the device's to write; a broken device's are not.
    rig.allowUsedRings();
    step(rig, op);
    rig.worker();
    rig.allowUsedRings();
    // §2.1.2: a broken device writes nothing to the guest until the driver resets it. Its
    // writes so far are checked when it breaks; what it wrote meanwhile, when it is reset.
    const now = (rig.fn.state.status & STATUS_DEVICE_NEEDS_RESET) !== 0;
    if (now && !broken) stats.count("needs-reset");
    if (now !== broken) rig.ram.check();
    broken = now;
  }
  rig.ram.check();
  rig.backend.endRun?.();
  return rig.accesses;
}
