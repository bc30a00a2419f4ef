/**
 * The VM's GSI routing table, shared by every thread. KVM_SET_GSI_ROUTING replaces the whole
 * table, so the table lives in one SharedArrayBuffer: any thread (a vCPU whose guest enables
 * MSI-X or unmasks a vector) changes entries and re-submits the lot under a lock.
 *
 * The platform's default routes (its legacy lines: on a PC, ISA IRQs 0-15 to both PICs and the
 * IOAPIC, 16-23 to the IOAPIC only) stay in every table. MSI routes take GSIs above them, as the guest makes vectors deliverable,
 * not when a device is planned: a vector gets a GSI, its route and its irqfd bound
 * (src/machine/msi_vectors.ts) when it becomes deliverable, and gives the GSI back and its
 * irqfd unbound when the guest disables MSI or MSI-X. Giving back commits nothing: the route
 * stays in KVM's table, unreachable with no irqfd on its GSI, until the next change rewrites
 * the table without it (or with the GSI's next owner). KVM's limit
 * (KVM_CAP_IRQ_ROUTING: KVM_MAX_IRQ_ROUTES, 4096 on current x86 kernels, 1024 on old ones)
 * bounds both the GSI numbers and the table's entries, the 40 default ones included; a vector
 * enabled past it gets no route and one log line, and the VM goes on.
 *
 * @example
 * ```ts
 * const router = new GsiRouter(GsiRouter.createState(vm.checkExtension(KVM_CAP.IRQ_ROUTING)), vm);
 * const gsis = new Int32Array(new SharedArrayBuffer(4 * irqFds.length));
 * router.update(gsis, irqFds, "dev", 0, 1, () => ({ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }));
 * router.release(gsis, irqFds, "dev"); // vector 0's GSI back, its irqfd unbound
 * ```
 */
import type { VmFd } from "../../ffi/kvm_fds.ts";
import { errnoName } from "../../ffi/libc.ts";
import { KvmIrqRouting } from "../../ffi/kvm_irq_structs.ts";
import { wiring } from "./arch.ts";
import { type CauseLog, rateLimitedLog } from "../log.ts";
import type { MsiMessage } from "../bus/interrupt.ts";
import { spinLock, spinUnlock } from "../spin_lock.ts";

const DEFAULTS = wiring.defaultGsiRoutes;
/** Whether routes name their sender (KVM_MSI_VALID_DEVID: an arm64 ITS needs it). */
const MSI_DEVID = wiring.msiDevid;
export const FIRST_MSI_GSI = wiring.firstMsiGsi;
/** Table entries the platform's default routes take (40 on a PC: ISA IRQs on two chips each). */
export const DEFAULT_ROUTES = DEFAULTS.length;
/** KVM_MAX_IRQ_ROUTES of kernels whose KVM_CAP_IRQ_ROUTING says only "yes". */
export const FALLBACK_MAX_ROUTES = 1024;
/** The most routes we keep state for, whatever KVM allows (20 bytes of shared state each). */
const MAX_ROUTES_KEPT = 16384;

/** What the router asks of the VM (a VmFd; a fake in tests). */
export type RouterVm = Pick<VmFd, "trySetGsiRouting" | "tryIrqfd">;

// Shared state (Int32): a header, then 5 words per GSI below the limit.
const LOCK = 0;
const LIMIT = 1; // KVM_MAX_IRQ_ROUTES: entries in a table, and GSI numbers below it
const ROUTED = 2; // MSI routes in the table now
const NEXT = 3; // where the search for a free GSI starts
const COMMITS = 4; // KVM_SET_GSI_ROUTING calls made, by every thread (--debug prints it)
const HEADER = 8;
const GSI_WORDS = 5; // in use, address low, address high, data, requester ID

export class GsiRouter {
  readonly #s: Int32Array;
  #routing: KvmIrqRouting | undefined;

