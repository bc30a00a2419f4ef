/**
 * A periodic signal to one thread: a POSIX timer (timer_create, CLOCK_MONOTONIC) whose expiry
 * is delivered to a given thread id (SIGEV_THREAD_ID). The boot vCPU on the main thread uses it
 * to leave KVM_RUN now and then (EINTR), however idle the guest, so that the main thread's event
 * loop (stdin, signals, timers) gets its turn (src/machine/boot_vcpu.ts).
 *
 * @module
 */
import { check, libc } from "./libc.ts";
import { StructView } from "./struct_view.ts";

const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;

/** struct sigevent (<asm-generic/siginfo.h>): 64 bytes; the thread id in the union. */
export class Sigevent extends StructView {
  static readonly SIZE = 64;
  static readonly OFFSETS = { sigev_value: 0, sigev_signo: 8, sigev_notify: 12, _tid: 16 };
  constructor() {
    super(Sigevent.SIZE);
  }
  set sigev_signo(v: number) {
    this.setU32(Sigevent.OFFSETS.sigev_signo, v);
  }
  set sigev_notify(v: number) {
    this.setU32(Sigevent.OFFSETS.sigev_notify, v);
  }
  set tid(v: number) {
    this.setU32(Sigevent.OFFSETS._tid, v);
  }
}

/** struct itimerspec (<linux/time_types.h>, 64-bit): interval, then the first expiry. */
export class Itimerspec extends StructView {
  static readonly SIZE = 32;
  static readonly OFFSETS = { it_interval: 0, it_value: 16 };
  constructor() {
    super(Itimerspec.SIZE);
  }
  /** Both the first expiry and the period, in ns (below 2^53). */
  set periodNs(ns: number) {
    for (const at of [Itimerspec.OFFSETS.it_interval, Itimerspec.OFFSETS.it_value]) {
      this.setU64n(at, Math.floor(ns / 1e9));
      this.setU64n(at + 8, ns % 1e9);
    }
  }
}

export class ThreadTimer {
  readonly #id: Deno.PointerValue;
  #deleted = false;

  /** Start sending `signal` to thread `tid` of this process every `periodMs`. */
  constructor(tid: number, signal: number, periodMs: number) {
    const ev = new Sigevent();
    ev.sigev_signo = signal;
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.tid = tid;
    const id = new BigUint64Array(1);
    check("timer_create", libc.timer_create(CLOCK_MONOTONIC, ev.bytes, new Uint8Array(id.buffer)));
    // glibc's timer_t for a signal timer is the kernel's timer id; the first one is 0 (null).
    this.#id = Deno.UnsafePointer.create(id[0]);
    const spec = new Itimerspec();
    spec.periodNs = Math.round(periodMs * 1e6);
    check("timer_settime", libc.timer_settime(this.#id, 0, spec.bytes, null));
  }

  /** Stop it; no signal comes after this returns. Safe to call more than once. */
  delete(): void {
    if (this.#deleted) return;
    this.#deleted = true;
    libc.timer_delete(this.#id);
  }
}
