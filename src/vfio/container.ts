/**
 * Opening a device for passthrough through VFIO's type1 IOMMU: container, group (must be
 * viable), device fd; then what the device has (regions, IRQs) and its real config space.
 */
import { cString, errno, libc, O_CLOEXEC, O_RDWR, strerror } from "../../ffi/libc.ts";
import * as V from "../../ffi/vfio_abi.ts";
import { type HostPciDevice, VfioSetupError } from "./host_device.ts";

export interface VfioRegion {
  index: number;
  flags: number;
  size: number;
  /** Offset of the region in the device fd, for pread/pwrite/mmap. */
  offset: number;
  /** Parts that may be mmap'd (sparse-mmap capability), or the whole region when MMAP. */
  mmapAreas: Array<{ offset: number; size: number }>;
}

export interface OpenedVfioDevice {
  host: HostPciDevice;
  containerFd: number;
  groupFd: number;
  deviceFd: number;
  regions: VfioRegion[];
  /** Vectors per IRQ index (INTx, MSI, MSI-X). */
  irqCounts: number[];
}

const req = (n: number) => BigInt(n);
const EPERM = 1;

function ioctlOrFail(fd: number, request: number, arg: Deno.PointerValue, what: string): number {
  const rc = libc.ioctl(fd, req(request), arg);
  if (rc < 0) throw new VfioSetupError(`${what}: ${strerror(errno())}`);
  return rc;
}

/** Open `host` through a fresh container; fails with one line and closes what it opened. */
export function openVfioDevice(host: HostPciDevice, dev = "/dev/vfio"): OpenedVfioDevice {
  const opened: number[] = [];
  const open = (path: string, what: string) => {
    const fd = libc.open(cString(path), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const why = strerror(errno());
      throw new VfioSetupError(`--vfio-pci ${host.bdf}: cannot open ${path} (${why}): ${what}`);
    }
    opened.push(fd);
    return fd;
  };
  try {
    const container = open(`${dev}/vfio`, "load vfio-pci (modprobe vfio-pci)");
    const api = libc.ioctl_int(container, req(V.VFIO_GET_API_VERSION), 0n);
    if (api !== V.VFIO_API_VERSION) {
      throw new VfioSetupError(
        `--vfio-pci ${host.bdf}: VFIO API ${api}, need ${V.VFIO_API_VERSION}`,
      );
    }
    const type =
      libc.ioctl_int(container, req(V.VFIO_CHECK_EXTENSION), BigInt(V.VFIO_TYPE1v2_IOMMU)) > 0
        ? V.VFIO_TYPE1v2_IOMMU
        : libc.ioctl_int(container, req(V.VFIO_CHECK_EXTENSION), BigInt(V.VFIO_TYPE1_IOMMU)) > 0
        ? V.VFIO_TYPE1_IOMMU
        : 0;
    if (type === 0) {
      throw new VfioSetupError(
        `--vfio-pci ${host.bdf}: the host's VFIO has no type1 IOMMU support`,
      );
    }
    const group = open(`${dev}/${host.group}`, `is IOMMU group ${host.group} bound to vfio-pci?`);
    const status = new V.VfioGroupStatus();
    ioctlOrFail(
      group,
      V.VFIO_GROUP_GET_STATUS,
      status.pointer,
      `--vfio-pci ${host.bdf}: group status`,
    );
    if ((status.flags & V.VFIO_GROUP_FLAGS_VIABLE) === 0) {
      throw new VfioSetupError(
        `--vfio-pci ${host.bdf}: IOMMU group ${host.group} is not viable: bind every device in ` +
          `/sys/kernel/iommu_groups/${host.group}/devices to vfio-pci`,
      );
    }
    const containerArg = new Int32Array([container]);
    const who = `--vfio-pci ${host.bdf}`;
    ioctlOrFail(
      group,
      V.VFIO_GROUP_SET_CONTAINER,
      Deno.UnsafePointer.of(containerArg),
      `${who}: attach group`,
    );
    if (libc.ioctl_int(container, req(V.VFIO_SET_IOMMU), BigInt(type)) < 0) {
      const e = errno();
      const hint = e === EPERM
        ? " (the IOMMU cannot isolate MSIs: enable interrupt remapping, or load " +
          "vfio_iommu_type1 with allow_unsafe_interrupts=1)"
        : "";
      throw new VfioSetupError(`${who}: set the type1 IOMMU: ${strerror(e)}${hint}`);
    }
    const deviceFd = libc.ioctl(
      group,
      req(V.VFIO_GROUP_GET_DEVICE_FD),
      Deno.UnsafePointer.of(cString(host.bdf)),
    );
    if (deviceFd < 0) throw new VfioSetupError(`${who}: open the device: ${strerror(errno())}`);
    opened.push(deviceFd);
    const info = new V.VfioDeviceInfo();
    ioctlOrFail(deviceFd, V.VFIO_DEVICE_GET_INFO, info.pointer, `${who}: device info`);
    if ((info.flags & V.VFIO_DEVICE_FLAGS_PCI) === 0) {
      throw new VfioSetupError(`${who}: not a PCI device`);
    }
    const regions: VfioRegion[] = [];
    for (let index = 0; index < info.num_regions; index++) {
      regions.push(regionInfo(deviceFd, index, who));
    }
    const irqCounts: number[] = [];
    for (let index = 0; index < info.num_irqs; index++) {
      const irq = new V.VfioIrqInfo(index);
      irqCounts.push(
        libc.ioctl(deviceFd, req(V.VFIO_DEVICE_GET_IRQ_INFO), irq.pointer) < 0 ? 0 : irq.count,
      );
    }
    return { host, containerFd: container, groupFd: group, deviceFd, regions, irqCounts };
  } catch (e) {
    for (const fd of opened.reverse()) libc.close(fd);
    throw e;
  }
}

