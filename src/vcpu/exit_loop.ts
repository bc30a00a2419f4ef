/**
 * The vCPU run loop: enter the guest, dispatch the exit to the bus, repeat. This is the hot
 * path, so it allocates nothing per exit: the data views for each access size are built once
 * over the kvm_run page, and bus lookups are a binary search.
 */
import { KVM_EXIT, KVM_EXIT_IO_OUT, KvmRun } from "../../ffi/kvm_run.ts";
import type { VcpuFd } from "../../ffi/kvm_fds.ts";
import type { Bus } from "../bus/bus.ts";
import { ExitStats, STAT } from "./exit_stats.ts";
import { registerDump } from "./register_dump.ts";

/** Why a vCPU loop ended. `status` is the process exit status the VM ends with. */
export interface LoopOutcome {
  status: number;
  /** A message for stderr (a fatal exit with its register dump), if any. */
  message?: string;
  /** The main thread stopped this vCPU (the VM ended elsewhere); `status` means nothing. */
  stoppedByHost?: boolean;
}

/**
 * Devices end the VM through this (debug-exit, i8042 reset); the main thread through
 * `hostStop` (Int32[0] set to 1), which is read once per exit.
 */
export class StopRequest {
  #outcome: LoopOutcome | undefined;

  constructor(private readonly hostStop?: Int32Array) {}

  get outcome(): LoopOutcome | undefined {
    if (this.#outcome === undefined && this.hostStop && Atomics.load(this.hostStop, 0) !== 0) {
      this.#outcome = { status: 0, stoppedByHost: true };
    }
    return this.#outcome;
  }

  stop(status: number, message?: string): void {
    this.#outcome ??= { status, message };
  }
}

export interface LoopOptions {
  debug: boolean;
  log: (line: string) => void;
  /** The architecture's register lines for a fatal exit's dump (PlatformWiring.registers). */
  registers?: (vcpu: VcpuFd) => string[];
}

/** How many exits between two looks at the clock, in slices. */
const SLICE_CHECK_EXITS = 1024;

const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
const KVM_SYSTEM_EVENT_RESET = 2;

/** Run the vCPU until the VM ends (a thread of its own, which blocks in KVM_RUN). */
export function runLoop(
  vcpu: VcpuFd,
  pio: Bus,
  mmio: Bus,
  stats: ExitStats,
  stop: StopRequest,
  opts: LoopOptions,
): LoopOutcome {
  return loop(vcpu, pio, mmio, stats, stop, opts, undefined)!;
}

/**
 * Run the vCPU for a slice, on a thread that has an event loop to serve between slices
 * (../machine/boot_vcpu.ts): returns `undefined` when KVM_RUN is interrupted (EINTR: a signal,
 * such as that thread's periodic tick) or after `sliceMs` of back-to-back exits; the caller
 * serves its events and calls again. Returns the outcome once the VM has ended.
 */
export function runSlice(
  vcpu: VcpuFd,
  pio: Bus,
  mmio: Bus,
  stats: ExitStats,
  stop: StopRequest,
  opts: LoopOptions,
  sliceMs: number,
): LoopOutcome | undefined {
  return loop(vcpu, pio, mmio, stats, stop, opts, sliceMs);
}

