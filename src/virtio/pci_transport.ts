/**
 * virtio over PCI, modern only (virtio 1.2 §4.1): one PCI function per device with
 * BAR 0 = common config @0x0000, ISR @0x1000, device config @0x2000, notify @0x3000
 * (one 4-byte slot per queue), and BAR 1 = MSI-X table @0 and PBA @0x800.
 *
 * `planVirtioPci` runs once on the main thread and returns plain data (SABs and fd numbers)
 * that every thread turns into its own `VirtioPciFunction`. The transport knows nothing of KVM:
 * placing the notify ioeventfds and waking the I/O Worker are hooks, and interrupts go to an
 * `MsiVectorGroup` and an `IrqLine` (src/bus/interrupt.ts).
 */
import type { PciFunction } from "../pci/bus.ts";
import { leValue, setLeValue } from "../bus/device.ts";
import { PCI_INTERRUPT_LINE, PciConfigSpace } from "../pci/config_space.ts";
import { Msix, msixCapabilityBody, type MsixPlan, PCI_CAP_ID_MSIX, planMsix } from "../pci/msix.ts";
import type { IrqLine, MsiVectorGroup } from "../bus/interrupt.ts";
import { VirtioPciState } from "./pci_state.ts";

export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Modern device ids are 0x1040 + the virtio device type (§4.1.2.1). */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;

export const BAR0_SIZE = 0x4000;
export const COMMON_OFFSET = 0x0000;
export const COMMON_SIZE = 0x38;
export const ISR_OFFSET = 0x1000;
export const DEVICE_CONFIG_OFFSET = 0x2000;
export const DEVICE_CONFIG_MAX = 0x1000;
export const NOTIFY_OFFSET = 0x3000;
export const NOTIFY_MULTIPLIER = 4;
export const BAR1_SIZE = 0x1000;
export const MSIX_TABLE_OFFSET = 0;
export const MSIX_PBA_OFFSET = 0x800;

// virtio_pci_cap cfg_type values (§4.1.4).
const CAP_COMMON = 1;
const CAP_NOTIFY = 2;
const CAP_ISR = 3;
const CAP_DEVICE = 4;
const PCI_CAP_ID_VNDR = 0x09;

/** What every thread needs to build its view of one virtio-pci device. */
export interface VirtioPciPlan {
  name: string;
  slot: number;
  deviceType: number;
  numQueues: number;
  pciState: SharedArrayBuffer;
  virtioState: SharedArrayBuffer;
  /** One vector per queue and one for configuration changes, in BAR 1. */
  msix: MsixPlan;
  deviceConfig: SharedArrayBuffer;
  /** The IOAPIC pin INTA# of this function is wired to (used while MSI-X is off). */
  intxGsi: number;
}

export interface VirtioDeviceDescription {
  name: string;
  deviceType: number;
  /** PCI class code (class << 16 | subclass << 8 | prog-if). */
  classCode: number;
  numQueues: number;
  queueMaxSize: number;
  /** Device feature bits, VIRTIO_F_VERSION_1 included. */
  features: bigint;
  config: Uint8Array;
}

/** Build the config space and state of one device; BARs at the given guest addresses. */
export function planVirtioPci(
  d: VirtioDeviceDescription,
  slot: number,
  bar0Gpa: number,
  bar1Gpa: number,
  intxGsi: number,
): VirtioPciPlan {
  if (d.config.length > DEVICE_CONFIG_MAX) throw new RangeError(`${d.name}: config too large`);
  const vectors = d.numQueues + 1; // one per queue and one for configuration changes
  const pciState = PciConfigSpace.createState();
  const cfg = new PciConfigSpace(pciState);
  cfg.setIds({
    vendorId: VIRTIO_PCI_VENDOR,
    deviceId: VIRTIO_PCI_DEVICE_BASE + d.deviceType,
    classCode: d.classCode,
    revision: 1, // §4.1.2.1: modern-only devices have revision 1 or more
    subsystemVendorId: VIRTIO_PCI_VENDOR,
    subsystemId: VIRTIO_PCI_DEVICE_BASE + d.deviceType,
  });
  cfg.setInterruptPin(1); // INTA#
  cfg.write(PCI_INTERRUPT_LINE, 1, intxGsi); // what firmware would leave there
  cfg.addBar(0, { kind: "mem32", size: BAR0_SIZE });
  cfg.addBar(1, { kind: "mem32", size: BAR1_SIZE });
  cfg.setBarAddress(0, bar0Gpa);
  cfg.setBarAddress(1, bar1Gpa);
  cfg.addCapability(PCI_CAP_ID_VNDR, virtioCap(CAP_COMMON, 0, COMMON_OFFSET, COMMON_SIZE));
  cfg.addCapability(
    PCI_CAP_ID_VNDR,
    virtioCap(CAP_NOTIFY, 0, NOTIFY_OFFSET, d.numQueues * NOTIFY_MULTIPLIER, NOTIFY_MULTIPLIER),
  );
  cfg.addCapability(PCI_CAP_ID_VNDR, virtioCap(CAP_ISR, 0, ISR_OFFSET, 4));
  if (d.config.length > 0) {
    cfg.addCapability(
      PCI_CAP_ID_VNDR,
      virtioCap(CAP_DEVICE, 0, DEVICE_CONFIG_OFFSET, d.config.length),
    );
  }
  const msix = msixCapabilityBody(vectors, 1, MSIX_TABLE_OFFSET, 1, MSIX_PBA_OFFSET);
  const msixCapOffset = cfg.addCapability(PCI_CAP_ID_MSIX, msix.body, msix.writable);
  const deviceConfig = new SharedArrayBuffer(d.config.length);
  new Uint8Array(deviceConfig).set(d.config);
  return {
    name: d.name,
    slot,
    deviceType: d.deviceType,
    numQueues: d.numQueues,
    pciState,
    virtioState: VirtioPciState.create(d.numQueues, d.queueMaxSize, vectors, d.features),
    msix: planMsix(vectors, msixCapOffset),
    deviceConfig,
    intxGsi,
  };
}