/** One region's info, with its capabilities (sparse mmap areas) when the kernel has some. */
function regionInfo(deviceFd: number, index: number, who: string): VfioRegion {
  let info = new V.VfioRegionInfo(index);
  // Regions a device does not have (the VGA region of a NIC) answer EINVAL: absent, size 0.
  if (libc.ioctl(deviceFd, req(V.VFIO_DEVICE_GET_REGION_INFO), info.pointer) < 0) {
    return { index, flags: 0, size: 0, offset: 0, mmapAreas: [] };
  }
  if ((info.flags & V.VFIO_REGION_INFO_FLAG_CAPS) && info.neededArgsz > V.VFIO_REGION_INFO_SIZE) {
    info = new V.VfioRegionInfo(index, info.neededArgsz);
    ioctlOrFail(deviceFd, V.VFIO_DEVICE_GET_REGION_INFO, info.pointer, `${who}: region ${index}`);
  }
  let mmapAreas: VfioRegion["mmapAreas"] = [];
  if (info.flags & V.VFIO_REGION_INFO_FLAG_MMAP) {
    mmapAreas = [{ offset: 0, size: info.size }];
    for (const cap of info.capabilities()) {
      if (cap.id === V.VFIO_REGION_INFO_CAP_SPARSE_MMAP) mmapAreas = info.sparseAreas(cap.at);
    }
  }
  return { index, flags: info.flags, size: info.size, offset: info.offset, mmapAreas };
}

/** Let the device DMA to guest RAM: IOVA = guest-physical address. */
export function mapGuestRam(
  d: OpenedVfioDevice,
  regions: ReadonlyArray<{ gpa: number; size: number; hostOffset: number }>,
  ramHva: bigint,
): void {
  for (const r of regions) {
    const map = new V.VfioDmaMap(ramHva + BigInt(r.hostOffset), r.gpa, r.size);
    if (libc.ioctl(d.containerFd, req(V.VFIO_IOMMU_MAP_DMA), map.pointer) < 0) {
      throw new VfioSetupError(
        `--vfio-pci ${d.host.bdf}: map guest RAM for DMA at 0x${r.gpa.toString(16)}: ${
          strerror(errno())
        }`,
      );
    }
  }
}

/** pread/pwrite of a device region (config space, or a trapped part of a BAR). */
export function regionRead(
  deviceFd: number,
  region: VfioRegion,
  offset: number,
  into: Uint8Array,
): boolean {
  return Number(libc.pread(deviceFd, into, BigInt(into.length), BigInt(region.offset + offset))) ===
    into.length;
}
export function regionWrite(
  deviceFd: number,
  region: VfioRegion,
  offset: number,
  from: Uint8Array,
): boolean {
  return Number(
    libc.pwrite(deviceFd, from, BigInt(from.length), BigInt(region.offset + offset)),
  ) === from.length;
}

/**
 * Program IRQ index `index` (INTx, MSI or MSI-X) to signal these eventfds, one per vector from
 * 0, or turn it off with []. VFIO allows one index on at a time: turn the other off first.
 * Returns 0, or the errno: the guest decides when this runs, and the host may refuse (out of
 * interrupt vectors), which must not end the VM.
 */
export function setIrqEventfds(deviceFd: number, index: number, fds: number[]): number {
  return setIrqs(
    deviceFd,
    fds.length > 0
      ? new V.VfioIrqSet(V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, fds)
      : new V.VfioIrqSet(V.VFIO_IRQ_SET_DATA_NONE | V.VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0),
  );
}

/**
 * INTx's second half: VFIO masks the line each time it fires, and unmasks it when `fd` is
 * signalled (by KVM's irqfd resampler once the guest has EOI'd the interrupt). 0, or the errno.
 */
export function setIntxUnmaskEventfd(deviceFd: number, fd: number): number {
  return setIrqs(
    deviceFd,
    new V.VfioIrqSet(
      V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_UNMASK,
      V.VFIO_PCI_INTX_IRQ_INDEX,
      0,
      [fd],
    ),
  );
}

function setIrqs(deviceFd: number, set: V.VfioIrqSet): number {
  return libc.ioctl(deviceFd, req(V.VFIO_DEVICE_SET_IRQS), set.pointer) < 0 ? errno() : 0;
}