function loop(
  vcpu: VcpuFd,
  pio: Bus,
  mmio: Bus,
  stats: ExitStats,
  stop: StopRequest,
  opts: LoopOptions,
  sliceMs: number | undefined,
): LoopOutcome | undefined {
  const run = vcpu.run;
  const sliced = sliceMs !== undefined;
  const sliceStart = sliced ? performance.now() : 0;
  let untilClock = SLICE_CHECK_EXITS;
  const page = run.bytes;
  // kvm_run.io.data_offset is fixed by KVM (one page in), but read it per exit and rebuild
  // the views only if it ever changes.
  let pioOffset = -1;
  let pioViews: Uint8Array[] = [];
  const mmioViews = sizeViews(page, KvmRun.MMIO_DATA_OFFSET);

  while (stop.outcome === undefined) {
    if (!vcpu.runOnce()) {
      if (sliced) return undefined;
      continue;
    }
    stats.bump(STAT.exits);
    const reason = run.exit_reason;
    if (reason === KVM_EXIT.IO) {
      stats.bump(STAT.pio);
      const size = run.io_size;
      const port = run.io_port;
      const count = run.io_count;
      const off = run.io_data_offset;
      if (off !== pioOffset) {
        pioOffset = off;
        pioViews = sizeViews(page, off);
      }
      const out = run.io_direction === KVM_EXIT_IO_OUT;
      const entry = pio.find(port, size);
      for (let i = 0; i < count; i++) {
        // String I/O (rep ins/outs) hands over `count` items back to back.
        const data = i === 0 ? pioViews[size] : page.subarray(off + i * size, off + (i + 1) * size);
        if (data === undefined || off + (i + 1) * size > page.length) break;
        if (entry === undefined) {
          unclaimed(stats, out, true, port, data, opts);
        } else if (out) {
          entry.device.write(port - entry.base, data);
        } else {
          entry.device.read(port - entry.base, data);
        }
      }
    } else if (reason === KVM_EXIT.MMIO) {
      stats.bump(STAT.mmio);
      const addr = run.mmio_phys_addr;
      const len = run.mmio_len;
      const data = mmioViews[len];
      const write = run.mmio_is_write !== 0;
      const entry = data === undefined ? undefined : mmio.find(addr, len);
      if (data === undefined) {
        opts.log(`mmio access of bad length ${len} at 0x${addr.toString(16)} ignored`);
      } else if (entry === undefined) {
        unclaimed(stats, write, false, addr, data, opts);
      } else if (write) {
        entry.device.write(addr - entry.base, data);
      } else {
        entry.device.read(addr - entry.base, data);
      }
    } else if (reason === KVM_EXIT.SYSTEM_EVENT) {
      const type = run.system_event_type;
      if (type === KVM_SYSTEM_EVENT_SHUTDOWN || type === KVM_SYSTEM_EVENT_RESET) {
        if (opts.debug) opts.log(`KVM_EXIT_SYSTEM_EVENT type ${type}: the VM ends, status 0`);
        stop.stop(0);
      } else {
        stop.stop(1, fatal(vcpu, opts, `KVM_EXIT_SYSTEM_EVENT type ${type}`));
      }
    } else if (reason === KVM_EXIT.SHUTDOWN) {
      stop.stop(1, fatal(vcpu, opts, "guest triple fault (KVM_EXIT_SHUTDOWN)"));
    } else if (reason === KVM_EXIT.INTR || reason === KVM_EXIT.IRQ_WINDOW_OPEN) {
      // A signal or an interrupt window: nothing to emulate, go back in.
    } else if (reason === KVM_EXIT.HLT) {
      // Only without an in-kernel LAPIC; ours has one, so a HLT exit means the vCPU is done.
      stop.stop(1, fatal(vcpu, opts, "guest halted with interrupts off (KVM_EXIT_HLT)"));
    } else {
      stop.stop(1, fatal(vcpu, opts, "unhandled exit"));
    }
    if (sliced && --untilClock === 0) {
      untilClock = SLICE_CHECK_EXITS;
      if (performance.now() - sliceStart >= sliceMs! && stop.outcome === undefined) {
        return undefined;
      }
    }
  }
  return stop.outcome;
}

/** Views of 1, 2, 4 and 8 bytes at `offset`, indexed by size. */
function sizeViews(page: Uint8Array, offset: number): Uint8Array[] {
  const v: Uint8Array[] = [];
  for (const size of [1, 2, 4, 8]) {
    if (offset + size <= page.length) v[size] = page.subarray(offset, offset + size);
  }
  return v;
}

/** Unclaimed reads see all-ones (a floating bus); writes are dropped. Both are counted. */
function unclaimed(
  stats: ExitStats,
  write: boolean,
  isPio: boolean,
  addr: number,
  data: Uint8Array,
  opts: LoopOptions,
): void {
  if (write) {
    stats.bump(isPio ? STAT.pioWriteUnclaimed : STAT.mmioWriteUnclaimed);
  } else {
    data.fill(0xff);
    stats.bump(isPio ? STAT.pioReadUnclaimed : STAT.mmioReadUnclaimed);
  }
  if (opts.debug) {
    const what = isPio ? "port" : "mmio";
    const dir = write ? "write" : "read";
    opts.log(`unclaimed ${what} ${dir} at 0x${addr.toString(16)} size ${data.length}`);
  }
}

function fatal(vcpu: VcpuFd, opts: LoopOptions, why: string): string {
  return `${why}\n${registerDump(vcpu, opts.registers)}`;
}
