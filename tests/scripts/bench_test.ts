// scripts/bench.ts's pure parts: its arguments, the table's arithmetic, the arm64 machines'
// command lines and the check that the guest program is a static aarch64 executable.
import { deepEqual, equal, match, ok, throws } from "../assert.ts";
import { BenchUsageError, parseBenchArgs } from "../../scripts/bench/options.ts";
import {
  chunkLines,
  fastest,
  fmt,
  median,
  roundDiffs,
  roundRatios,
  span,
  steadyState,
} from "../../scripts/bench/stats.ts";
import { exitFloorBios } from "../../scripts/bench/exit_floor_bios.ts";
import {
  denovmmArm64,
  denovmmClaims,
  notStaticAarch64,
  pioWindowAddress,
  QEMU_VIRT_PCIE_PIO,
  qemuArm64,
  qemuArm64Cmdline,
  UNCLAIMED_MMIO,
  UNCLAIMED_PORT,
} from "../../scripts/bench/arm64.ts";
import { BASE_CMDLINE } from "../../src/arch/arm64/cmdline.ts";
import { PCI_IO_CPU_START } from "../../src/arch/arm64/memory_map.ts";

Deno.test("bench args: x86-64 by default, all four figures, results.json", () => {
  const o = parseBenchArgs([], "/o");
  equal(o.arch, "x86_64");
  equal(o.rounds, 5);
  deepEqual([...o.only], ["boot", "exits", "disk", "startup"]);
  equal(o.out, "/o/results.json");
  equal(o.prepareOnly, false);
  equal(o.prepared, false);
});

Deno.test("bench args: --arch arm64 (or aarch64) has boot and exits, results-arm64.json", () => {
  for (const name of ["arm64", "aarch64"]) {
    const o = parseBenchArgs(["--arch", name, "--rounds", "3", "--prepared"], "/o");
    equal(o.arch, "arm64");
    equal(o.rounds, 3);
    deepEqual([...o.only], ["boot", "exits"]);
    equal(o.out, "/o/results-arm64.json");
    equal(o.prepared, true);
  }
  deepEqual([...parseBenchArgs(["--arch=arm64", "--only", "exits"], "/o").only], ["exits"]);
  equal(parseBenchArgs(["--arch", "arm64", "--out", "/x.json"], "/o").out, "/x.json");
});

Deno.test("bench args: bad input is a usage error that names it", () => {
  const bad: [string[], RegExp][] = [
    [["--arch", "riscv64"], /--arch riscv64/],
    [["--rounds", "0"], /--rounds 0/],
    [["--rounds", "2.5"], /--rounds 2.5/],
    [["--arch", "arm64", "--only", "disk"], /--only disk: the arm64 bench has boot, exits/],
    [["--only", "boot,nope"], /--only nope/],
    [["--prepare-only", "--prepared", "--arch", "arm64"], /exclude each other/],
    [["--bogus"], /bogus/],
  ];
  for (const [args, message] of bad) {
    throws(() => parseBenchArgs(args, "/o"), (e: Error) => {
      ok(e instanceof BenchUsageError, `${args}: ${e}`);
      match(e.message, message);
      return true;
    });
  }
});

Deno.test("bench stats: medians, spans and per-round ratios leave failed runs out", () => {
  equal(median([3, 1, 2]), 2);
  equal(median([4, 1, 3, 2]), 2.5);
  equal(fmt(NaN), "-");
  equal(fmt(1234.5), "1235");
  equal(fmt(12.345), "12.3");
  equal(fmt(1.2345), "1.23");
  equal(span([2, NaN, 1, 3]), "2.00 [1.00-3.00]");
  equal(span([NaN]), "-");
  // Round 2's QEMU run failed: that round has no ratio, the others stand.
  deepEqual(roundRatios([10, 20, 30], [5, NaN, 60]), [2, 0.5]);
});

Deno.test("bench stats: QEMU's fastest configuration is the lowest median; per-vCPU differences", () => {
  // Medians 5, 3.5 (the failed run left out) and none: the second wins, with its samples as run.
  const pick = fastest({ pc: [5, 6, 4], "pc PVH": [3, 4, NaN], microvm: [NaN, NaN] });
  equal(pick.name, "pc PVH");
  deepEqual(pick.samples, [3, 4, NaN]);
  equal(fastest({ a: [NaN] }).name, "-");
  // What the second vCPU adds, round by round; a failed run gives no number for its round.
  deepEqual(roundDiffs([60, 62, NaN], [70, 71, 75]), [10, 9, NaN]);
});

