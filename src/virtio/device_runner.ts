/**
 * One virtio device as the I/O Worker runs it: its queues, built from the transport's registers
 * when the driver enables them, served when the driver notifies or the host source has data,
 * and interrupts raised for what was used. It knows neither KVM nor eventfds: the Worker gives
 * it the function's MSI-X vector group and its INTx line (src/bus/interrupt.ts).
 *
 * The rules it keeps (virtio 1.2):
 * - Queues are served only while the device is live: DRIVER_OK set (§3.1.1), not
 *   DEVICE_NEEDS_RESET, no reset pending.
 * - A {@link DeviceFault} marks the device NEEDS_RESET with a configuration interrupt and one
 *   log line (§2.1.2); it then stays quiet until the driver resets it (device_fault.ts).
 * - Work is bounded per call ({@link CHAIN_BUDGET}, {@link BYTE_BUDGET}): a call that stops at
 *   its budget returns true and the Worker comes back after the other devices had their turn,
 *   so one queue cannot starve the rest.
 * - A reset the driver writes while the runner is inside the queues waits until it leaves them
 *   (VirtioPciState.enterWorker/leaveWorker): the status reads 0 only once nothing more will be
 *   written to guest memory.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { PCI_COMMAND_INTX_DISABLE, PciConfigSpace } from "../pci/config_space.ts";
import { Msix } from "../pci/msix.ts";
import type { IrqLine, MsiVectorGroup } from "../bus/interrupt.ts";
import { logRateLimited } from "../log.ts";
import { DeviceFault } from "./device_fault.ts";
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_NO_VECTOR, VirtioPciState } from "./pci_state.ts";
import type { VirtioPciPlan } from "./pci_transport.ts";
import { type DescriptorChain, SplitQueue } from "./queue.ts";

/** ISR bits (§4.1.4.5). */
const ISR_QUEUE = 1;
const ISR_CONFIG = 2;

/** Chains one call serves on one queue at most before the other queues get a turn. */
export const CHAIN_BUDGET = 64;
/** Bytes (the chains' buffer lengths) one call serves at most, after its first chain. */
export const BYTE_BUDGET = 8 * 1024 * 1024;

/**
 * What a receive-side fill achieved: "starved" (the queue has no buffers: wait for the driver's
 * notify), "idle" (the host source is empty), "more" (the budget ran out with work left).
 */
export type FillResult = "starved" | "idle" | "more";

/**
 * A device model behind the transport: what it does with each queue. (The device as a whole,
 * its self-description and how its back-end opens, is a VirtioDevice: device.ts.)
 */
export interface QueueHandler {
  /** Serve one chain the driver made available on request queue `queue`; returns the bytes
   * written into it. Throws DeviceFault when the chain cannot even be answered. */
  handle(queue: number, chain: DescriptorChain): number;
  /** Queues the device fills on its own from a host source (net and console receive). */
  isFillQueue?(queue: number): boolean;
  /** Move what the host source has into the queue's buffers, `budget` chains at most. */
  fill?(queue: number, q: SplitQueue, budget: number): FillResult;
}

export class DeviceRunner {
  readonly config: PciConfigSpace;
  readonly state: VirtioPciState;
  readonly msix: Msix;
  readonly name: string;
  #queues: Array<SplitQueue | undefined> = [];
  #generation = -1;

  /** Told when a fill queue runs out of buffers or gets some again (net: stop polling the tap). */
  onFillStarved: (queue: number, starved: boolean) => void = () => {};

  constructor(
    plan: VirtioPciPlan,
    private readonly mem: GuestMemory,
    private readonly device: QueueHandler,
    vectors: MsiVectorGroup,
    /** INTA#: raised here, lowered by the driver's ISR read (on a vCPU thread). */
    private readonly intx: IrqLine,
  ) {
    this.name = plan.name;
    this.config = new PciConfigSpace(plan.pciState);
    this.state = new VirtioPciState(plan.virtioState);
    this.msix = new Msix(plan.msix, this.config, vectors);
  }

