/**
 * Whether this thread's event loop has something to do, asked without giving it a turn.
 *
 * Deno's event loop on a thread waits in one epoll instance (tokio's I/O driver) for everything
 * that can wake it from outside the thread: tokio's waker, an eventfd that another thread
 * writes when it wakes one of this thread's tasks (a Worker's message, the end of a read of
 * stdin on the blocking pool, a signal Deno's signal thread saw), and tokio's signal socket.
 * While the thread runs something else, nothing waits in that instance, so whatever woke it
 * stays on its ready list, and `poll(2)` on the epoll descriptor itself says POLLIN without
 * taking the events (checked natively and in the sandbox: a signal, a Worker's message and
 * stdin each made it readable; an idle loop and a due timer did not). Timers are not seen: the
 * loop computes its wait from them, they wake nothing.
 *
 * The waker's count is read here, not left to the loop. A loop that always has a task ready
 * when a turn ends (the boot vCPU's turn is a MessageChannel's message) never waits in the
 * epoll instance at all: strace of a whole sandbox boot showed no `epoll_wait` on the main
 * thread, 7 writes to the waker, and a probe that said "work" at every tick from the first
 * write on, since tokio never reads the eventfd (its event only ends a wait) and an eventfd
 * with a count is readable for good. Reading it takes nothing from tokio: the woken tasks are
 * marked in memory, which the next turn polls, and a write after the read is a new edge for a
 * loop that does wait. The poll then sees only what is really pending on the other members.
 *
 * The boot vCPU (../src/machine/boot_vcpu.ts) asks between exits, so that a guest busy with
 * exits gives the event loop a turn only when it has work.
 *
 * The descriptors are found through /proc/self/fd ("anon_inode:[eventpoll]") and the epoll
 * instances' /proc/self/fdinfo (their members, the eventfds among them) by `ofThisThread`,
 * which must run before this process starts a Worker: each Worker has an event loop (and epoll
 * instance) of its own, and a vCPU Worker's, never waited on, would look busy forever.
 *
 * @module
 */
import { cString, libc, O_CLOEXEC, O_NONBLOCK, O_RDONLY, POLLIN } from "./libc.ts";
import { PollFds } from "./pollfd.ts";

/** What /proc/self/fd/N links to for an epoll instance, and for an eventfd. */
const EVENTPOLL = new TextEncoder().encode("anon_inode:[eventpoll]");
const EVENTFD = new TextEncoder().encode("anon_inode:[eventfd]");
/** Descriptors not open in a row that end the search. */
const MISSES = 8;

export class EventLoopProbe {
  readonly #set: PollFds;
  /** An eventfd's count, read into. */
  readonly #count = new Uint8Array(8);

  /** `fds`: the epoll instances; `wakers`: the eventfds among their members. */
  constructor(readonly fds: readonly number[], readonly wakers: readonly number[] = []) {
    this.#set = new PollFds(fds, POLLIN);
  }

  /**
   * The epoll descriptors open in this process now, which before any Worker are the main
   * thread's event loop's, and their eventfd members; undefined where there are none to be
   * found (no /proc). Descriptors are tried from 0 up until `MISSES` in a row are not open: a
   * libc `readlink` each (a few µs), where listing /proc/self/fd with Deno's file ops cost 2 ms
   * natively, on the way to the guest's first instruction.
   */
  static ofThisThread(): EventLoopProbe | undefined {
    const fds: number[] = [];
    const eventfds = new Set<number>();
    const link = new Uint8Array(EVENTPOLL.length + 1);
    const is = (n: number | bigint, want: Uint8Array) =>
      Number(n) === want.length && want.every((b, i) => link[i] === b);
    let misses = 0;
    for (let fd = 0; misses < MISSES; fd++) {
      const n = libc.readlink(cString(`/proc/self/fd/${fd}`), link, BigInt(link.length));
      if (n < 0) {
        misses++;
        continue;
      }
      misses = 0;
      if (is(n, EVENTPOLL)) fds.push(fd);
      else if (is(n, EVENTFD)) eventfds.add(fd);
    }
    if (fds.length === 0) return undefined;
    // Only the instances' own members: the process's other eventfds (a device's irqfd, say)
    // are not the loop's to read. And only non-blocking ones (tokio's is): a read must never
    // wait, and an epoll instance a parent left open could hold any eventfd.
    const wakers = new Set<number>();
    for (const fd of fds) {
      for (const tfd of epollMembers(fd)) {
        if (eventfds.has(tfd) && (fdFlags(tfd) & O_NONBLOCK) !== 0) wakers.add(tfd);
      }
    }
    return new EventLoopProbe(fds, [...wakers]);
  }

  /**
   * Whether something woke the event loop since the last look (a failing poll says yes). The
   * wakers' counts are taken here, so a wake-up is reported once; its task stays woken until
   * the turn that follows serves it.
   */
  ready(): boolean {
    const woken = this.settle();
    return libc.poll(this.#set.bytes, this.#set.nfds, 0) !== 0 || woken;
  }

  /**
   * Takes the wakers' counts: whether there were any. Called as a turn ends, it forgets the
   * loop's wake-ups of itself: a turn's own timer wrote the waker twice, once after the loop's
   * last wait (strace in the sandbox), and the next tick saw work that was not there.
   */
  settle(): boolean {
    let woken = false;
    for (const fd of this.wakers) if (libc.read(fd, this.#count, 8n) > 0) woken = true;
    return woken;
  }
}

/** The descriptors in an epoll instance: its /proc/self/fdinfo's `tfd:` lines. */
export function epollMembers(epfd: number): number[] {
  return [...fdInfo(epfd).matchAll(/^tfd:\s*(\d+)/gm)].map((m) => Number(m[1]));
}

/** A descriptor's open flags (O_NONBLOCK and the like): its /proc/self/fdinfo's `flags:`, octal. */
function fdFlags(fd: number): number {
  const m = /^flags:\s*([0-7]+)/m.exec(fdInfo(fd));
  return m ? parseInt(m[1], 8) : 0;
}

/** /proc/self/fdinfo/FD's text, read with libc ("" where it cannot be read). */
function fdInfo(target: number): string {
  const fd = libc.open(cString(`/proc/self/fdinfo/${target}`), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return "";
  const buf = new Uint8Array(16384);
  let len = 0;
  try {
    for (;;) {
      const n = Number(libc.read(fd, buf.subarray(len), BigInt(buf.length - len)));
      if (n <= 0) break;
      len += n;
    }
  } finally {
    libc.close(fd);
  }
  return new TextDecoder().decode(buf.subarray(0, len));
}
