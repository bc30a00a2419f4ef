import { deepEqual, equal, notEqual, ok, throws } from "../../assert.ts";
import {
  type Arm64MachineDescription,
  buildDeviceTree,
  mpidr,
} from "../../../src/arch/arm64/device_tree.ts";
import { intxSpi } from "../../../src/arch/arm64/interrupts.ts";
import { memoryLayout, pciMmio64Window } from "../../../src/arch/arm64/memory_map.ts";
import { cells, decompile, type Dts, parseDts, prop, roundTrip, strings } from "./dtc.ts";

const MiB = 1024 * 1024;
const RNG_SEED = new Uint8Array(64).map((_, i) => i);
const KASLR_SEED = 0x0123_4567_89ab_cdefn;

function describe(cpus: number, extra: Partial<Arm64MachineDescription> = {}) {
  return {
    ramRegions: memoryLayout(256 * MiB).regions,
    cpus,
    cmdline: "console=ttyS0 quiet",
    pciIntx: [],
    mmio64: { gpa: 0x1_0000_0000, size: 0 },
    rngSeed: RNG_SEED,
    kaslrSeed: KASLR_SEED,
    ...extra,
  };
}

/** The tree dtc reads back, after checking dtc has no warning for it either way. */
function build(desc: Arm64MachineDescription): Dts {
  const dtb = buildDeviceTree(desc);
  roundTrip(dtb);
  return parseDts(decompile(dtb));
}

/** The node a path property (stdout-path, an alias) names must exist. */
function resolvesTo(dts: Dts, path: string): void {
  ok(dts.has(path), `${path} is not a node`);
}

const GIC = "/intc@8000000";
const ITS = "/intc@8000000/msi-controller@8020000";
const UART = "/serial@b000000";
const PCI = "/pcie@10000000";