  /** Catch up with resets, DRIVER_OK and enabled queues; serve each enabled queue once.
   * Returns whether work is left for another turn. */
  sync(): boolean {
    let more = false;
    for (let q = 0; q < this.state.numQueues; q++) more = this.#inQueues(q) || more;
    return more;
  }

  /** The driver notified queue `q`, or its host source has data: serve it once. Returns whether
   * work is left for another turn. */
  process(q: number): boolean {
    return this.#inQueues(q);
  }

  /** Serve queue `q` inside the Worker's bracket; the one place device faults are caught. */
  #inQueues(q: number): boolean {
    const gen = this.state.enterWorker();
    try {
      if (gen !== this.#generation) {
        this.#generation = gen;
        this.#queues = [];
      }
      if (!this.state.live) return this.#idle(q);
      return this.#serve(q);
    } catch (e) {
      if (!(e instanceof DeviceFault)) throw e;
      this.#broken(e);
      return false;
    } finally {
      this.state.leaveWorker();
    }
  }

  #queue(q: number): SplitQueue | undefined {
    let queue = this.#queues[q];
    if (queue === undefined && this.state.queueEnabled(q)) {
      queue = new SplitQueue(this.mem, {
        ...this.state.queueAddresses(q),
        eventIdx: (this.state.negotiatedFeatures & VIRTIO_F_RING_EVENT_IDX) !== 0n,
      });
      this.#queues[q] = queue;
    }
    return queue;
  }

  #serve(q: number): boolean {
    const queue = this.#queue(q);
    if (queue === undefined) return this.#idle(q);
    if (this.device.isFillQueue?.(q)) {
      const result = this.device.fill!(q, queue, CHAIN_BUDGET);
      this.onFillStarved(q, result === "starved");
      this.#usedInterrupt(q, queue);
      return result === "more";
    }
    let chains = 0;
    let bytes = 0;
    let more = false;
    for (;;) {
      const chain = queue.pop();
      if (chain === undefined) {
        if (queue.armAvailEvent()) continue; // chains came in before avail_event moved
        break;
      }
      queue.pushUsed(chain.head, this.device.handle(q, chain));
      // The driver asked for a reset meanwhile (held until we leave): take nothing more.
      if (!this.state.live) break;
      bytes += chain.readableBytes + chain.writableBytes;
      if (++chains >= CHAIN_BUDGET || bytes >= BYTE_BUDGET) {
        more = true; // avail_event stays where it was: we come back without a notify
        break;
      }
    }
    this.#usedInterrupt(q, queue);
    return more;
  }

  /** Nothing to serve on `q`: a fill queue's source need not be watched until that changes. */
  #idle(q: number): false {
    if (this.device.isFillQueue?.(q)) this.onFillStarved(q, true);
    return false;
  }

  #usedInterrupt(q: number, queue: SplitQueue): void {
    if (queue.needsNotification()) this.#interrupt(this.state.queueVector(q), ISR_QUEUE);
  }

  /** §2.1.2: the device is broken until the driver resets it; one line says why. */
  #broken(e: Error): void {
    logRateLimited(`${this.name}: needs reset`, `${this.name}: ${e.message}; device needs reset`);
    this.#queues = [];
    this.state.markNeedsReset();
    this.#interrupt(this.state.configVector, ISR_CONFIG);
  }

  /** MSI-X when the driver enabled it (§4.1.5.1.2), else ISR plus INTx (§4.1.4.5). */
  #interrupt(vector: number, isr: number): void {
    if (this.msix.enabled()) {
      this.state.raiseIsr(isr);
      if (vector !== VIRTIO_NO_VECTOR) this.msix.trigger(vector);
      return;
    }
    const intxOff = (this.config.command() & PCI_COMMAND_INTX_DISABLE) !== 0;
    this.state.raiseIsr(isr, intxOff ? undefined : () => this.intx.setLevel(true));
  }
}
