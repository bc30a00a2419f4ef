/**
 * A signal whose only effect is to interrupt a blocking system call (EINTR): the boot vCPU's
 * tick (../src/machine/boot_vcpu.ts) and the stop kick (../src/machine/vcpu_stop.ts) use it
 * to end a KVM_RUN in progress. A signal whose action is to be ignored is discarded before it
 * could interrupt anything, so it needs a handler; but `Deno.addSignalListener` routes every
 * delivery through Deno's signal machinery (a write to a self-pipe, a wake-up of the event
 * loop's driver, a JavaScript callback) only to do nothing. The tick comes 50 times a second
 * whatever the guest does: measured natively (a 1 ms tick interrupting `poll`, CPU time of the
 * process), Deno's listener costs about 30 µs a delivery more than a plain handler, and under
 * the sandbox's emulated CPU that showed as a millisecond or two of every tick (the exit
 * bench's tail: scripts/bench/exit_phases.sh).
 *
 * So the handler installed here is a C function that does nothing observable: libc's
 * `getpid`, found with `dlsym`. The kernel calls it with the signal's number, which it
 * ignores; it is async-signal-safe. No SA_RESTART: the interrupted call returns EINTR.
 *
 * @module
 */
import { check, cString, libc } from "./libc.ts";
import { StructView } from "./struct_view.ts";

const SIG_DFL = 0n;
const SIG_IGN = 1n;

/** glibc's struct sigaction (<bits/sigaction.h>, the same on x86-64 and arm64): 152 bytes. */
export class Sigaction extends StructView {
  static readonly SIZE = 152;
  static readonly OFFSETS = { sa_handler: 0, sa_mask: 8, sa_flags: 136, sa_restorer: 144 };
  constructor() {
    super(Sigaction.SIZE);
  }
  get sa_handler(): bigint {
    return this.u64(Sigaction.OFFSETS.sa_handler);
  }
  set sa_handler(v: bigint) {
    this.setU64(Sigaction.OFFSETS.sa_handler, v);
  }
  get sa_flags(): number {
    return this.u32(Sigaction.OFFSETS.sa_flags);
  }
}

/** The address of a C function that ignores its argument and has no effect (see above). */
function noopHandler(): bigint {
  // RTLD_DEFAULT is a null handle in glibc.
  const p = libc.dlsym(null, cString("getpid"));
  if (p === null) throw new Error("dlsym found no getpid in libc");
  return Deno.UnsafePointer.value(p);
}

/**
 * Makes `signal` interrupt blocking calls on whichever thread it is sent to, and do nothing
 * else. Process-wide (a signal's action is the process's); a handler already there (one of
 * Deno's listeners, say) is left as it is, since it interrupts as well. Returns whether this
 * call installed the handler.
 */
export function interruptOnly(signal: number): boolean {
  const old = new Sigaction();
  check("sigaction", libc.sigaction(signal, null, old.bytes));
  if (old.sa_handler !== SIG_DFL && old.sa_handler !== SIG_IGN) return false;
  const act = new Sigaction();
  act.sa_handler = noopHandler();
  check("sigaction", libc.sigaction(signal, act.bytes, null));
  return true;
}

/** The handler `signal` has now (tests). */
export function signalHandler(signal: number): bigint {
  const now = new Sigaction();
  check("sigaction", libc.sigaction(signal, null, now.bytes));
  return now.sa_handler;
}
