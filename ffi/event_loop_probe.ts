/**
 * Whether this thread's event loop has something to do, asked without giving it a turn.
 *
 * Deno's event loop on a thread waits in one epoll instance (tokio's driver) for everything
 * that can wake it: a stop signal (Deno's handler writes to a pipe in it), a Worker's message,
 * the end of a read of stdin (both wake it through an eventfd in it). While the thread runs
 * something else, nothing waits in that instance, so whatever woke it stays on its ready list,
 * and `poll(2)` on the epoll descriptor itself says POLLIN without taking the events (checked
 * natively and in the sandbox: a signal, a Worker's message and stdin each made it readable
 * until the next turn; an idle loop and a due timer did not). Timers are not seen: the loop
 * computes its wait from them, they wake nothing.
 *
 * The boot vCPU (../src/machine/boot_vcpu.ts) asks between exits, so that a guest busy with
 * exits gives the event loop a turn only when it has work.
 *
 * The descriptors are found through /proc/self/fd ("anon_inode:[eventpoll]") by `ofThisThread`,
 * which must run before this process starts a Worker: each Worker has an event loop (and epoll
 * instance) of its own, and a vCPU Worker's, never waited on, would look busy forever.
 *
 * @module
 */
import { cString, libc, POLLIN } from "./libc.ts";
import { PollFds } from "./pollfd.ts";

/** What /proc/self/fd/N links to for an epoll instance. */
const EVENTPOLL = new TextEncoder().encode("anon_inode:[eventpoll]");
/** Descriptors not open in a row that end the search. */
const MISSES = 8;

export class EventLoopProbe {
  readonly #set: PollFds;

  constructor(readonly fds: readonly number[]) {
    this.#set = new PollFds(fds, POLLIN);
  }

  /**
   * The epoll descriptors open in this process now, which before any Worker are the main
   * thread's event loop's; undefined where there are none to be found (no /proc). Descriptors
   * are tried from 0 up until `MISSES` in a row are not open: a libc `readlink` each (a few
   * µs), where listing /proc/self/fd with Deno's file ops cost 2 ms natively, on the way to
   * the guest's first instruction.
   */
  static ofThisThread(): EventLoopProbe | undefined {
    const fds: number[] = [];
    const link = new Uint8Array(EVENTPOLL.length + 1);
    let misses = 0;
    for (let fd = 0; misses < MISSES; fd++) {
      const n = Number(libc.readlink(cString(`/proc/self/fd/${fd}`), link, BigInt(link.length)));
      if (n < 0) {
        misses++;
        continue;
      }
      misses = 0;
      if (n === EVENTPOLL.length && EVENTPOLL.every((b, i) => link[i] === b)) fds.push(fd);
    }
    return fds.length > 0 ? new EventLoopProbe(fds) : undefined;
  }

  /** Whether something woke the event loop since its last wait (a failing poll says yes). */
  ready(): boolean {
    return libc.poll(this.#set.bytes, this.#set.nfds, 0) !== 0;
  }
}