Deno.test("device tree: one vCPU, no initrd, no 64-bit window", () => {
  const dts = build(describe(1));
  deepEqual(strings(prop(dts, "/", "compatible")), ["linux,dummy-virt"]);
  deepEqual(cells(prop(dts, "/", "#address-cells")), [2]);
  deepEqual(cells(prop(dts, "/", "#size-cells")), [2]);
  const gic = cells(prop(dts, GIC, "phandle"))[0];
  const its = cells(prop(dts, ITS, "phandle"))[0];
  notEqual(gic, its);
  deepEqual(cells(prop(dts, "/", "interrupt-parent")), [gic], "interrupt-parent is the GIC");

  // /chosen
  deepEqual(strings(prop(dts, "/chosen", "bootargs")), ["console=ttyS0 quiet"]);
  const stdout = strings(prop(dts, "/chosen", "stdout-path"))[0];
  equal(stdout, UART);
  resolvesTo(dts, stdout);
  resolvesTo(dts, strings(prop(dts, "/aliases", "serial0"))[0]);
  equal(dts.get("/chosen")!.has("linux,initrd-start"), false);
  equal(dts.get("/chosen")!.has("linux,initrd-end"), false);
  const seedBytes = cells(prop(dts, "/chosen", "rng-seed"));
  equal(seedBytes.length, 16, "64 bytes");
  equal(seedBytes[0], 0x00010203);
  deepEqual(cells(prop(dts, "/chosen", "kaslr-seed")), [0x0123_4567, 0x89ab_cdef]);

  // RAM, CPUs, PSCI, timer
  equal(strings(prop(dts, "/memory@80000000", "device_type"))[0], "memory");
  deepEqual(cells(prop(dts, "/memory@80000000", "reg")), [0, 0x8000_0000, 0, 256 * MiB]);
  deepEqual(cells(prop(dts, "/cpus", "#address-cells")), [1]);
  deepEqual(cells(prop(dts, "/cpus", "#size-cells")), [0]);
  deepEqual([...dts.keys()].filter((k) => k.startsWith("/cpus/")), ["/cpus/cpu@0"]);
  deepEqual(cells(prop(dts, "/cpus/cpu@0", "reg")), [0]);
  deepEqual(strings(prop(dts, "/cpus/cpu@0", "enable-method")), ["psci"]);
  deepEqual(strings(prop(dts, "/cpus/cpu@0", "compatible")), ["arm,arm-v8"]);
  deepEqual(strings(prop(dts, "/cpus/cpu@0", "device_type")), ["cpu"]);
  deepEqual(strings(prop(dts, "/psci", "compatible")), ["arm,psci-1.0", "arm,psci-0.2"]);
  deepEqual(strings(prop(dts, "/psci", "method")), ["hvc"]);
  deepEqual(strings(prop(dts, "/timer", "compatible")), ["arm,armv8-timer"]);
  // Secure, non-secure, virtual, hypervisor PPIs, level-low.
  deepEqual(cells(prop(dts, "/timer", "interrupts")), [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]);
  equal(prop(dts, "/timer", "always-on"), "");

  // GICv3 and its ITS
  deepEqual(strings(prop(dts, GIC, "compatible")), ["arm,gic-v3"]);
  equal(prop(dts, GIC, "interrupt-controller"), "");
  deepEqual(cells(prop(dts, GIC, "#interrupt-cells")), [3]);
  deepEqual(cells(prop(dts, GIC, "reg")), [0, 0x800_0000, 0, 0x1_0000, 0, 0x804_0000, 0, 0x2_0000]);
  equal(prop(dts, GIC, "ranges"), "");
  deepEqual(cells(prop(dts, GIC, "interrupts")), [1, 9, 4], "maintenance PPI 9");
  deepEqual(strings(prop(dts, ITS, "compatible")), ["arm,gic-v3-its"]);
  equal(prop(dts, ITS, "msi-controller"), "");
  deepEqual(cells(prop(dts, ITS, "#msi-cells")), [1]);
  deepEqual(cells(prop(dts, ITS, "reg")), [0, 0x802_0000, 0, 0x2_0000]);

  // 8250
  deepEqual(strings(prop(dts, UART, "compatible")), ["ns16550a"]);
  deepEqual(cells(prop(dts, UART, "reg")), [0, 0xb00_0000, 0, 0x1000]);
  deepEqual(cells(prop(dts, UART, "clock-frequency")), [1_843_200]);
  deepEqual(cells(prop(dts, UART, "interrupts")), [0, 1, 4], "SPI 1, level-high");
  deepEqual(cells(prop(dts, UART, "reg-shift")), [0]);
  deepEqual(cells(prop(dts, UART, "reg-io-width")), [1]);

  // PCI host bridge
  deepEqual(strings(prop(dts, PCI, "compatible")), ["pci-host-ecam-generic"]);
  deepEqual(strings(prop(dts, PCI, "device_type")), ["pci"]);
  deepEqual(cells(prop(dts, PCI, "#address-cells")), [3]);
  deepEqual(cells(prop(dts, PCI, "#size-cells")), [2]);
  deepEqual(cells(prop(dts, PCI, "#interrupt-cells")), [1]);
  deepEqual(cells(prop(dts, PCI, "bus-range")), [0, 0]);
  deepEqual(cells(prop(dts, PCI, "reg")), [0, 0x1000_0000, 0, 0x10_0000]);
  deepEqual(cells(prop(dts, PCI, "linux,pci-domain")), [0]);
  equal(prop(dts, PCI, "dma-coherent"), "");
  deepEqual(cells(prop(dts, PCI, "msi-map")), [0, its, 0, 0x1_0000], "requester ID = device ID");
  deepEqual(cells(prop(dts, PCI, "ranges")), [
    ...[0x0100_0000, 0, 0, 0, 0x0b01_0000, 0, 0x1_0000], // I/O port 0 at 0x0b01_0000
    ...[0x0200_0000, 0, 0x4000_0000, 0, 0x4000_0000, 0, 0x4000_0000], // 32-bit MEM, 1:1
  ]);
  deepEqual(cells(prop(dts, PCI, "interrupt-map-mask")), [0xf800, 0, 0, 7]);
});

