/**
 * Every kind of virtio device, by the `type` its back-end plans carry: how the I/O thread, which
 * knows no device by name, opens the back-end a plan asks for.
 *
 * @module
 */
import type { BackendHost, BackendPlan, OpenedBackend, VirtioDevice } from "./device.ts";
import { virtioBlk } from "./blk.ts";
import { virtioConsole } from "./console.ts";
import { virtioNet } from "./net.ts";
import { virtioRng } from "./rng.ts";

/** The devices there are, keyed by their `type`. */
export const virtioDeviceTypes: ReadonlyMap<string, VirtioDevice<never>> = new Map(
  [virtioBlk, virtioNet, virtioConsole, virtioRng].map((d) => [d.type, d]),
);

/** Open the back-end `plan` describes with the device that made it. */
export function openBackend(plan: BackendPlan, host: BackendHost): OpenedBackend {
  const device = virtioDeviceTypes.get(plan.type);
  if (device === undefined) throw new TypeError(`no virtio device of type "${plan.type}"`);
  return device.open(plan, host);
}
