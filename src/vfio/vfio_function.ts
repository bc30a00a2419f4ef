/**
 * A host PCI device passed through with VFIO, as one function on denovmm's PCI bus.
 *
 * Config space: the guest sees the device's own registers, read and written with the width it
 * used, except what a VMM must own: the BARs (guest-assigned addresses, sizing, kept in a
 * shadow PciConfigSpace), the expansion ROM (hidden), and the MSI and MSI-X capabilities
 * (emulated: their writes decide which of INTx, MSI and MSI-X the device uses, src/vfio/
 * irq_modes.ts; MSI-X can be hidden with `nomsix`, leaving MSI or INTx to the driver).
 * BARs: every access is trapped and forwarded with pread/pwrite at the region offset, except
 * the MSI-X table and PBA, emulated at the device's offsets and exactly their size
 * (src/pci/msix.ts: 16 bytes a vector, one bit a vector rounded to 8 bytes, never a page).
 * Interrupts (`VfioInterrupts`): with MSI-X the device signals one eventfd per vector
 * (VFIO_DEVICE_SET_IRQS); the I/O thread relays each to the vector group unless the vector is
 * masked, in which case it stays pending (src/vfio/msix_relay.ts). MSI (no per-vector masking
 * offered) and INTx never leave the kernel: MSI eventfds are the group's own irqfds, and INTx
 * is a resampling irqfd whose EOI unmasks the line in VFIO. The emulated capabilities route
 * their vector groups (src/bus/interrupt.ts); the machine's hooks only switch VFIO's mode.
 */
import {
  PCI_BAR0,
  PCI_BAR_END,
  PCI_CAPABILITY_LIST,
  PCI_INTERRUPT_PIN,
  PCI_ROM_ADDRESS,
  type PciBarKind,
  PciConfigSpace,
} from "../pci/config_space.ts";
import type { PciFunction } from "../pci/bus.ts";
import {
  Msix,
  MSIX_CONTROL_ENABLE,
  msixCapabilityBody,
  msixPbaSize,
  type MsixPlan,
  msixRegions,
  msixTableSize,
  PCI_CAP_ID_MSIX,
  planMsix,
} from "../pci/msix.ts";
import {
  MSI_CONTROL_64BIT,
  MSI_CONTROL_ENABLE,
  MsiCapability,
  msiCapabilityBody,
  msiCapabilitySize,
  PCI_CAP_ID_MSI,
} from "../pci/msi.ts";
import type { MsiMessage, MsiVectorGroup, MsiVectorsPlan } from "../bus/interrupt.ts";
import { spinLock, spinUnlock } from "../spin_lock.ts";
import { regionRead, regionWrite, type VfioRegion } from "./container.ts";
import { mmapDevice } from "../../ffi/libc.ts";

/** Where a config byte written by the guest goes, when not to a shadow offset. */
const TO_DEVICE = -1;
const DROPPED = -2;