/** struct virtio_pci_cap after cap_vndr/cap_next (and notify_off_multiplier for NOTIFY). */
function virtioCap(
  type: number,
  bar: number,
  offset: number,
  length: number,
  multiplier?: number,
): Uint8Array {
  const capLen = multiplier === undefined ? 16 : 20;
  const body = new Uint8Array(capLen - 2);
  const v = new DataView(body.buffer);
  body[0] = capLen;
  body[1] = type;
  body[2] = bar;
  v.setUint32(6, offset, true);
  v.setUint32(10, length, true);
  if (multiplier !== undefined) v.setUint32(14, multiplier, true);
  return body;
}

/** What a thread's view of the device does outside the device model. */
export interface VirtioPciHooks {
  /** A queue notify reached user space (no ioeventfd placed): pass it on. */
  notify(queue: number): void;
  /** A queue was enabled or the device reset: the I/O Worker should look again. */
  kick(): void;
  /** BAR 0 moved or memory decoding changed: notify slots now at `notifyGpa` (0: none). */
  notifyMoved(oldGpa: number, newGpa: number): void;
}

/** One thread's view of a virtio-pci device: the PCI function the bus sees. */
export class VirtioPciFunction implements PciFunction {
  readonly config: PciConfigSpace;
  readonly state: VirtioPciState;
  readonly msix: Msix;
  readonly #deviceConfig: Uint8Array;

  /** `vectors`: where MSI-X delivers; `intx`: INTA#, which the ISR read lowers. */
  constructor(
    readonly plan: VirtioPciPlan,
    private readonly hooks: VirtioPciHooks,
    vectors: MsiVectorGroup,
    private readonly intx: IrqLine,
  ) {
    this.config = new PciConfigSpace(plan.pciState);
    this.state = new VirtioPciState(plan.virtioState);
    this.#deviceConfig = new Uint8Array(plan.deviceConfig);
    this.msix = new Msix(plan.msix, this.config, vectors);
    // Command register and BAR 0: where the notify ioeventfds belong.
    this.config.onWrite(0x04, 0x06, () => this.placeNotify());
    this.config.onWrite(0x10, 0x14, () => this.placeNotify());
  }

  /** Put the notify ioeventfds where BAR 0 now decodes (or nowhere); any thread may call. */
  placeNotify(): void {
    const bar = this.config.barInfo(0);
    const want = this.config.memoryEnabled() && bar && bar.address !== 0
      ? bar.address + NOTIFY_OFFSET
      : 0;
    this.state.lock();
    try {
      const have = this.state.ioeventfdBase();
      if (have === want) return;
      this.hooks.notifyMoved(have, want);
      this.state.setIoeventfdBase(want);
    } finally {
      this.state.unlock();
    }
  }

  barRead(index: number, offset: number, data: Uint8Array): void {
    if (index === 1) {
      if (offset >= MSIX_PBA_OFFSET) this.msix.pbaRead(offset - MSIX_PBA_OFFSET, data);
      else this.msix.tableRead(offset - MSIX_TABLE_OFFSET, data);
      return;
    }
    let value = 0;
    if (offset < COMMON_OFFSET + COMMON_SIZE) {
      value = this.state.readCommon(offset - COMMON_OFFSET, data.length);
    } else if (offset === ISR_OFFSET && data.length === 1) {
      value = this.state.readIsr(() => this.intx.setLevel(false));
    } else if (
      offset >= DEVICE_CONFIG_OFFSET && offset < DEVICE_CONFIG_OFFSET + DEVICE_CONFIG_MAX
    ) {
      const at = offset - DEVICE_CONFIG_OFFSET;
      for (let i = 0; i < data.length; i++) data[i] = this.#deviceConfig[at + i] ?? 0;
      return;
    }
    setLeValue(data, value);
  }

  barWrite(index: number, offset: number, data: Uint8Array): void {
    if (index === 1) {
      if (offset < MSIX_PBA_OFFSET) this.msix.tableWrite(offset - MSIX_TABLE_OFFSET, data);
      return;
    }
    if (offset < COMMON_OFFSET + COMMON_SIZE) {
      // Only the low 4 bytes: with 8, the sum passes 2^53 and its low bits are lost.
      const value = leValue(data.subarray(0, 4));
      const what = this.state.writeCommon(offset - COMMON_OFFSET, data.length, value >>> 0);
      if (what) this.hooks.kick();
    } else if (offset >= NOTIFY_OFFSET && offset < NOTIFY_OFFSET + BAR0_SIZE - NOTIFY_OFFSET) {
      const queue = (offset - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER;
      if (Number.isInteger(queue) && queue < this.plan.numQueues) this.hooks.notify(queue);
    }
    // ISR and device config are read-only for the devices we model.
  }
}