Deno.test("device tree: two vCPUs with an initrd and a 64-bit window", () => {
  // A window above 4 GiB: both cells of each address count.
  const mmio64 = { gpa: 0x80_0000_0000, size: 0x40_0000_0000 };
  const initrd = { gpa: 0x8e00_0000, size: 0x12_3456 };
  const dts = build(describe(2, { initrd, mmio64 }));
  deepEqual(cells(prop(dts, "/chosen", "linux,initrd-start")), [0, 0x8e00_0000]);
  deepEqual(cells(prop(dts, "/chosen", "linux,initrd-end")), [0, 0x8e12_3456], "exclusive end");
  deepEqual([...dts.keys()].filter((k) => k.startsWith("/cpus/")), ["/cpus/cpu@0", "/cpus/cpu@1"]);
  deepEqual(cells(prop(dts, GIC, "reg")).slice(4), [0, 0x804_0000, 0, 2 * 0x2_0000]);
  const ranges = cells(prop(dts, PCI, "ranges"));
  equal(ranges.length, 21, "I/O, 32-bit and 64-bit MEM");
  deepEqual(ranges.slice(14), [0x0300_0000, 0x80, 0, 0x80, 0, 0x40, 0]);
  // The window memory_map.ts gives 256 MiB of RAM: from 3 GiB, 3 GiB long.
  const real = pciMmio64Window(memoryLayout(256 * MiB), 40);
  const withReal = cells(prop(build(describe(1, { mmio64: real })), PCI, "ranges"));
  deepEqual(withReal.slice(14), [0x0300_0000, 0, 0xc000_0000, 0, 0xc000_0000, 0, 0xc000_0000]);
});

Deno.test("device tree: 8 vCPUs, and MPIDRs past Aff0's 16", () => {
  const dts = build(describe(8));
  for (let i = 0; i < 8; i++) deepEqual(cells(prop(dts, `/cpus/cpu@${i}`, "reg")), [i]);
  equal([...dts.keys()].filter((k) => k.startsWith("/cpus/")).length, 8);
  deepEqual(cells(prop(dts, GIC, "reg")).slice(4), [0, 0x804_0000, 0, 8 * 0x2_0000]);

  equal(mpidr(15), 0xf);
  equal(mpidr(16), 0x100);
  equal(mpidr(17), 0x101);
  equal(mpidr(255), 0xf0f);
  equal(mpidr(4096), 0x1_0000);
  const big = build(describe(256));
  deepEqual(cells(prop(big, "/cpus/cpu@100", "reg")), [0x100]);
  deepEqual(cells(prop(big, "/cpus/cpu@f0f", "reg")), [0xf0f]);
  // 256 redistributors end below the UART.
  deepEqual(cells(prop(big, GIC, "reg")).slice(4), [0, 0x804_0000, 0, 256 * 0x2_0000]);
});

Deno.test("device tree: interrupt-map covers every slot and pin, level-high SPIs on the GIC", () => {
  // Slot 2's INTA# goes where the plan says, not where the swizzle would put it.
  const dts = build(
    describe(1, { pciIntx: [{ slot: 1, pin: 1, spi: 5 }, { slot: 2, pin: 1, spi: 9 }] }),
  );
  const gic = cells(prop(dts, GIC, "phandle"))[0];
  const map = cells(prop(dts, PCI, "interrupt-map"));
  equal(map.length, 32 * 4 * 10);
  for (let slot = 0; slot < 32; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      const e = map.slice(((slot * 4) + pin - 1) * 10, ((slot * 4) + pin) * 10);
      const spi = slot === 2 && pin === 1 ? 9 : intxSpi(slot, pin);
      deepEqual(e, [slot << 11, 0, 0, pin, gic, 0, 0, 0, spi, 4], `slot ${slot} pin ${pin}`);
    }
  }
});

Deno.test("device tree: fresh random seeds when none are given", () => {
  const desc = { ...describe(1), rngSeed: undefined, kaslrSeed: undefined };
  const a = parseDts(decompile(buildDeviceTree(desc)));
  const b = parseDts(decompile(buildDeviceTree(desc)));
  notEqual(prop(a, "/chosen", "rng-seed"), prop(b, "/chosen", "rng-seed"));
  notEqual(prop(a, "/chosen", "kaslr-seed"), prop(b, "/chosen", "kaslr-seed"));
  equal(cells(prop(a, "/chosen", "rng-seed")).length, 16);
});

Deno.test("device tree: a bad vCPU count or INTx route is a bug and throws", () => {
  throws(() => buildDeviceTree(describe(0)), RangeError);
  throws(() => buildDeviceTree(describe(257)), RangeError);
  throws(
    () => buildDeviceTree(describe(1, { pciIntx: [{ slot: 32, pin: 1, spi: 4 }] })),
    RangeError,
  );
  throws(
    () => buildDeviceTree(describe(1, { pciIntx: [{ slot: 1, pin: 1, spi: 64 }] })),
    RangeError,
  );
  throws(
    () =>
      buildDeviceTree(
        describe(1, { pciIntx: [{ slot: 1, pin: 1, spi: 5 }, { slot: 1, pin: 1, spi: 6 }] }),
      ),
    RangeError,
  );
});