  /**
   * The state for a VM whose KVM allows `maxRoutes` routes (what KVM_CAP_IRQ_ROUTING says;
   * 1 or less means an old kernel that only says it has routing: 1024).
   */
  static createState(maxRoutes: number): SharedArrayBuffer {
    const limit = Number.isInteger(maxRoutes) && maxRoutes > 1
      ? Math.min(Math.max(maxRoutes, DEFAULT_ROUTES + 1), MAX_ROUTES_KEPT)
      : FALLBACK_MAX_ROUTES;
    const state = new SharedArrayBuffer((HEADER + limit * GSI_WORDS) * 4);
    const s = new Int32Array(state);
    s[LIMIT] = limit;
    s[NEXT] = FIRST_MSI_GSI;
    return state;
  }

  constructor(
    state: SharedArrayBuffer,
    private readonly vm: RouterVm,
    private readonly log: CauseLog = rateLimitedLog,
  ) {
    this.#s = new Int32Array(state);
  }

  /** MSI routes the table can take, in all. */
  capacity(): number {
    return Math.min(this.#s[LIMIT] - DEFAULT_ROUTES, this.#s[LIMIT] - FIRST_MSI_GSI);
  }

  /** KVM_SET_GSI_ROUTING calls made so far, by any thread. */
  commits(): number {
    return Atomics.load(this.#s, COMMITS);
  }

  /** MSI routes in the table now. */
  routed(): number {
    return Atomics.load(this.#s, ROUTED);
  }

  /**
   * Make vectors [first, end) of one device match `want`: a message routes the vector
   * (a fresh GSI, its route, its irqfd bound, when it has none), undefined leaves it as it
   * is. One KVM_SET_GSI_ROUTING for the lot, and only if something changed. Returns false
   * when a vector could not get a route (none left, or KVM refused), after one log line;
   * whatever could not be done is left as it was, and asking again later may succeed.
   */
  update(
    gsis: Int32Array,
    irqFds: readonly number[],
    name: string,
    first: number,
    end: number,
    want: (vector: number) => MsiMessage | undefined,
    devid = 0,
  ): boolean {
    const s = this.#s;
    let ok = true;
    spinLock(s, LOCK);
    try {
      // What to undo if KVM refuses the table: [gsi, its words, vector, its old GSI].
      const journal: number[] = [];
      const bind: number[] = []; // vector, gsi
      for (let v = first; v < end; v++) {
        const m = want(v);
        if (m === undefined) continue;
        let gsi = gsis[v];
        const lo = m.addressLo | 0, hi = m.addressHi | 0;
        const data = m.data | 0;
        if (gsi === 0) {
          gsi = this.#freeGsi();
          if (gsi === 0) {
            ok = false;
            this.log.log(
              `${name} routes`,
              `${name}: no MSI route left for vector ${v}: KVM allows ${s[LIMIT]} routes and ` +
                `${s[ROUTED]} MSI routes are in use; the vector delivers nothing until one is free`,
            );
            continue;
          }
          this.#note(journal, gsi, v, 0);
          s[ROUTED]++;
          gsis[v] = gsi;
          bind.push(v, gsi);
        } else {
          const at = HEADER + gsi * GSI_WORDS;
          if (s[at + 1] === lo && s[at + 2] === hi && s[at + 3] === data && s[at + 4] === devid) {
            continue;
          }
          this.#note(journal, gsi, v, gsi);
        }
        const at = HEADER + gsi * GSI_WORDS;
        s[at] = 1;
        s[at + 1] = lo;
        s[at + 2] = hi;
        s[at + 3] = data;
        s[at + 4] = devid;
      }
      if (journal.length === 0) return ok;
      const e = this.#commit();
      if (e !== 0) {
        this.#undo(journal, gsis);
        this.log.log(
          `${name} routing`,
          `${name}: KVM_SET_GSI_ROUTING failed: ${
            errnoName(e)
          }; the guest's MSI change is not applied`,
        );
        return false;
      }
      let dropped = false;
      for (let i = 0; i < bind.length; i += 2) {
        const [v, gsi] = [bind[i], bind[i + 1]];
        const e = this.vm.tryIrqfd(irqFds[v], gsi);
        if (e === 0) continue;
        this.log.log(`${name} irqfd`, `${name}: KVM_IRQFD failed: ${errnoName(e)}`);
        s[HEADER + gsi * GSI_WORDS] = 0;
        s[ROUTED]--;
        gsis[v] = 0;
        dropped = true;
        ok = false;
      }
      if (dropped) this.#commit();
      return ok;
    } finally {
      spinUnlock(s, LOCK);
    }
  }

  /**
   * Give back every GSI of one device's vectors and unbind their irqfds (the guest disabled
   * MSI or MSI-X). No KVM_SET_GSI_ROUTING: with no irqfd on it a stale route is never used,
   * and the next commit leaves it out.
   */
  release(gsis: Int32Array, irqFds: readonly number[], name: string): void {
    const s = this.#s;
    spinLock(s, LOCK);
    try {
      for (let v = 0; v < gsis.length; v++) {
        const gsi = gsis[v];
        if (gsi === 0) continue;
        s[HEADER + gsi * GSI_WORDS] = 0;
        s[ROUTED]--;
        gsis[v] = 0;
        const e = this.vm.tryIrqfd(irqFds[v], gsi, { deassign: true });
        if (e !== 0) {
          this.log.log(`${name} irqfd`, `${name}: KVM_IRQFD (unbind) failed: ${errnoName(e)}`);
        }
      }
    } finally {
      spinUnlock(s, LOCK);
    }
  }

  /** A free GSI, or 0 when the table or the GSI numbers are full. Caller holds the lock. */
  #freeGsi(): number {
    const s = this.#s;
    if (s[ROUTED] >= this.capacity()) return 0;
    const limit = s[LIMIT];
    for (let n = 0, g = s[NEXT]; n < limit - FIRST_MSI_GSI; n++, g++) {
      if (g >= limit) g = FIRST_MSI_GSI;
      if (s[HEADER + g * GSI_WORDS] === 0) {
        s[NEXT] = g + 1 >= limit ? FIRST_MSI_GSI : g + 1;
        return g;
      }
    }
    return 0;
  }

  #note(journal: number[], gsi: number, vector: number, oldGsi: number): void {
    const at = HEADER + gsi * GSI_WORDS;
    const s = this.#s;
    journal.push(gsi, s[at], s[at + 1], s[at + 2], s[at + 3], s[at + 4], vector, oldGsi);
  }

  /** Put back what `journal` noted, last change first. Caller holds the lock. */
  #undo(journal: number[], gsis: Int32Array): void {
    const s = this.#s;
    const step = 3 + GSI_WORDS;
    for (let i = journal.length - step; i >= 0; i -= step) {
      const at = HEADER + journal[i] * GSI_WORDS;
      s[ROUTED] += journal[i + 1] - s[at];
      for (let w = 0; w < GSI_WORDS; w++) s[at + w] = journal[i + 1 + w];
      gsis[journal[i + 1 + GSI_WORDS]] = journal[i + 2 + GSI_WORDS];
    }
  }

  /** Submit the default routes plus every MSI route; returns 0 or the errno. Lock held. */
  #commit(): number {
    const s = this.#s;
    const need = DEFAULT_ROUTES + s[ROUTED];
    if (this.#routing === undefined || this.#routing.capacity < need) {
      this.#routing = new KvmIrqRouting(Math.max(64, 2 ** Math.ceil(Math.log2(need))));
    }
    const r = this.#routing;
    let n = 0;
    for (const d of DEFAULTS) r.setIrqchip(n++, d.gsi, d.chip, d.pin);
    const limit = s[LIMIT];
    for (let gsi = FIRST_MSI_GSI; gsi < limit; gsi++) {
      const at = HEADER + gsi * GSI_WORDS;
      if (s[at] !== 1) continue;
      const devid = MSI_DEVID ? s[at + 4] : undefined;
      r.setMsi(n++, gsi, s[at + 1] >>> 0, s[at + 2] >>> 0, s[at + 3] >>> 0, devid);
    }
    r.nr = n;
    Atomics.add(s, COMMITS, 1);
    return this.vm.trySetGsiRouting(r);
  }
}
