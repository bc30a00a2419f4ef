/**
 * Opening a device for passthrough through VFIO's type1 IOMMU: container, group (must be
 * viable), device fd; then what the device has (regions, IRQs) and its real config space.
 * The ioctls are ffi/vfio_fds.ts's; here is the policy and each failure's line for the user.
 */
import { strerror, SyscallError } from "../../ffi/libc.ts";
import { EPERM } from "../../ffi/errno.ts";
import * as V from "../../ffi/vfio_abi.ts";
import { VfioContainer, VfioDevice, VfioGroup, type VfioRegion } from "../../ffi/vfio_fds.ts";
import { type HostPciDevice, VfioSetupError } from "./host_device.ts";

export type { VfioRegion };

export interface OpenedVfioDevice {
  host: HostPciDevice;
  containerFd: number;
  groupFd: number;
  deviceFd: number;
  regions: VfioRegion[];
  /** Vectors per IRQ index (INTx, MSI, MSI-X). */
  irqCounts: number[];
}

/** Run a setup call; a SyscallError becomes `what: <strerror>` (with `hint` for its errno). */
function attempt<T>(what: string, call: () => T, hint = (_e: number) => ""): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof SyscallError) {
      throw new VfioSetupError(`${what}: ${strerror(e.errno)}${hint(e.errno)}`);
    }
    throw e;
  }
}

/** Open `host` through a fresh container; fails with one line and closes what it opened. */
export function openVfioDevice(host: HostPciDevice, dev = "/dev/vfio"): OpenedVfioDevice {
  const opened: Array<{ close(): void }> = [];
  const who = `--vfio-pci ${host.bdf}`;
  const open = <T extends { close(): void }>(
    path: string,
    what: string,
    opener: (path: string) => T,
  ): T => {
    let fd: T;
    try {
      fd = opener(path);
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      throw new VfioSetupError(`${who}: cannot open ${path} (${strerror(e.errno)}): ${what}`);
    }
    opened.push(fd);
    return fd;
  };
  try {
    const container = open(
      `${dev}/vfio`,
      "load vfio-pci (modprobe vfio-pci)",
      VfioContainer.open,
    );
    const api = attempt(`${who}: VFIO API version`, () => container.apiVersion());
    if (api !== V.VFIO_API_VERSION) {
      throw new VfioSetupError(`${who}: VFIO API ${api}, need ${V.VFIO_API_VERSION}`);
    }
    const type = container.checkExtension(V.VFIO_TYPE1v2_IOMMU) > 0
      ? V.VFIO_TYPE1v2_IOMMU
      : container.checkExtension(V.VFIO_TYPE1_IOMMU) > 0
      ? V.VFIO_TYPE1_IOMMU
      : 0;
    if (type === 0) {
      throw new VfioSetupError(`${who}: the host's VFIO has no type1 IOMMU support`);
    }
    const group = open(
      `${dev}/${host.group}`,
      `is IOMMU group ${host.group} bound to vfio-pci?`,
      VfioGroup.open,
    );
    if (!attempt(`${who}: group status`, () => group.viable())) {
      throw new VfioSetupError(
        `${who}: IOMMU group ${host.group} is not viable: bind every device in ` +
          `/sys/kernel/iommu_groups/${host.group}/devices to vfio-pci`,
      );
    }
    attempt(`${who}: attach group`, () => group.setContainer(container));
    attempt(
      `${who}: set the type1 IOMMU`,
      () => container.setIommu(type),
      (e) =>
        e === EPERM
          ? " (the IOMMU cannot isolate MSIs: enable interrupt remapping, or load " +
            "vfio_iommu_type1 with allow_unsafe_interrupts=1)"
          : "",
    );
    const device = attempt(`${who}: open the device`, () => group.device(host.bdf));
    opened.push(device);
    const info = attempt(`${who}: device info`, () => device.info());
    if ((info.flags & V.VFIO_DEVICE_FLAGS_PCI) === 0) {
      throw new VfioSetupError(`${who}: not a PCI device`);
    }
    const regions: VfioRegion[] = [];
    for (let index = 0; index < info.num_regions; index++) {
      // A region the device does not have is there, absent: size 0.
      regions.push(
        attempt(`${who}: region ${index}`, () => device.regionInfo(index)) ??
          { index, flags: 0, size: 0, offset: 0, mmapAreas: [] },
      );
    }
    const irqCounts: number[] = [];
    for (let index = 0; index < info.num_irqs; index++) {
      // An index the kernel cannot describe has no vectors to use.
      let count = 0;
      try {
        count = device.irqCount(index);
      } catch (e) {
        if (!(e instanceof SyscallError)) throw e;
      }
      irqCounts.push(count);
    }
    return {
      host,
      containerFd: container.fd,
      groupFd: group.fd,
      deviceFd: device.fd,
      regions,
      irqCounts,
    };
  } catch (e) {
    for (const fd of opened.reverse()) fd.close();
    throw e;
  }
}

/** Let the device DMA to guest RAM: IOVA = guest-physical address. */
export function mapGuestRam(
  d: OpenedVfioDevice,
  regions: ReadonlyArray<{ gpa: number; size: number; hostOffset: number }>,
  ramHva: bigint,
): void {
  const container = new VfioContainer(d.containerFd);
  for (const r of regions) {
    attempt(
      `--vfio-pci ${d.host.bdf}: map guest RAM for DMA at 0x${r.gpa.toString(16)}`,
      () => container.mapDma(ramHva + BigInt(r.hostOffset), r.gpa, r.size),
    );
  }
}

/** pread/pwrite of a device region (config space, or a trapped part of a BAR). */
export function regionRead(
  deviceFd: number,
  region: VfioRegion,
  offset: number,
  into: Uint8Array,
): boolean {
  return new VfioDevice(deviceFd).read(region, offset, into);
}
export function regionWrite(
  deviceFd: number,
  region: VfioRegion,
  offset: number,
  from: Uint8Array,
): boolean {
  return new VfioDevice(deviceFd).write(region, offset, from);
}

/**
 * Program IRQ index `index` (INTx, MSI or MSI-X) to signal these eventfds, one per vector from
 * 0, or turn it off with []. VFIO allows one index on at a time: turn the other off first.
 * Returns 0, or the errno: the guest decides when this runs, and the host may refuse (out of
 * interrupt vectors), which must not end the VM.
 */
export function setIrqEventfds(deviceFd: number, index: number, fds: number[]): number {
  return new VfioDevice(deviceFd).setIrqEventfds(index, fds);
}

/**
 * INTx's second half: VFIO masks the line each time it fires, and unmasks it when `fd` is
 * signalled (by KVM's irqfd resampler once the guest has EOI'd the interrupt). 0, or the errno.
 */
export function setIntxUnmaskEventfd(deviceFd: number, fd: number): number {
  return new VfioDevice(deviceFd).setIntxUnmaskEventfd(fd);
}
