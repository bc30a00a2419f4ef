/**
 * The device tree of denovmm's arm64 machine: everything the guest learns of the machine, the
 * arm64 counterpart of a PC's ACPI tables, E820 map and MP table. Addresses come from
 * ./memory_map.ts, interrupt numbers from ./interrupts.ts; this module only says how the
 * bindings (Linux Documentation/devicetree/bindings) describe them.
 *
 * ```
 * /                      linux,dummy-virt; #address-cells = #size-cells = 2; interrupt-parent GIC
 *   chosen               bootargs, stdout-path, initrd, rng-seed, kaslr-seed
 *   aliases              serial0
 *   memory@80000000      one node per RAM region
 *   cpus/cpu@N           reg = MPIDR affinity; enable-method psci
 *   psci                 PSCI 1.0 (0.2 calls) through HVC: KVM implements it
 *   timer                the architected timer's four PPIs
 *   intc@8000000         GICv3: distributor, redistributors
 *     msi-controller@…   its ITS, the MSI target of PCI
 *   serial@b000000       the 8250
 *   pcie@10000000        ECAM host bridge: I/O, 32- and 64-bit windows, INTx map, msi-map
 * ```
 *
 * @module
 */
import type { GuestRange } from "../../memory/regions.ts";
import { FdtWriter, u64Cells } from "./fdt.ts";
import {
  GIC_MAINTENANCE_PPI,
  GIC_PPI,
  GIC_SPI,
  intxSpi,
  IRQ_TYPE_LEVEL_HIGH,
  IRQ_TYPE_LEVEL_LOW,
  NR_SPIS,
  TIMER_HYP_PPI,
  TIMER_NONSECURE_PPI,
  TIMER_SECURE_PPI,
  TIMER_VIRTUAL_PPI,
  UART_SPI,
} from "./interrupts.ts";
import {
  GIC_DIST,
  GIC_ITS,
  gicRedistributors,
  MAX_CPUS,
  PCI_ECAM,
  PCI_IO_CPU_SIZE,
  PCI_IO_CPU_START,
  PCI_MMIO32,
  UART,
} from "./memory_map.ts";

/** The 8250's input clock: the PC's 1.8432 MHz, so divisor 1 is 115200 baud. */
export const UART_CLOCK_HZ = 1_843_200;
/** Bytes of /chosen/rng-seed: the kernel credits them to its entropy pool at boot. */
export const RNG_SEED_BYTES = 64;
/** ECAM gives each bus 1 MiB (32 devices x 8 functions x 4 KiB). */
const ECAM_BYTES_PER_BUS = 1 << 20;
const PCI_SLOTS = 32;
const PCI_PINS = 4;

/** One PCI function's interrupt pin and the SPI it reaches. */
export interface PciIntxSpi {
  slot: number;
  /** 1 = INTA# .. 4 = INTD#. */
  pin: number;
  spi: number;
}

/** What the device tree describes; everything else is fixed by memory_map.ts. */
export interface Arm64MachineDescription {
  /** Guest RAM, in ascending order. */
  ramRegions: readonly GuestRange[];
  /** vCPUs, 1 to MAX_CPUS; vCPU i gets MPIDR {@link mpidr}(i). */
  cpus: number;
  /** The kernel's command line (its length is the loader's to check). */
  cmdline: string;
  initrd?: GuestRange;
  /** The PCI functions present and where their INTx goes; slots absent follow intxSpi. */
  pciIntx: readonly PciIntxSpi[];
  /** The 64-bit BAR window; size 0 when there is none. */
  mmio64: GuestRange;
  /** /chosen/rng-seed ({@link RNG_SEED_BYTES} fresh random bytes when absent). */
  rngSeed?: Uint8Array;
  /** /chosen/kaslr-seed (a fresh random one when absent). */
  kaslrSeed?: bigint;
}

/**
 * vCPU `i`'s affinity (MPIDR_EL1 without its RES1 bit 31) as KVM assigns it at vCPU reset
 * (arch/arm64/kvm/sys_regs.c, reset_mpidr): Aff0 = i[3:0], Aff1 = i[11:4], Aff2 = i[19:12].
 * Aff0 stays below 16 because a GICv3 SGI targets at most 16 CPUs of one Aff0 group.
 *
 * @example
 * ```ts
 * mpidr(17); // 0x101
 * ```
 */
