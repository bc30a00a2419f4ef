/**
 * VFIO's ioctl requests and structs (<linux/vfio.h>): container, group, device, regions, IRQs
 * and DMA mapping. Every VFIO ioctl is _IO(';', 100 + n): the argument size is not encoded.
 */
import { _IO } from "./ioctl.ts";
import { StructView } from "./struct_view.ts";

export const VFIO_TYPE = ";".charCodeAt(0);
export const VFIO_BASE = 100;
export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;

export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);

export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;

/** enum: BAR0..BAR5 = 0..5, ROM = 6, CONFIG = 7; IRQs INTX = 0, MSI = 1, MSIX = 2. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;

export const VFIO_GROUP_STATUS_OFFSETS = { argsz: 0, flags: 4 } as const;
export const VFIO_GROUP_STATUS_SIZE = 8;
export const VFIO_DEVICE_INFO_OFFSETS = {
  argsz: 0,
  flags: 4,
  num_regions: 8,
  num_irqs: 12,
  cap_offset: 16,
} as const;
export const VFIO_DEVICE_INFO_SIZE = 20;
export const VFIO_REGION_INFO_OFFSETS = {
  argsz: 0,
  flags: 4,
  index: 8,
  cap_offset: 12,
  size: 16,
  offset: 24,
} as const;
export const VFIO_REGION_INFO_SIZE = 32;
export const VFIO_IRQ_INFO_OFFSETS = { argsz: 0, flags: 4, index: 8, count: 12 } as const;
export const VFIO_IRQ_INFO_SIZE = 16;
export const VFIO_IRQ_SET_OFFSETS = { argsz: 0, flags: 4, index: 8, start: 12, count: 16 } as const;
export const VFIO_IRQ_SET_SIZE = 20;
export const VFIO_DMA_MAP_OFFSETS = { argsz: 0, flags: 4, vaddr: 8, iova: 16, size: 24 } as const;
export const VFIO_DMA_MAP_SIZE = 32;
/** struct vfio_info_cap_header: id u16, version u16, next u32. */
export const VFIO_INFO_CAP_HEADER_SIZE = 8;

/** A struct that starts with argsz, which the kernel reads to know how much it may use. */
class ArgszView extends StructView {
  constructor(size: number) {
    super(size);
    this.setU32(0, size);
  }
  get argsz(): number {
    return this.u32(0);
  }
}

export class VfioGroupStatus extends ArgszView {
  constructor() {
    super(VFIO_GROUP_STATUS_SIZE);
  }
  get flags(): number {
    return this.u32(VFIO_GROUP_STATUS_OFFSETS.flags);
  }
}

export class VfioDeviceInfo extends ArgszView {
  constructor() {
    super(VFIO_DEVICE_INFO_SIZE);
  }
  get flags(): number {
    return this.u32(VFIO_DEVICE_INFO_OFFSETS.flags);
  }
  get num_regions(): number {
    return this.u32(VFIO_DEVICE_INFO_OFFSETS.num_regions);
  }
  get num_irqs(): number {
    return this.u32(VFIO_DEVICE_INFO_OFFSETS.num_irqs);
  }
}

/** vfio_region_info with room after it for capabilities (sparse mmap areas, MSI-X mappable). */
export class VfioRegionInfo extends ArgszView {
  constructor(index: number, capacity = VFIO_REGION_INFO_SIZE) {
    super(capacity);
    this.setU32(VFIO_REGION_INFO_OFFSETS.index, index);
  }
  get flags(): number {
    return this.u32(VFIO_REGION_INFO_OFFSETS.flags);
  }
  get index(): number {
    return this.u32(VFIO_REGION_INFO_OFFSETS.index);
  }
  get cap_offset(): number {
    return this.u32(VFIO_REGION_INFO_OFFSETS.cap_offset);
  }
  get size(): number {
    return this.u64n(VFIO_REGION_INFO_OFFSETS.size);
  }
  get offset(): number {
    return this.u64n(VFIO_REGION_INFO_OFFSETS.offset);
  }
  /** The argsz the kernel asked for when capabilities did not fit. */
  get neededArgsz(): number {
    return this.argsz;
  }
  /** Walk the capability chain: [id, version, offset of the capability's body]. */
  capabilities(): Array<{ id: number; version: number; at: number }> {
    const caps = [];
    let at = this.cap_offset;
    for (
      let n = 0;
      at !== 0 && at + VFIO_INFO_CAP_HEADER_SIZE <= this.bytes.length && n < 64;
      n++
    ) {
      caps.push({ id: this.u16(at), version: this.u16(at + 2), at });
      at = this.u32(at + 4);
    }
    return caps;
  }
  /** VFIO_REGION_INFO_CAP_SPARSE_MMAP body: nr_areas u32, reserved u32, {offset u64, size u64}[]. */
  sparseAreas(at: number): Array<{ offset: number; size: number }> {
    const nr = this.u32(at + 8);
    const areas = [];
    for (let i = 0; i < nr && at + 16 + 16 * (i + 1) <= this.bytes.length; i++) {
      areas.push({ offset: this.u64n(at + 16 + 16 * i), size: this.u64n(at + 24 + 16 * i) });
    }
    return areas;
  }
}

export class VfioIrqInfo extends ArgszView {
  constructor(index: number) {
    super(VFIO_IRQ_INFO_SIZE);
    this.setU32(VFIO_IRQ_INFO_OFFSETS.index, index);
  }
  get flags(): number {
    return this.u32(VFIO_IRQ_INFO_OFFSETS.flags);
  }
  get count(): number {
    return this.u32(VFIO_IRQ_INFO_OFFSETS.count);
  }
}

/** vfio_irq_set with `fds` eventfds (or none with DATA_NONE). */
export class VfioIrqSet extends ArgszView {
  constructor(flags: number, index: number, start: number, fds: number[] | number) {
    const n = typeof fds === "number" ? fds : fds.length;
    const withData = typeof fds !== "number";
    super(VFIO_IRQ_SET_SIZE + (withData ? 4 * n : 0));
    const O = VFIO_IRQ_SET_OFFSETS;
    this.setU32(O.flags, flags);
    this.setU32(O.index, index);
    this.setU32(O.start, start);
    this.setU32(O.count, n);
    if (withData) fds.forEach((fd, i) => this.dv.setInt32(VFIO_IRQ_SET_SIZE + 4 * i, fd, true));
  }
}

export class VfioDmaMap extends ArgszView {
  constructor(vaddr: bigint, iova: number, size: number) {
    super(VFIO_DMA_MAP_SIZE);
    const O = VFIO_DMA_MAP_OFFSETS;
    this.setU32(O.flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
    this.setU64(O.vaddr, vaddr);
    this.setU64n(O.iova, iova);
    this.setU64n(O.size, size);
  }
}
