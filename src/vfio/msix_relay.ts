/**
 * MSI-X of passed-through devices, relayed on the I/O thread. VFIO signals one eventfd per
 * vector (the device's); the guest's MSI-X table lives in our shadow config space, so the
 * guest's masking is ours to honour: each signal becomes {@link Msix.trigger}, which raises the
 * vector in the function's vector group unless the guest masked the vector (then it stays
 * pending in the PBA).
 *
 * @module
 */
import { EventFd } from "../../ffi/eventfd.ts";
import { PciConfigSpace } from "../pci/config_space.ts";
import { Msix } from "../pci/msix.ts";
import type { MsiVectorGroup, MsiVectorsPlan } from "../bus/interrupt.ts";
import type { VfioPlan } from "./vfio_function.ts";

/** What a relay needs of a passed-through device's plan (a VfioPlan). */
export type RelayPlan = Pick<VfioPlan, "shadow" | "msix" | "interrupts">;

/** One fd for the I/O thread to poll, and what to do when it is readable. */
export interface RelayedFd {
  fd: number;
  onReadable(): void;
}

/**
 * The relays for every passed-through device with MSI-X: one per vector. `attach` gives this
 * thread's view of a function's vector group (the machine's: irqfds and routes).
 */
export function msixRelays(
  vfio: readonly RelayPlan[],
  attach: (vectors: MsiVectorsPlan) => MsiVectorGroup,
): RelayedFd[] {
  return vfio.flatMap((v) => {
    const irq = v.interrupts.msix;
    if (!v.msix || !irq) return [];
    const msix = new Msix(v.msix, new PciConfigSpace(v.shadow), attach(irq.vectors));
    return irq.deviceFds.map((fd, vector) => {
      const ev = new EventFd(fd);
      return {
        fd,
        onReadable: () => {
          if (ev.drain() > 0) msix.trigger(vector);
        },
      };
    });
  });
}