Deno.test("bench arm64: both machines get the same kernel, initramfs, RAM, vCPUs and parameters", () => {
  const g = {
    kernel: "/k/Image",
    initrd: "/k/i.gz",
    params: "quiet bench=boot",
    cpus: 2,
    ram: "256M",
  };
  const d = denovmmArm64("/bin/denovmm-aarch64", g);
  deepEqual(d, [
    "/bin/denovmm-aarch64",
    "run",
    "-k",
    "/k/Image",
    "-i",
    "/k/i.gz",
    "-m",
    "256M",
    "-c",
    "2",
    "-p",
    "quiet bench=boot",
  ]);
  const q = qemuArm64("qemu-system-aarch64", g);
  const after = (flag: string) => q[q.indexOf(flag) + 1];
  equal(after("-M"), "virt,gic-version=3");
  equal(after("-accel"), "kvm");
  equal(after("-cpu"), "host");
  equal(after("-kernel"), "/k/Image");
  equal(after("-initrd"), "/k/i.gz");
  equal(after("-m"), "256M");
  equal(after("-smp"), "2");
  ok(q.includes("-nodefaults") && !q.includes("-device"), "no devices beyond the machine's own");
  // denovmm's base command line, the console on the PL011 instead of the 8250.
  equal(after("-append"), qemuArm64Cmdline("quiet bench=boot"));
  equal(
    qemuArm64Cmdline("quiet"),
    `${BASE_CMDLINE.replace("console=ttyS0", "console=ttyAMA0")} quiet`,
  );
  ok(!qemuArm64Cmdline("x").includes("ttyS0"));
});

Deno.test("bench arm64: the exit addresses are unclaimed and in each machine's PCI I/O window", () => {
  ok(!denovmmClaims(UNCLAIMED_MMIO));
  // QEMU virt (hw/arm/virt.c): virtio-mmio transports end at 0x0a004000, platform bus at 0x0c000000.
  ok(UNCLAIMED_MMIO >= 0x0a00_4000 && UNCLAIMED_MMIO < 0x0c00_0000);
  equal(pioWindowAddress("denovmm"), PCI_IO_CPU_START + UNCLAIMED_PORT);
  equal(pioWindowAddress("qemu"), QEMU_VIRT_PCIE_PIO + UNCLAIMED_PORT);
  // Inside denovmm's window: claimed by its I/O window, not by a device (ports 0x1000 up, 0x501).
  ok(denovmmClaims(pioWindowAddress("denovmm")));
  const port: number = UNCLAIMED_PORT;
  ok(port < 0x1000 && port !== 0x501 && port % 4 === 0);
});

function elf(machine: number, phdrTypes: number[]): Uint8Array {
  const b = new Uint8Array(64 + 56 * phdrTypes.length);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setUint16(18, machine, true);
  v.setBigUint64(32, 64n, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, phdrTypes.length, true);
  phdrTypes.forEach((t, i) => v.setUint32(64 + 56 * i, t, true));
  return b;
}

Deno.test("bench arm64: the guest program must be a static aarch64 ELF", () => {
  equal(notStaticAarch64(elf(183, [1, 1, 4])), undefined);
  match(notStaticAarch64(elf(62, [1]))!, /e_machine 62/);
  match(notStaticAarch64(elf(183, [6, 3, 1]))!, /dynamically linked/);
  match(notStaticAarch64(new TextEncoder().encode("#!/bin/sh\n".padEnd(80)))!, /not an ELF/);
});

Deno.test("exit_floor_bios: the reset vector jumps to the loop, which counts N writes", () => {
  const image = exitFloorBios(0x12345678);
  equal(image.length, 64 * 1024);
  // The reset vector (CS base 0xffff0000, IP 0xfff0): a near jump whose target is offset 0.
  equal(image[0xfff0], 0xe9);
  const rel = image[0xfff1] | (image[0xfff2] << 8);
  equal((0xfff0 + 3 + rel) & 0xffff, 0);
  // mov ecx, N (operand-size prefix, little-endian), then the port and the loop back to `out`.
  deepEqual([...image.subarray(0, 6)], [0x66, 0xb9, 0x78, 0x56, 0x34, 0x12]);
  deepEqual([...image.subarray(6, 9)], [0xba, 0xf0, 0x04]);
  equal(image[9], 0xee);
  equal((14 + (image[13] << 24 >> 24)) & 0xffff, 9); // jnz back to the out
  deepEqual([...image.subarray(14, 19)], [0xba, 0x01, 0x05, 0xee, 0xf4]);
  throws(() => exitFloorBios(0));
  throws(() => exitFloorBios(2 ** 32));
});

Deno.test("bench: the steady state is the median chunk of a run's second half, read off the guest's lines", () => {
  // A JIT's warm-up in the first chunks does not reach it; a slow chunk late in the run does
  // not either, as a median.
  equal(steadyState([300, 250, 120, 70, 72, 69, 71, 140, 70, 68]), 70);
  equal(steadyState([5, 7]), 7);
  ok(Number.isNaN(steadyState([42])), "one chunk has no second half to stand for");
  ok(Number.isNaN(steadyState([])));
  const out = [
    "BENCH-MARKER uptime=1.20",
    "BENCH pio_us=120.5 n=20000",
    "BENCH pio_chunks_us=300.1,250,70.5,69.5",
    "BENCH mmio_chunks_us=90,80",
    "BENCH mmio_chunks_us_not=1,2",
    "  BENCH pio_chunks_us=1,2 (not at a line's start)",
  ].join("\n");
  deepEqual(chunkLines(out), { pio: [300.1, 250, 70.5, 69.5], mmio: [90, 80] });
  equal(steadyState(chunkLines(out).pio), 70);
});