export function mpidr(i: number): number {
  return (i & 0xf) | (((i >> 4) & 0xff) << 8) | (((i >> 12) & 0xff) << 16);
}

/**
 * The flattened device tree for `desc`.
 *
 * @example
 * ```ts
 * const dtb = buildDeviceTree({
 *   ramRegions: memoryLayout(256 << 20).regions,
 *   cpus: 2,
 *   cmdline: "console=ttyS0",
 *   pciIntx: [],
 *   mmio64: { gpa: 0, size: 0 },
 * });
 * ```
 */
export function buildDeviceTree(desc: Arm64MachineDescription): Uint8Array {
  if (!(Number.isInteger(desc.cpus) && desc.cpus >= 1 && desc.cpus <= MAX_CPUS)) {
    throw new RangeError(`device tree: ${desc.cpus} vCPUs (1 to ${MAX_CPUS})`);
  }
  const t = new FdtWriter();
  const gic = t.allocPhandle();
  const its = t.allocPhandle();
  const uartPath = `/${unitName("serial", UART.gpa)}`;

  t.beginNode("");
  t.propStrings("compatible", ["linux,dummy-virt"]);
  t.propString("model", "denovmm");
  t.propU32("#address-cells", 2);
  t.propU32("#size-cells", 2);
  t.propU32("interrupt-parent", gic);

  chosen(t, desc, uartPath);
  t.beginNode("aliases");
  t.propString("serial0", uartPath);
  t.endNode();
  for (const r of desc.ramRegions) {
    t.beginNode(unitName("memory", r.gpa));
    t.propString("device_type", "memory");
    t.propU64s("reg", [r.gpa, r.size]);
    t.endNode();
  }
  cpus(t, desc.cpus);
  psciAndTimer(t);
  interruptController(t, desc.cpus, gic, its);
  uart(t);
  pciHostBridge(t, desc, gic, its);
  t.endNode();
  return t.finish(mpidr(0));
}

/** "name@hex-address", the unit address being the first address of the node's reg. */
function unitName(name: string, gpa: number): string {
  return `${name}@${gpa.toString(16)}`;
}

/** A GIC interrupt specifier: kind (SPI/PPI), number within the kind, trigger type. */
function gicInterrupt(kind: number, n: number, type: number): number[] {
  return [kind, n, type];
}

/** Documentation/devicetree/bindings/chosen.txt and the kernel's early FDT parsing. */
function chosen(t: FdtWriter, desc: Arm64MachineDescription, uartPath: string): void {
  t.beginNode("chosen");
  t.propString("bootargs", desc.cmdline);
  t.propString("stdout-path", uartPath);
  if (desc.initrd && desc.initrd.size > 0) {
    // The end is exclusive: the first byte past the initrd.
    t.propU64("linux,initrd-start", desc.initrd.gpa);
    t.propU64("linux,initrd-end", desc.initrd.gpa + desc.initrd.size);
  }
  const rngSeed = desc.rngSeed ?? crypto.getRandomValues(new Uint8Array(RNG_SEED_BYTES));
  t.propBytes("rng-seed", rngSeed);
  const kaslrSeed = desc.kaslrSeed ??
    new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
  t.propU64s("kaslr-seed", [kaslrSeed]);
  t.endNode();
}

/**
 * bindings/arm/cpus.yaml: with #address-cells 1, a CPU's reg is MPIDR_EL1[23:0], which holds
 * Aff0-Aff2: all KVM sets ({@link mpidr}; Aff3 stays 0).
 */
function cpus(t: FdtWriter, count: number): void {
  t.beginNode("cpus");
  t.propU32("#address-cells", 1);
  t.propU32("#size-cells", 0);
  for (let i = 0; i < count; i++) {
    t.beginNode(unitName("cpu", mpidr(i)));
    t.propString("device_type", "cpu");
    t.propStrings("compatible", ["arm,arm-v8"]);
    t.propString("enable-method", "psci");
    t.propU32("reg", mpidr(i));
    t.endNode();
  }
  t.endNode();
}

