/**
 * The VFIO file descriptors as objects, as ffi/kvm_fds.ts has for KVM: `VfioContainer` for
 * /dev/vfio/vfio, `VfioGroup` for /dev/vfio/N, `VfioDevice` for a device fd. The only place
 * that issues VFIO ioctls. Setup-time calls throw SyscallError (the caller words the line for
 * the user); run-time calls (SET_IRQS, region reads and writes) return the errno or a boolean
 * and never throw, because the guest decides when they run.
 */
import { check, cString, errno, libc, O_CLOEXEC, O_RDWR, SyscallError } from "./libc.ts";
import * as V from "./vfio_abi.ts";

/** A request number as the u64 that ioctl takes. */
const req = (n: number) => BigInt(n);

/** A device region as the VMM uses it: where it is in the device fd and what may be mmap'd. */
export interface VfioRegion {
  index: number;
  flags: number;
  size: number;
  /** Offset of the region in the device fd, for pread/pwrite/mmap. */
  offset: number;
  /** Parts that may be mmap'd (sparse-mmap capability), or the whole region when MMAP. */
  mmapAreas: Array<{ offset: number; size: number }>;
}

function openFd(path: string): number {
  const fd = libc.open(cString(path), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError(`open ${path}`, errno());
  return fd;
}

export class VfioContainer {
  constructor(readonly fd: number) {}

  /** Open a fresh container (/dev/vfio/vfio); each one is its own IOMMU address space. */
  static open(path = "/dev/vfio/vfio"): VfioContainer {
    return new VfioContainer(openFd(path));
  }

  apiVersion(): number {
    return check("VFIO_GET_API_VERSION", libc.ioctl_int(this.fd, req(V.VFIO_GET_API_VERSION), 0n));
  }

  /** VFIO_CHECK_EXTENSION: above 0 when the container supports `ext` (an IOMMU type). */
  checkExtension(ext: number): number {
    return libc.ioctl_int(this.fd, req(V.VFIO_CHECK_EXTENSION), BigInt(ext));
  }

  /** Pick the IOMMU model; only valid once a group is attached (VfioGroup.setContainer). */
  setIommu(type: number): void {
    check("VFIO_SET_IOMMU", libc.ioctl_int(this.fd, req(V.VFIO_SET_IOMMU), BigInt(type)));
  }

  /** Let devices in the container DMA to `size` bytes at host address `vaddr` as `iova`. */
  mapDma(vaddr: bigint, iova: number, size: number): void {
    const map = new V.VfioDmaMap(vaddr, iova, size);
    check("VFIO_IOMMU_MAP_DMA", libc.ioctl(this.fd, req(V.VFIO_IOMMU_MAP_DMA), map.pointer));
  }

  close(): void {
    libc.close(this.fd);
  }
}

export class VfioGroup {
  constructor(readonly fd: number) {}

  /** Open an IOMMU group (/dev/vfio/N); fails unless its devices are bound to vfio-pci. */
  static open(path: string): VfioGroup {
    return new VfioGroup(openFd(path));
  }

  /** VFIO_GROUP_GET_STATUS: whether every device in the group is bound to a VFIO driver. */
  viable(): boolean {
    const status = new V.VfioGroupStatus();
    check(
      "VFIO_GROUP_GET_STATUS",
      libc.ioctl(this.fd, req(V.VFIO_GROUP_GET_STATUS), status.pointer),
    );
    return (status.flags & V.VFIO_GROUP_FLAGS_VIABLE) !== 0;
  }

  setContainer(container: VfioContainer): void {
    const arg = new Int32Array([container.fd]);
    check(
      "VFIO_GROUP_SET_CONTAINER",
      libc.ioctl(this.fd, req(V.VFIO_GROUP_SET_CONTAINER), Deno.UnsafePointer.of(arg)),
    );
  }

  /** The device `bdf` (domain:bus:device.function) of this group, as a device fd. */
  device(bdf: string): VfioDevice {
    const name = cString(bdf);
    return new VfioDevice(
      check(
        "VFIO_GROUP_GET_DEVICE_FD",
        libc.ioctl(this.fd, req(V.VFIO_GROUP_GET_DEVICE_FD), Deno.UnsafePointer.of(name)),
      ),
    );
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** Holds nothing but the fd, so one can be made for a call on any thread. */
export class VfioDevice {
  constructor(readonly fd: number) {}

  info(): V.VfioDeviceInfo {
    const info = new V.VfioDeviceInfo();
    check("VFIO_DEVICE_GET_INFO", libc.ioctl(this.fd, req(V.VFIO_DEVICE_GET_INFO), info.pointer));
    return info;
  }

  /**
   * Region `index` with its capabilities (sparse mmap areas) when the kernel has some, or
   * undefined for an index the device does not have (the VGA region of a NIC answers EINVAL).
   */
  regionInfo(index: number): VfioRegion | undefined {
    let info = new V.VfioRegionInfo(index);
    if (libc.ioctl(this.fd, req(V.VFIO_DEVICE_GET_REGION_INFO), info.pointer) < 0) {
      return undefined;
    }
    // With capabilities the kernel answers argsz = the size it needs; ask again with that room.
    if ((info.flags & V.VFIO_REGION_INFO_FLAG_CAPS) && info.neededArgsz > V.VFIO_REGION_INFO_SIZE) {
      info = new V.VfioRegionInfo(index, info.neededArgsz);
      check(
        "VFIO_DEVICE_GET_REGION_INFO",
        libc.ioctl(this.fd, req(V.VFIO_DEVICE_GET_REGION_INFO), info.pointer),
      );
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

  /** Vectors of IRQ index `index` (INTx, MSI, MSI-X). */
  irqCount(index: number): number {
    const irq = new V.VfioIrqInfo(index);
    check(
      "VFIO_DEVICE_GET_IRQ_INFO",
      libc.ioctl(this.fd, req(V.VFIO_DEVICE_GET_IRQ_INFO), irq.pointer),
    );
    return irq.count;
  }

  /**
   * Program IRQ index `index` to signal these eventfds, one per vector from 0, or turn it off
   * with []. 0, or the errno (the host may be out of interrupt vectors).
   */
  setIrqEventfds(index: number, fds: number[]): number {
    return this.#setIrqs(
      fds.length > 0
        ? new V.VfioIrqSet(
          V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_TRIGGER,
          index,
          0,
          fds,
        )
        : new V.VfioIrqSet(V.VFIO_IRQ_SET_DATA_NONE | V.VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0),
    );
  }

  /** Unmask INTx whenever `fd` is signalled (VFIO masks the line each time it fires). 0, or the errno. */
  setIntxUnmaskEventfd(fd: number): number {
    return this.#setIrqs(
      new V.VfioIrqSet(
        V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_UNMASK,
        V.VFIO_PCI_INTX_IRQ_INDEX,
        0,
        [fd],
      ),
    );
  }

  #setIrqs(set: V.VfioIrqSet): number {
    return libc.ioctl(this.fd, req(V.VFIO_DEVICE_SET_IRQS), set.pointer) < 0 ? errno() : 0;
  }

  /** pread of `into.length` bytes at `offset` of `region`; false unless all of them came. */
  read(region: VfioRegion, offset: number, into: Uint8Array): boolean {
    return Number(
      libc.pread(this.fd, into, BigInt(into.length), BigInt(region.offset + offset)),
    ) === into.length;
  }

  /** pwrite of `from` at `offset` of `region`; false unless all of it went. */
  write(region: VfioRegion, offset: number, from: Uint8Array): boolean {
    return Number(
      libc.pwrite(this.fd, from, BigInt(from.length), BigInt(region.offset + offset)),
    ) === from.length;
  }

  close(): void {
    libc.close(this.fd);
  }
}