/** The emulated MSI-X: an `MsixPlan` over the shadow (`capOffset` is the shadow's). */
export interface VfioMsixPlan extends MsixPlan {
  /** Where the device keeps its MSI-X capability (the guest-visible offset). */
  deviceCapOffset: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export interface VfioMsiPlan {
  /** Where the device keeps its MSI capability, and its size there (ID byte included). */
  capOffset: number;
  capSize: number;
  /** Vectors the function is capable of (1 to 32). */
  vectors: number;
  shadowCapOffset: number;
}

export interface VfioMapping {
  bar: number;
  /** Offset inside the BAR and length: page-aligned, never covering the MSI-X pages. */
  offset: number;
  size: number;
  hva: bigint;
  slot: number;
}

export interface VfioPlan {
  bdf: string;
  slot: number;
  deviceFd: number;
  config: VfioRegion;
  bars: Array<VfioRegion | undefined>;
  shadow: SharedArrayBuffer;
  /** Config bytes the guest sees differently from the device (unlinked capabilities). */
  patches: Array<[number, number]>;
  msix?: VfioMsixPlan;
  msi?: VfioMsiPlan;
  /** INTA#..INTD# as 1..4, 0 for none (the device's Interrupt Pin register). */
  intxPin: number;
  /** mmap'd parts of memory BARs, placed as KVM memory slots while the BAR decodes. */
  mappings: VfioMapping[];
  /** Float64 per mapping: the guest address its slot is at now (0: not placed); [last] lock. */
  placed: SharedArrayBuffer;
  interrupts: VfioInterrupts;
  /**
   * What the machine was last told of the guest's MSI-X Enable and MSI (Int32: MSI-X on, MSI
   * vectors, address low and high, data), so a write on any vCPU is compared with the last.
   */
  seen: SharedArrayBuffer;
}

/** A passed-through function's interrupts, each mechanism it has (the machine plans them). */
export interface VfioInterrupts {
  /** INTx: VFIO's trigger and KVM's resample eventfds, on the interrupt controller's `gsi`. */
  intx?: { gsi: number; triggerFd: number; resampleFd: number };
  /** MSI: the vector group, whose irqfds VFIO signals directly. */
  msi?: MsiVectorsPlan;
  /** MSI-X: the eventfds the device signals (VFIO), relayed to the vector group. */
  msix?: { deviceFds: number[]; vectors: MsiVectorsPlan };
  /** Which mechanism is on (VfioIrqModes). */
  modes: SharedArrayBuffer;
}

/** What planning adds; the machine adds the interrupts. */
export type VfioBasePlan = Omit<VfioPlan, "interrupts">;

export interface VfioOptions {
  /** Hide the MSI-X capability (the driver then uses MSI or INTx). */
  noMsix?: boolean;
}

/** Main thread: read the device's config and build the shadow and the MSI-X layout. */
export function planVfioFunction(
  bdf: string,
  slot: number,
  deviceFd: number,
  regions: VfioRegion[],
  /** A guest address for a memory BAR; the kind says whether it may lie above 4 GiB. */
  allocateBar: (size: number, kind: PciBarKind) => number,
  pageSize: number,
  nextSlot: () => number = () => 0,
  options: VfioOptions = {},
): VfioBasePlan {
  const config = regions[7];
  const raw = new Uint8Array(256);
  if (!config || !regionRead(deviceFd, config, 0, raw)) {
    throw new Error(`${bdf}: cannot read config space`);
  }
  const dv = new DataView(raw.buffer);
  const shadowState = PciConfigSpace.createState();
  const shadow = new PciConfigSpace(shadowState);
  shadow.setIds({
    vendorId: dv.getUint16(0, true),
    deviceId: dv.getUint16(2, true),
    classCode: dv.getUint32(8, true) >>> 8,
    revision: raw[8],
    subsystemVendorId: dv.getUint16(0x2c, true),
    subsystemId: dv.getUint16(0x2e, true),
  });
  const bars: Array<VfioRegion | undefined> = [];
  const barSizes: number[] = [];
  for (let i = 0; i < 6; i++) {
    const r = regions[i];
    const reg = dv.getUint32(PCI_BAR0 + 4 * i, true);
    barSizes[i] = r?.size ?? 0;
    if (!r || r.size === 0) continue;
    const kind: PciBarKind = reg & 1 ? "io" : ((reg >> 1) & 3) === 2 ? "mem64" : "mem32";
    shadow.addBar(i, {
      kind,
      size: Math.max(r.size, kind === "io" ? 4 : 16),
      prefetchable: kind !== "io" && (reg & 8) !== 0,
    });
    if (kind !== "io") shadow.setBarAddress(i, allocateBar(r.size, kind));
    bars[i] = r;
    if (kind === "mem64") i++;
  }
  // Walk the device's capability list: emulate MSI and MSI-X (or unlink MSI-X when hidden).
  const patches: Array<[number, number]> = [];
  const trapped: Array<{ bar: number; offset: number; size: number }> = [];
  let msix: VfioMsixPlan | undefined;
  let msi: VfioMsiPlan | undefined;
  let prevNext = PCI_CAPABILITY_LIST;
  for (
    let at = raw[PCI_CAPABILITY_LIST] & 0xfc, n = 0;
    at >= 0x40 && n < 48;
    at = raw[at + 1] & 0xfc, n++
  ) {
    const id = raw[at];
    if (id === PCI_CAP_ID_MSIX && options.noMsix) {
      patches.push([prevNext, raw[at + 1]]);
      continue;
    }
    if (id === PCI_CAP_ID_MSI && !msi) {
      const control = dv.getUint16(at + 2, true);
      const capSize = Math.min(msiCapabilitySize(control), 256 - at);
      const vectors = 1 << Math.min((control >> 1) & 7, 5);
      const { body, writable } = msiCapabilityBody({
        vectors,
        address64: (control & MSI_CONTROL_64BIT) !== 0,
        size: capSize,
      });
      const shadowCapOffset = shadow.addCapability(PCI_CAP_ID_MSI, body, writable);
      msi = { capOffset: at, capSize, vectors, shadowCapOffset };
    }
    if (id === PCI_CAP_ID_MSIX && !msix) {
      const control = dv.getUint16(at + 2, true);
      const table = dv.getUint32(at + 4, true);
      const pba = dv.getUint32(at + 8, true);
      const vectors = (control & 0x7ff) + 1;
      // Offsets are unsigned 32-bit (bit 31 set is a table 2 GiB or more into a large BAR):
      // `& ~7` alone would make them negative.
      const layout = {
        vectors,
        tableBar: table & 7,
        tableOffset: (table & ~7) >>> 0,
        pbaBar: pba & 7,
        pbaOffset: (pba & ~7) >>> 0,
      };
      // Refuses a table or PBA outside its BAR; sizes exact, never rounded to pageSize.
      const regions = msixRegions({ ...layout, barSizes, pageSize });
      trapped.push(regions.tablePage, regions.pbaPage);
      const body = msixCapabilityBody(
        vectors,
        layout.tableBar,
        layout.tableOffset,
        layout.pbaBar,
        layout.pbaOffset,
      );
      const shadowCapOffset = shadow.addCapability(PCI_CAP_ID_MSIX, body.body, body.writable);
      msix = { ...layout, ...planMsix(vectors, shadowCapOffset), deviceCapOffset: at };
    }
    prevNext = at + 1;
  }
  // The mmap-able parts of memory BARs, less the pages the MSI-X table and PBA live in.
  const mappings: VfioMapping[] = [];
  for (let i = 0; i < 6; i++) {
    const r = bars[i];
    if (!r || shadow.barInfo(i)?.kind === "io") continue;
    for (const p of mappablePieces(r.mmapAreas, trapped.filter((t) => t.bar === i), pageSize)) {
      mappings.push({
        bar: i,
        ...p,
        hva: mmapDevice(deviceFd, r.offset + p.offset, p.size),
        slot: nextSlot(),
      });
    }
  }
  const placed = new SharedArrayBuffer(8 * (mappings.length + 1));
  return {
    seen: new SharedArrayBuffer(4 * SEEN_WORDS),
    bdf,
    slot,
    deviceFd,
    config,
    bars,
    shadow: shadowState,
    patches,
    msix,
    msi,
    intxPin: raw[PCI_INTERRUPT_PIN] >= 1 && raw[PCI_INTERRUPT_PIN] <= 4
      ? raw[PCI_INTERRUPT_PIN]
      : 0,
    mappings,
    placed,
  };
}

/**
 * The parts of a BAR to map into the guest: the mmap-able areas VFIO reports, less the
 * (page-rounded) pages that hold the MSI-X table or PBA, which must keep trapping. A piece
 * that is not whole pages cannot be a memory slot and stays trapped too.
 */
export function mappablePieces(
  areas: ReadonlyArray<{ offset: number; size: number }>,
  trapped: ReadonlyArray<{ offset: number; size: number }>,
  pageSize: number,
): Array<{ offset: number; size: number }> {
  let pieces = areas.map((a) => ({ offset: a.offset, size: a.size }));
  for (const t of trapped) {
    const tEnd = t.offset + t.size;
    pieces = pieces.flatMap((p) => {
      const end = p.offset + p.size;
      if (tEnd <= p.offset || t.offset >= end) return [p];
      return [
        { offset: p.offset, size: t.offset - p.offset },
        { offset: tEnd, size: end - tEnd },
      ].filter((q) => q.size > 0);
    });
  }
  return pieces.filter((p) => p.offset % pageSize === 0 && p.size % pageSize === 0);
}

/**
 * Whether a BAR's memory slots are tried at `address`: in the 32-bit hole below the IOAPIC, or
 * anywhere above 4 GiB that a number holds exactly (the 64-bit window, where large BARs are
 * planned, and wherever else the guest moves one). Not at 0 or a sizing pattern (an all-ones
 * 64-bit BAR is far past 2^52). What KVM refuses there (over RAM or another slot: EEXIST; past
 * the guest's address width: EINVAL) leaves the BAR trapped, with one line, as in the hole.
 */
function slotsMayGo(address: number, size: number): boolean {
  const end = address + size;
  if (address >= 0x1000_0000 && end <= 0xfec0_0000) return true;
  return address >= 0x1_0000_0000 && end <= 2 ** 52;
}

export interface VfioHooks {
  /**
   * Put a mapping's KVM memory slot at `gpa`, or remove it (gpa 0). Returns false when the
   * slot could not go there (it overlaps RAM or another slot): the mapping stays unplaced, and
   * the BAR is tried again at the guest's next move or decode change.
   */
  placeSlot?(m: VfioMapping, gpa: number): boolean | void;
  /**
   * Slots of this function were removed (a BAR moved or stopped decoding): a slot of another
   * function that was refused for overlapping one of them may fit now (`placeAgain`).
   */
  slotsRemoved?(): void;
  /**
   * MSI-X enabled or disabled by the guest (its vectors are routed already): (re)program the
   * device's eventfds. Returns false when the host refused to turn it on: the guest's Enable
   * bit is cleared again, which releases the routes.
   */
  msixEnabled(on: boolean): boolean | void;
  /**
   * The guest's MSI: `vectors` enabled (0: off) with these messages, routed already. False:
   * refused, as above.
   */
  msiChanged(vectors: number, messages: MsiMessage[]): boolean | void;
}

/** Where the emulated capabilities deliver: the function's vector groups. */
export interface VfioVectorGroups {
  msix?: MsiVectorGroup;
  msi?: MsiVectorGroup;
}

/** A group for a mechanism the machine did not plan: nothing to route, nothing raised. */
const NO_VECTORS: MsiVectorGroup = { trigger: () => {}, route: () => false, release: () => {} };

// VfioPlan.seen (Int32): what the machine was last told, by any thread.
const SEEN_MSIX_ON = 0;
const SEEN_MSI = 1; // 4 words: vectors, address low, address high, data
const SEEN_WORDS = 5;

/** One thread's view of a passed-through device. */
export class VfioPciFunction implements PciFunction {
  readonly shadow: PciConfigSpace;
  readonly msix: Msix | undefined;
  readonly #one = new Uint8Array(4);
  readonly #patch = new Map<number, number>();
  readonly config;
  /** Set while this thread clears an Enable bit the host refused, so that write is not news. */
  #refusing = false;
  #place: (() => boolean) | undefined;

