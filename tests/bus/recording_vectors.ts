/**
 * An MsiVectorGroup that records what a capability asks of it, for tests of MSI and MSI-X:
 * the message each vector is routed with now, every routing change, the releases, and what
 * each trigger delivered (the routed message, as KVM would deliver it).
 */
import type { MsiMessage, MsiVectorGroup } from "../../src/bus/interrupt.ts";

/** [vector, address as one number, data]. */
export type Delivered = [vector: number, address: number, data: number];

const address = (m: MsiMessage) => m.addressHi * 2 ** 32 + m.addressLo;

export class RecordingVectors implements MsiVectorGroup {
  /** The message each vector is routed with now. */
  readonly routed = new Map<number, MsiMessage>();
  /** One entry per route() call that changed a route: the vectors it (re)routed. */
  readonly changes: Delivered[][] = [];
  releases = 0;
  /** Each trigger: the vector and its routed message ([v, -1, -1] when it had none). */
  readonly triggered: Delivered[] = [];
  /** The same with the address as its two dwords: [vector, low, high, data]. */
  readonly messages: Array<[number, number, number, number]> = [];
  /** Make route() fail (as when KVM has no route left). */
  refuse = false;

  trigger(vector: number): void {
    const m = this.routed.get(vector);
    this.triggered.push(m ? [vector, address(m), m.data] : [vector, -1, -1]);
    if (m) this.messages.push([vector, m.addressLo, m.addressHi, m.data]);
  }

  route(first: number, end: number, message: (vector: number) => MsiMessage | undefined): boolean {
    if (this.refuse) return false;
    const changed: Delivered[] = [];
    for (let v = first; v < end; v++) {
      const m = message(v);
      if (m === undefined) continue;
      const was = this.routed.get(v);
      if (
        was?.addressLo === m.addressLo && was.addressHi === m.addressHi && was.data === m.data
      ) continue;
      this.routed.set(v, { addressLo: m.addressLo, addressHi: m.addressHi, data: m.data });
      changed.push([v, address(m), m.data]);
    }
    if (changed.length > 0) this.changes.push(changed);
    return true;
  }

  release(): void {
    this.releases++;
    this.routed.clear();
  }
}
