/**
 * What a virtio device does when the guest gets something wrong: the one policy, written here
 * once (the I/O Worker's {@link DeviceRunner} carries it out). The guest is hostile; nothing it
 * does may end the VM.
 *
 * - A malformed queue, or a request the device cannot even answer (no status byte): the device
 *   throws a {@link DeviceFault}. The runner sets DEVICE_NEEDS_RESET, raises a configuration
 *   interrupt and logs one line (virtio 1.2 §2.1.2); the device then serves nothing until the
 *   driver resets it.
 * - A request that is wrong but answerable (a sector past the disk, a request over the limits
 *   the device advertises, a host I/O error or a full disk): it completes with the device's
 *   error status, and the disk is not touched.
 * - Data the host side cannot take (a tap that is down or deleted, a frame the tap refuses,
 *   console output past the per-buffer cap): dropped and counted, with at most one log line per
 *   cause per second (src/log.ts).
 * - Anything else thrown is a bug in denovmm: it ends the VM with one line (the stack with
 *   --debug), never silently.
 *
 * @module
 */

/** The guest left the device unable to go on: DEVICE_NEEDS_RESET (§2.1.2). */
export class DeviceFault extends Error {
  override name = "DeviceFault";
}