  constructor(readonly plan: VfioPlan, hooks: VfioHooks, groups: VfioVectorGroups = {}) {
    this.shadow = new PciConfigSpace(plan.shadow);
    for (const [at, value] of plan.patches) this.#patch.set(at, value);
    // Every vCPU thread has its own instance, so what was last reported is shared state.
    const seen = new Int32Array(plan.seen);
    const m = plan.msix;
    if (m) {
      // Msix listens on Message Control first: routes are in place before VFIO turns MSI-X on.
      this.msix = new Msix(m, this.shadow, groups.msix ?? NO_VECTORS);
      const control = m.capOffset + 2;
      this.shadow.onWrite(control, control + 2, () => {
        if (this.#refusing) return;
        const on = this.msix!.enabled() ? 1 : 0;
        if (Atomics.exchange(seen, SEEN_MSIX_ON, on) === on) return;
        if (hooks.msixEnabled(on === 1) === false && on === 1) {
          Atomics.store(seen, SEEN_MSIX_ON, 0);
          this.#clearBits(control + 1, MSIX_CONTROL_ENABLE >> 8);
        }
      });
    }
    const msi = plan.msi;
    if (msi) {
      const cap = new MsiCapability(this.shadow, msi.shadowCapOffset);
      const group = groups.msi ?? NO_VECTORS;
      const control = msi.shadowCapOffset + 2;
      this.shadow.onWrite(control, msi.shadowCapOffset + msi.capSize, () => {
        if (this.#refusing) return;
        const n = cap.enabled() ? cap.vectors() : 0;
        const first = n > 0 ? cap.message(0) : { addressLo: 0, addressHi: 0, data: 0 };
        // Only what changes the routes: a driver writes the capability a word at a time.
        const now = [n, first.addressLo, first.addressHi, first.data];
        let same = true;
        for (let i = 0; i < now.length; i++) {
          if (Atomics.exchange(seen, SEEN_MSI + i, now[i]) !== (now[i] | 0)) same = false;
        }
        if (same) return;
        const messages = Array.from({ length: n }, (_, i) => cap.message(i));
        // Every enabled vector routed, or MSI refused: a driver cannot use part of them.
        const routed = cap.sync(group).routed;
        if (routed && hooks.msiChanged(n, messages) !== false) return;
        if (n === 0) return;
        // Unrouted, MSI is not turned on (and whatever was on goes); refused, the host has
        // already fallen back.
        if (!routed) hooks.msiChanged(0, []);
        group.release();
        for (let i = 0; i < now.length; i++) Atomics.store(seen, SEEN_MSI + i, 0);
        this.#clearBits(control, MSI_CONTROL_ENABLE);
      });
    }
    if (plan.mappings.length > 0 && hooks.placeSlot) {
      const place = hooks.placeSlot;
      this.#place = () => this.#placeMappings(place);
      const listener = () => {
        if (this.#placeMappings(place)) hooks.slotsRemoved?.();
      };
      this.shadow.onWrite(0x04, 0x06, listener);
      this.shadow.onWrite(PCI_BAR0, PCI_BAR_END, listener);
    }
    this.config = {
      read: (offset: number, size: number) => this.#configRead(offset, size),
      write: (offset: number, size: number, value: number) =>
        this.#configWrite(offset, size, value),
      barContaining: (addr: number, len: number, space: "memory" | "io") =>
        this.shadow.barContaining(addr, len, space),
      declaresBars: (space: "memory" | "io") => this.shadow.declaresBars(space),
    };
  }

  /** Clear `bits` of the shadow byte at `at` (an Enable bit the host refused). */
  #clearBits(at: number, bits: number): void {
    this.#refusing = true;
    try {
      this.shadow.write(at, 1, this.shadow.read(at, 1) & ~bits);
    } finally {
      this.#refusing = false;
    }
  }

  /**
   * Memory slots follow the BARs: placed while memory decoding is on and the BAR holds an
   * address (not a sizing pattern), moved when the guest moves the BAR, removed otherwise.
   * Every slot that moves is removed before any is placed, so a BAR that overlapped another
   * of this function's gets its place once that one has gone. A slot the machine cannot place
   * (it overlaps RAM or another device's slot) stays unplaced, and is tried again at the next
   * write to the command register or a BAR.
   */
  #placeMappings(place: (m: VfioMapping, gpa: number) => boolean | void): boolean {
    let removed = false;
    const at = new Float64Array(this.plan.placed);
    const lock = new Int32Array(this.plan.placed, 8 * this.plan.mappings.length, 1);
    spinLock(lock, 0);
    try {
      const want = this.plan.mappings.map((m) => {
        const bar = this.shadow.barInfo(m.bar);
        const base = bar && this.shadow.memoryEnabled() && slotsMayGo(bar.address, bar.size)
          ? bar.address
          : 0;
        return base === 0 ? 0 : base + m.offset;
      });
      this.plan.mappings.forEach((m, i) => {
        if (at[i] !== 0 && at[i] !== want[i]) {
          place(m, 0);
          at[i] = 0;
          removed = true;
        }
      });
      this.plan.mappings.forEach((m, i) => {
        if (want[i] !== 0 && at[i] !== want[i]) at[i] = place(m, want[i]) === false ? 0 : want[i];
      });
    } finally {
      spinUnlock(lock, 0);
    }
    return removed;
  }

  /**
   * Try again to place the slots this function's BARs want and do not have (another
   * function's slot was in the way and has gone). Returns whether any slot was removed.
   */
  placeAgain(): boolean {
    return this.#place?.() ?? false;
  }

  /** Where a guest config offset is answered: the shadow (at which offset) or the device. */
  #shadowOffset(offset: number): number | undefined {
    if (
      (offset >= PCI_BAR0 && offset < PCI_BAR_END) ||
      (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4)
    ) {
      return offset;
    }
    const m = this.plan.msix;
    if (m && offset >= m.deviceCapOffset + 2 && offset < m.deviceCapOffset + 12) {
      return m.capOffset + (offset - m.deviceCapOffset);
    }
    const msi = this.plan.msi;
    if (msi && offset >= msi.capOffset + 2 && offset < msi.capOffset + msi.capSize) {
      return msi.shadowCapOffset + (offset - msi.capOffset);
    }
    return undefined;
  }