/**
 * bindings/arm/psci.yaml: KVM implements PSCI 1.x for its guests (CPU_ON brings up the
 * secondary vCPUs, SYSTEM_OFF and SYSTEM_RESET end the VM), called with HVC as a guest at EL1
 * has no EL3 to SMC to. bindings/timer/arm,arch_timer.yaml: the PPIs in the binding's order;
 * always-on because the timer is KVM's and never loses state in a power-down.
 */
function psciAndTimer(t: FdtWriter): void {
  t.beginNode("psci");
  t.propStrings("compatible", ["arm,psci-1.0", "arm,psci-0.2"]);
  t.propString("method", "hvc");
  t.endNode();

  t.beginNode("timer");
  t.propStrings("compatible", ["arm,armv8-timer"]);
  t.propCells(
    "interrupts",
    [TIMER_SECURE_PPI, TIMER_NONSECURE_PPI, TIMER_VIRTUAL_PPI, TIMER_HYP_PPI].flatMap((ppi) =>
      gicInterrupt(GIC_PPI, ppi, IRQ_TYPE_LEVEL_LOW)
    ),
  );
  t.propEmpty("always-on");
  t.endNode();
}

/**
 * bindings/interrupt-controller/arm,gic-v3.yaml: reg is the distributor, then the
 * redistributors (one region, one 128 KiB frame pair per vCPU); the ITS is a child node, hence
 * the GIC's own #address-cells, #size-cells and an identity `ranges`.
 */
function interruptController(t: FdtWriter, cpus: number, gic: number, its: number): void {
  const redist = gicRedistributors(cpus);
  t.beginNode(unitName("intc", GIC_DIST.gpa));
  t.propStrings("compatible", ["arm,gic-v3"]);
  t.propU32("#interrupt-cells", 3);
  t.propEmpty("interrupt-controller");
  t.propU64s("reg", [GIC_DIST.gpa, GIC_DIST.size, redist.gpa, redist.size]);
  t.propU32("#address-cells", 2);
  t.propU32("#size-cells", 2);
  t.propEmpty("ranges");
  t.propCells("interrupts", gicInterrupt(GIC_PPI, GIC_MAINTENANCE_PPI, IRQ_TYPE_LEVEL_HIGH));
  t.propU32("phandle", gic);

  t.beginNode(unitName("msi-controller", GIC_ITS.gpa));
  t.propStrings("compatible", ["arm,gic-v3-its"]);
  t.propEmpty("msi-controller");
  // One cell: the device ID, which for PCI is the requester ID (see msi-map below).
  t.propU32("#msi-cells", 1);
  t.propU64s("reg", [GIC_ITS.gpa, GIC_ITS.size]);
  t.propU32("phandle", its);
  t.endNode();
  t.endNode();
}

/** bindings/serial/8250.yaml: byte-wide registers one byte apart; SPIs are level-high. */
function uart(t: FdtWriter): void {
  t.beginNode(unitName("serial", UART.gpa));
  t.propStrings("compatible", ["ns16550a"]);
  t.propU64s("reg", [UART.gpa, UART.size]);
  t.propU32("clock-frequency", UART_CLOCK_HZ);
  t.propCells("interrupts", gicInterrupt(GIC_SPI, UART_SPI, IRQ_TYPE_LEVEL_HIGH));
  t.propU32("reg-shift", 0);
  t.propU32("reg-io-width", 1);
  t.endNode();
}

/** PCI address cells, phys.hi (IEEE 1275 PCI binding): the space code in bits 24-25. */
const PCI_SPACE_IO = 0x0100_0000;
const PCI_SPACE_MEM32 = 0x0200_0000;
const PCI_SPACE_MEM64 = 0x0300_0000;
/** interrupt-map-mask: phys.hi's device number (bits 11-15) and the pin. */
const PCI_DEVICE_MASK = 0xf800;
const PCI_PIN_MASK = 0x7;

