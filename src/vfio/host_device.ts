/**
 * Finding a host PCI device for passthrough and checking it is ready, before anything is
 * opened: the device exists, is bound to vfio-pci, and sits in an IOMMU group. Each failure
 * is one line that names the device and the fix.
 */
export class VfioSetupError extends Error {
  override name = "VfioSetupError";
}

/** Domain:bus:device.function, as lspci -D and sysfs spell it. */
const BDF = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

export function isBdf(text: string): boolean {
  return BDF.test(text);
}

export interface HostPciDevice {
  bdf: string;
  group: number;
  vendorId: number;
  deviceId: number;
}

function linkName(path: string): string | undefined {
  try {
    const target = Deno.readLinkSync(path);
    return target.slice(target.lastIndexOf("/") + 1);
  } catch {
    return undefined;
  }
}

/** Check `bdf` under `sysfs` (default /sys) and return what passthrough needs to know. */
export function findHostDevice(bdf: string, sysfs = "/sys"): HostPciDevice {
  const dir = `${sysfs}/bus/pci/devices/${bdf}`;
  try {
    Deno.statSync(dir);
  } catch {
    throw new VfioSetupError(`--vfio-pci ${bdf}: no such PCI device on this host (see lspci -D)`);
  }
  const driver = linkName(`${dir}/driver`);
  if (driver !== "vfio-pci") {
    const now = driver ? `is bound to ${driver}` : "has no driver";
    throw new VfioSetupError(
      `--vfio-pci ${bdf}: ${now}; bind it to vfio-pci: ` +
        `echo vfio-pci > ${dir}/driver_override; ` +
        (driver ? `echo ${bdf} > ${dir}/driver/unbind; ` : "") +
        `echo ${bdf} > ${sysfs}/bus/pci/drivers_probe`,
    );
  }
  const group = linkName(`${dir}/iommu_group`);
  if (group === undefined || !/^\d+$/.test(group)) {
    throw new VfioSetupError(
      `--vfio-pci ${bdf}: no IOMMU group: enable the host's IOMMU (intel_iommu=on or amd_iommu=on)`,
    );
  }
  const hex = (name: string) => parseInt(Deno.readTextFileSync(`${dir}/${name}`).trim(), 16);
  return { bdf, group: Number(group), vendorId: hex("vendor"), deviceId: hex("device") };
}
