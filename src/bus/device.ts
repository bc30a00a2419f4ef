/**
 * What a device looks like to the bus: byte-level accesses at an offset inside the range it
 * was registered for. Devices know nothing of KVM; the vCPU loop hands them the bytes of the
 * exit (kvm_run's data area) as a little-endian Uint8Array of the access size (1, 2, 4 or 8).
 */
export interface BusDevice {
  /** Fill `data` (its length is the access size) with what the guest reads at `offset`. */
  read(offset: number, data: Uint8Array): void;
  /** The guest wrote `data` (its length is the access size) at `offset`. */
  write(offset: number, data: Uint8Array): void;
}

/** Little-endian value of an access of up to 4 bytes. */
export function leValue(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = (v * 256) + data[i];
  return v;
}

/** Store `value` little-endian into all bytes of `data` (up to 4 bytes; higher bytes zero). */
export function setLeValue(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) {
    data[i] = i < 4 ? (value >>> (8 * i)) & 0xff : 0;
  }
}