/**
 * bindings/pci/host-generic-pci.yaml and pci-bus-common: an ECAM host bridge whose windows map
 * PCI addresses 1:1 to CPU addresses except I/O, whose port 0 sits at PCI_IO_CPU_START.
 *
 * The 64-bit window is non-prefetchable (0x03000000): Linux puts a prefetchable BAR in a
 * non-prefetchable window but never the reverse, and passed-through devices have 64-bit BARs
 * of both kinds.
 *
 * INTx: interrupt-map lists every slot (0-31) and pin, as the PC's _PRT does, rather than
 * masking the slot down to its swizzle (slot & 3): the map then says exactly where each present
 * function's pin goes (`pciIntx`, from the PCI plan), even a function whose line is not the
 * swizzle's, and costs 128 entries (5 KiB). Each entry: the child unit address (3 cells, only
 * the device number kept by the mask) and pin, the GIC's phandle, the GIC's unit address (2
 * cells, by its #address-cells), then a GIC SPI specifier.
 *
 * MSIs: msi-map sends requester ID r to the ITS with device ID r, for every ID of bus 0.
 */
function pciHostBridge(t: FdtWriter, desc: Arm64MachineDescription, gic: number, its: number) {
  const buses = Math.max(1, Math.floor(PCI_ECAM.size / ECAM_BYTES_PER_BUS));
  t.beginNode(unitName("pcie", PCI_ECAM.gpa));
  t.propStrings("compatible", ["pci-host-ecam-generic"]);
  t.propString("device_type", "pci");
  t.propU32("#address-cells", 3);
  t.propU32("#size-cells", 2);
  t.propU32("#interrupt-cells", 1);
  t.propCells("bus-range", [0, buses - 1]);
  t.propU64s("reg", [PCI_ECAM.gpa, PCI_ECAM.size]);
  t.propU32("linux,pci-domain", 0);
  t.propEmpty("dma-coherent");
  t.propCells("msi-map", [0, its, 0, 0x10000]);

  const ranges = [
    ...pciRange(PCI_SPACE_IO, 0, PCI_IO_CPU_START, PCI_IO_CPU_SIZE),
    ...pciRange(PCI_SPACE_MEM32, PCI_MMIO32.gpa, PCI_MMIO32.gpa, PCI_MMIO32.size),
  ];
  if (desc.mmio64.size > 0) {
    ranges.push(...pciRange(PCI_SPACE_MEM64, desc.mmio64.gpa, desc.mmio64.gpa, desc.mmio64.size));
  }
  t.propCells("ranges", ranges);

  t.propCells("interrupt-map-mask", [PCI_DEVICE_MASK, 0, 0, PCI_PIN_MASK]);
  const spis = intxSpis(desc.pciIntx);
  const map: number[] = [];
  for (let slot = 0; slot < PCI_SLOTS; slot++) {
    for (let pin = 1; pin <= PCI_PINS; pin++) {
      const spi = spis.get(slot * PCI_PINS + pin - 1) ?? intxSpi(slot, pin);
      map.push(
        slot << 11,
        0,
        0,
        pin,
        gic,
        0,
        0,
        ...gicInterrupt(GIC_SPI, spi, IRQ_TYPE_LEVEL_HIGH),
      );
    }
  }
  t.propCells("interrupt-map", map);
  t.endNode();
}

/** One `ranges` entry: PCI address (3 cells), CPU address (2), size (2). */
function pciRange(space: number, pciAddress: number, cpuAddress: number, size: number): number[] {
  return [space, ...u64Cells(pciAddress), ...u64Cells(cpuAddress), ...u64Cells(size)];
}

/** The given routes by slot * 4 + pin - 1, checked: a bad one is a bug in the PCI plan. */
function intxSpis(routes: readonly PciIntxSpi[]): Map<number, number> {
  const spis = new Map<number, number>();
  for (const r of routes) {
    intxSpi(r.slot, r.pin); // checks slot and pin
    if (!(Number.isInteger(r.spi) && r.spi >= 0 && r.spi < NR_SPIS)) {
      throw new RangeError(`device tree: PCI slot ${r.slot} pin ${r.pin}: SPI ${r.spi}`);
    }
    const key = r.slot * PCI_PINS + r.pin - 1;
    const before = spis.get(key);
    if (before !== undefined && before !== r.spi) {
      throw new RangeError(
        `device tree: PCI slot ${r.slot} pin ${r.pin} on SPIs ${before} and ${r.spi}`,
      );
    }
    spis.set(key, r.spi);
  }
  return spis;
}
