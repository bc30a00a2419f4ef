/**
 * virtio-net's configuration (virtio 1.2 §5.1.3-5.1.4): feature bits, the config space, and MAC
 * addresses as the command line spells them. No FFI here: `denovmm --help` loads this.
 */
export const VIRTIO_NET_F_MAC = 1n << 5n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;
const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_config: mac[6], status (VIRTIO_NET_F_STATUS). */
export function netConfig(mac: Uint8Array): Uint8Array {
  if (mac.length !== 6) throw new RangeError("a MAC address has 6 bytes");
  const c = new Uint8Array(8);
  c.set(mac);
  new DataView(c.buffer).setUint16(6, VIRTIO_NET_S_LINK_UP, true);
  return c;
}

/** Parse "52:54:00:12:34:56"; undefined when malformed. A multicast MAC is refused. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  const mac = new Uint8Array(parts.map((p) => parseInt(p, 16)));
  return (mac[0] & 1) === 0 ? mac : undefined;
}
