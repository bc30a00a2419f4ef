/**
 * Linux tap devices (<linux/if_tun.h>): open /dev/net/tun and attach to (or create) a tap
 * interface that carries a virtio-net header in front of every frame.
 */
import { check, cString, errno, libc, O_CLOEXEC, O_RDWR, strerror } from "./libc.ts";
import { _IOW } from "./ioctl.ts";
import { EBUSY, EINVAL, EPERM } from "./errno.ts";

const TUN_TYPE = "T".charCodeAt(0);
const INT_SIZE = 4;
export const TUNSETIFF = _IOW(TUN_TYPE, 202, INT_SIZE);
export const TUNSETOFFLOAD = _IOW(TUN_TYPE, 208, INT_SIZE);
export const TUNSETVNETHDRSZ = _IOW(TUN_TYPE, 216, INT_SIZE);
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** struct ifreq: char ifr_name[IFNAMSIZ]; then a union whose first member is short flags. */
export const IFREQ_SIZE = 40;
export const IFNAMSIZ = 16;
const O_NONBLOCK = 0o4000;

export class TapError extends Error {
  override name = "TapError";
}

/** Open the tap `name` (created if missing; "" lets the kernel pick) and return fd and name. */
export function openTap(name: string, vnetHeaderBytes: number): { fd: number; name: string } {
  if (new TextEncoder().encode(name).length >= IFNAMSIZ) {
    throw new TapError(`tap name "${name}" is longer than ${IFNAMSIZ - 1} bytes`);
  }
  const fd = libc.open(cString("/dev/net/tun"), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    throw new TapError(
      `cannot open /dev/net/tun: ${strerror(errno())} (is the tun module loaded?)`,
    );
  }
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(new TextEncoder().encode(name));
  new DataView(ifr.buffer).setInt16(IFNAMSIZ, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
  if (libc.ioctl(fd, BigInt(TUNSETIFF), Deno.UnsafePointer.of(ifr)) < 0) {
    const e = errno();
    libc.close(fd);
    const hint = e === EPERM
      ? " (needs root or CAP_NET_ADMIN)"
      : e === EINVAL
      ? " (an interface of that name exists and is not a tap)"
      : e === EBUSY
      ? " (another program has it open)"
      : "";
    throw new TapError(`cannot create tap "${name || "(any)"}": ${strerror(e)}${hint}`);
  }
  const arg = new Int32Array([vnetHeaderBytes]);
  check("TUNSETVNETHDRSZ", libc.ioctl(fd, BigInt(TUNSETVNETHDRSZ), Deno.UnsafePointer.of(arg)));
  // No offloads: the host kernel hands over and takes only complete, checksummed frames.
  check("TUNSETOFFLOAD", libc.ioctl_int(fd, BigInt(TUNSETOFFLOAD), 0n));
  const end = ifr.indexOf(0);
  return { fd, name: new TextDecoder().decode(ifr.subarray(0, end < 0 ? IFNAMSIZ : end)) };
}
