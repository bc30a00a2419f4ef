/**
 * From the command line's device options to virtio device requests, in the order the guest
 * finds them (disks, taps, the console, rng). Each device describes itself (virtio/*.ts); its
 * `describe` opens what it needs on the host, so a bad path or tap fails before the guest starts.
 */
import type { VirtioDeviceRequest } from "./pci_devices.ts";
import { type DiskOption, virtioBlk } from "../virtio/blk.ts";
import { type NetOption, virtioNet } from "../virtio/net.ts";
import { virtioConsole, type VirtioConsoleIo } from "../virtio/console.ts";
import { virtioRng } from "../virtio/rng.ts";

export function virtioRequests(
  disks: DiskOption[],
  rng: boolean,
  nets: NetOption[] = [],
  console?: VirtioConsoleIo,
): VirtioDeviceRequest[] {
  return [
    ...disks.map((d, i) => virtioBlk.describe(d, i)),
    ...nets.map((n, i) => virtioNet.describe(n, i)),
    ...(console ? [virtioConsole.describe(console, 0)] : []),
    ...(rng ? [virtioRng.describe(undefined, 0)] : []),
  ];
}