  #configRead(offset: number, size: number): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.#byte(offset + i);
    return value;
  }

  #byte(at: number): number {
    const patched = this.#patch.get(at);
    if (patched !== undefined) return patched;
    const s = this.#shadowOffset(at);
    if (s !== undefined) {
      return s >= PCI_ROM_ADDRESS && s < PCI_ROM_ADDRESS + 4 ? 0 : this.shadow.read(s, 1);
    }
    const b = this.#one.subarray(0, 1);
    return regionRead(this.plan.deviceFd, this.plan.config, at, b) ? b[0] : 0xff;
  }

  /**
   * A guest config write, any width and alignment: each byte goes where it is answered (the
   * shadow, the device, or nowhere for the hidden ROM and patched pointers), in runs, so an
   * emulated register gets one write for the bytes it covers even when the access starts
   * before it (a dword at a capability's ID carries its Message Control).
   */
  #configWrite(offset: number, size: number, value: number): void {
    if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(offset)) return;
    if (offset < 0 || offset + size > 256) return;
    const v = value >>> 0;
    for (let i = 0; i < size;) {
      const at = offset + i;
      const where = this.#writeTarget(at);
      let n = 1;
      while (
        i + n < size &&
        (where >= 0 ? this.#writeTarget(at + n) === where + n : this.#writeTarget(at + n) === where)
      ) n++;
      const bits = n === 4 ? v : (v >>> (8 * i)) & (2 ** (8 * n) - 1);
      if (where >= 0) this.#shadowWrite(where, n, bits);
      else if (where === TO_DEVICE) this.#deviceWrite(at, n, bits);
      i += n;
    }
  }

  /** A shadow offset (>= 0), TO_DEVICE, or DROPPED (the ROM, a patched pointer). */
  #writeTarget(at: number): number {
    const s = this.#shadowOffset(at);
    if (s !== undefined) return s >= PCI_ROM_ADDRESS && s < PCI_ROM_ADDRESS + 4 ? DROPPED : s;
    return this.#patch.has(at) ? DROPPED : TO_DEVICE;
  }

  /** `n` (1 to 4) bytes into the shadow, in the widths PciConfigSpace takes. */
  #shadowWrite(at: number, n: number, bits: number): void {
    if (n === 3) {
      this.shadow.write(at, 2, bits & 0xffff);
      this.shadow.write(at + 2, 1, bits >>> 16);
    } else this.shadow.write(at, n, bits);
  }

  #deviceWrite(at: number, n: number, bits: number): void {
    // The command register's decode bits also go to the shadow, for BAR routing.
    const cmdFirst = Math.max(at, 0x04), cmdEnd = Math.min(at + n, 0x06);
    if (cmdFirst < cmdEnd) {
      this.shadow.write(cmdFirst, cmdEnd - cmdFirst, bits >>> (8 * (cmdFirst - at)));
    }
    const b = this.#one.subarray(0, n);
    for (let i = 0; i < n; i++) b[i] = (bits >>> (8 * i)) & 0xff;
    regionWrite(this.plan.deviceFd, this.plan.config, at, b);
  }

  /** Which part of a BAR an access falls in: the emulated MSI-X table or PBA, or the device. */
  #target(index: number, offset: number): "table" | "pba" | "device" {
    const m = this.plan.msix;
    if (!m) return "device";
    const inside = (bar: number, at: number, size: number) =>
      index === bar && offset >= at && offset < at + size;
    if (inside(m.tableBar, m.tableOffset, msixTableSize(m.vectors))) return "table";
    if (inside(m.pbaBar, m.pbaOffset, msixPbaSize(m.vectors))) return "pba";
    return "device";
  }

  barRead(index: number, offset: number, data: Uint8Array): void {
    const m = this.plan.msix;
    const where = this.#target(index, offset);
    if (where === "table") this.msix!.tableRead(offset - m!.tableOffset, data);
    else if (where === "pba") this.msix!.pbaRead(offset - m!.pbaOffset, data);
    else {
      const r = this.plan.bars[index];
      if (!r || !regionRead(this.plan.deviceFd, r, offset, data)) data.fill(0xff);
    }
  }

  barWrite(index: number, offset: number, data: Uint8Array): void {
    const where = this.#target(index, offset);
    if (where === "table") this.msix!.tableWrite(offset - this.plan.msix!.tableOffset, data);
    else if (where === "device") {
      const r = this.plan.bars[index];
      if (r) regionWrite(this.plan.deviceFd, r, offset, data);
    }
    // The PBA is read-only.
  }
}
