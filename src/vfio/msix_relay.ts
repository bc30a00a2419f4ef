/**
 * MSI-X of passed-through devices, relayed on the I/O thread. VFIO signals one eventfd per
 * vector (the device's); the guest's MSI-X table lives in our shadow config space, so the
 * guest's masking is ours to honour: each signal becomes {@link Msix.trigger}, which writes
 * the vector's irqfd unless the guest masked the vector (then it stays pending in the PBA).
 *
 * @module
 */
import { EventFd } from "../../ffi/eventfd.ts";
import { PciConfigSpace } from "../pci/config_space.ts";
import { Msix } from "../pci/msix.ts";
import type { VfioMsixPlan, VfioPlan } from "./vfio_function.ts";

/** What a relay needs of a passed-through device's plan (a VfioPlan). */
export type RelayPlan = Pick<VfioPlan, "shadow" | "irqFds" | "deviceFds"> & {
  msix?: Pick<VfioMsixPlan, "state" | "vectors" | "shadowCapOffset">;
};

/** One fd for the I/O thread to poll, and what to do when it is readable. */
export interface RelayedFd {
  fd: number;
  onReadable(): void;
}

/** The relays for every passed-through device with MSI-X: one per vector. */
export function msixRelays(vfio: readonly RelayPlan[]): RelayedFd[] {
  return vfio.flatMap((v) => {
    if (!v.msix) return [];
    const irq = v.irqFds.map((fd) => new EventFd(fd));
    const msix = new Msix(
      v.msix.state,
      v.msix.vectors,
      new PciConfigSpace(v.shadow),
      v.msix.shadowCapOffset,
      {
        signal: (vector) => irq[vector]?.signal(),
      },
    );
    return v.deviceFds.map((fd, vector) => {
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
