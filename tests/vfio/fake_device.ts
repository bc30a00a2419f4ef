// A fake VFIO device fd for tests: a temporary file laid out like one (config space region,
// BAR regions at their offsets), read and written with pread/pwrite and mmap'd exactly as a
// real device fd would be. Its ioctls fail (ENOTTY), which is what a failing
// VFIO_DEVICE_SET_IRQS looks like to the VMM.
import { ok } from "../assert.ts";
import { cString, libc, O_CLOEXEC, O_RDWR } from "../../ffi/libc.ts";
import type { VfioRegion } from "../../src/vfio/container.ts";

export const CONFIG_AT = 0;
export const BAR_AT = [0x10000, 0, 0x20000, 0, 0x30000, 0];
export const BAR_SIZE = [0x100, 0, 0x1000, 0, 0x4000, 0];
/** Where the fake's capabilities are (guest-visible offsets, the device's own). */
export const MSI_AT = 0x50;
export const MSIX_AT = 0xb0;

export interface FakeDevice {
  fd: number;
  regions: VfioRegion[];
  path: string;
  /** The device's config space as it is in the file now. */
  config(): Uint8Array;
  close(): void;
}

export interface FakeDeviceOptions {
  /** MSI-X Table Size field (vectors - 1); default 3. */
  msixTableSize?: number;
  /** MSI-X table and PBA offset/BIR dwords; default BAR 4 + 0 and BAR 4 + 0x800. */
  msixTable?: number;
  msixPba?: number;
  /** BAR 4's size (mem64, prefetchable); default 16 KiB. Not backed by the file past 16 KiB. */
  bar4Size?: number;
}

/**
 * An RTL8168-like function: BAR0 I/O 256 B, BAR2 mem64 4 KiB, BAR4 mem64 16 KiB holding the
 * MSI-X table (4 vectors) at 0 and the PBA at 0x800; capabilities PM at 0x40, MSI (64-bit, per-
 * vector masking, 1 vector) at 0x50, PCIe at 0x70, MSI-X at 0xb0; INTA#.
 */
export function fakeDevice(options: FakeDeviceOptions = {}): FakeDevice {
  const cfg = new Uint8Array(256);
  const dv = new DataView(cfg.buffer);
  dv.setUint16(0, 0x10ec, true);
  dv.setUint16(2, 0x8168, true);
  dv.setUint16(6, 0x0010, true); // capability list
  dv.setUint32(8, 0x02000015, true); // Ethernet controller, revision 0x15
  dv.setUint32(0x10, 0x1, true); // I/O BAR
  dv.setUint32(0x18, 0x4, true); // mem64
  dv.setUint32(0x20, 0xc, true); // mem64 prefetchable
  cfg[0x34] = 0x40;
  cfg[0x3d] = 1;
  cfg.set([0x01, MSI_AT, 0x03, 0x00], 0x40); // PM
  cfg.set([0x05, 0x70], MSI_AT); // MSI
  dv.setUint16(MSI_AT + 2, 0x0180, true); // 64-bit, per-vector masking, 1 vector
  cfg.set([0x10, MSIX_AT], 0x70); // PCIe
  cfg.set([0x11, 0x00], MSIX_AT); // MSI-X, end of list
  dv.setUint16(MSIX_AT + 2, options.msixTableSize ?? 3, true);
  dv.setUint32(MSIX_AT + 4, (options.msixTable ?? (0x0 | 4)) >>> 0, true);
  dv.setUint32(MSIX_AT + 8, (options.msixPba ?? (0x800 | 4)) >>> 0, true);
  const sizes = [...BAR_SIZE];
  if (options.bar4Size !== undefined) sizes[4] = options.bar4Size;
  const file = new Uint8Array(0x40000);
  file.set(cfg, CONFIG_AT);
  for (let b = 0; b < 6; b++) {
    for (let i = 0; i < BAR_SIZE[b]; i++) file[BAR_AT[b] + i] = (b * 16 + i) & 0xff;
  }
  const path = Deno.makeTempFileSync({ prefix: "denovmm-fake-vfio-" });
  Deno.writeFileSync(path, file);
  const fd = libc.open(cString(path), O_RDWR | O_CLOEXEC, 0);
  ok(fd >= 0);
  const regions: VfioRegion[] = [];
  for (let i = 0; i < 6; i++) {
    // Only what the file backs may be mmap'd.
    const mem = sizes[i] > 0 && i !== 0 && sizes[i] === BAR_SIZE[i];
    regions.push({
      index: i,
      flags: 0,
      size: sizes[i],
      offset: BAR_AT[i],
      mmapAreas: mem ? [{ offset: 0, size: sizes[i] }] : [],
    });
  }
  regions.push({ index: 6, flags: 0, size: 0, offset: 0, mmapAreas: [] });
  regions.push({ index: 7, flags: 0, size: 256, offset: CONFIG_AT, mmapAreas: [] });
  return {
    fd,
    regions,
    path,
    config: () => {
      const now = new Uint8Array(256);
      ok(Number(libc.pread(fd, now, 256n, BigInt(CONFIG_AT))) === 256);
      return now;
    },
    close: () => {
      libc.close(fd);
      Deno.removeSync(path);
    },
  };
}
