/**
 * `deno task bench`: denovmm against QEMU (`-accel kvm`), measured in the same run on the same
 * kernel, initramfs, command line, RAM and vCPUs, alternating A B A B over N rounds.
 *
 *   deno task bench [--arch x86_64|arm64] [--rounds N] [--only boot,exits,disk,startup]
 *                   [--out PATH]
 *
 * `deno task bench` is scripts/bench.sh, which runs this file in the right KVM sandbox for the
 * architecture (arguments: ./bench/options.ts).
 *
 * Figures (see README "Benchmarks"):
 * denovmm runs as users run it: the binary `deno task compile` makes (rebuilt here first).
 *   boot     VMM start → the guest /init's marker on the console (wall), and the guest's own
 *            /proc/uptime at the marker; denovmm on the extracted vmlinux and on the bzImage,
 *            QEMU -M pc and -M microvm each on the bzImage and on the vmlinux (PVH); the vmlinux
 *            boot against `pc` on the bzImage and against QEMU's fastest of the four (lowest
 *            median); 1 and 2 vCPUs. Peak RSS (VmHWM) of the VMM process at the marker, that RSS
 *            less the guest RAM it has touched, and what the second vCPU adds to it.
 *   exits    µs per exit for N port writes to an unclaimed port and N MMIO writes to an
 *            unclaimed address, timed inside the guest (QEMU -M microvm, on the bzImage and on the
 *            vmlinux through PVH); the whole run, and its steady state (the guest times the run
 *            in ten chunks; the median of the second half's, which V8's warm-up does not reach).
 *   disk     O_DIRECT sequential 1 MiB reads of a 256 MiB image and 4 KiB random reads, in the
 *            guest, virtio-blk-pci (QEMU -M pc, cache=none, aio=threads).
 *   startup  `denovmm --version` from the compiled binary, cold (page cache dropped) and warm,
 *            against `qemu-system-x86_64 --version`; and an empty module on the same Deno, the
 *            floor under any program on it.
 * --arch arm64: denovmm's arm64 executable (`compile.sh --target aarch64`) against QEMU's
 * `qemu-system-aarch64 -M virt,gic-version=3 -accel kvm` in the arm64 sandbox, on the default
 * arm64 guest (./bench/arm64.ts):
 *   boot     as above, on the Image, 1 and 2 vCPUs: wall time and guest uptime at the marker,
 *            peak RSS and RSS less the guest RAM touched.
 *   exits    µs per 32-bit write to an address neither machine claims, and to an unclaimed
 *            port in each machine's PCI I/O window, timed inside the guest (1 vCPU); the whole
 *            run and its steady state, as on x86.
 * The guest program is the same guest_bench.c, built static for aarch64 on the host (the
 * sandbox has no compiler): --prepare-only builds it there, --prepared measures.
 * Prints a table (median, min, max, ratio denovmm/QEMU per round) and writes every raw number
 * as JSON (default .cache/bench/results.json, or results-arm64.json).
 */
import { BASE_CMDLINE } from "../src/cli/cli.ts";
import { writeCpioGz } from "./lib/cpio.ts";
import { type BenchOptions, BenchUsageError, parseBenchArgs } from "./bench/options.ts";
import {
  chunkLines,
  fastest,
  fmt,
  roundDiffs,
  roundRatios,
  span,
  steadyState,
} from "./bench/stats.ts";
import { exitFloorBios } from "./bench/exit_floor_bios.ts";
import { Checkpoint } from "./bench/checkpoint.ts";
import {
  type Arm64Guest,
  denovmmArm64,
  notStaticAarch64,
  pioWindowAddress,
  qemuArm64,
  UNCLAIMED_MMIO,
} from "./bench/arm64.ts";

const REPO = new URL("../", import.meta.url).pathname;
const OUT_DIR = `${REPO}.cache/bench`;
const GUEST = `${REPO}.cache/guest`;
const RAM = "256M";
const RAM_BYTES = 256 * 1024 * 1024;
/** The benchmark's disk image: 256 MiB, as the issue asks. */
const DISK_BYTES = 256 * 1024 * 1024;
const QEMU = "qemu-system-x86_64";
const QEMU_ARM64 = "qemu-system-aarch64";
const ARM64_GUEST = `${REPO}.cache/arm64/guest`;
/** The arm64 executable (`compile.sh --target aarch64`), as users would run it there. */
const ARM64_BINARY = `${REPO}denovmm-aarch64`;
const ARM64_GUEST_PROGRAM = `${OUT_DIR}/guest_bench-aarch64`;
const ARM64_INITRD = `${OUT_DIR}/initrd-arm64.cpio.gz`;
/** exit_floor.c, built on the host: the least a VMM can do per exit, in C. */
const EXIT_FLOOR_C = `${OUT_DIR}/exit_floor`;

let options: BenchOptions;
try {
  options = parseBenchArgs(Deno.args, OUT_DIR);
} catch (e) {
  if (!(e instanceof BenchUsageError)) throw e;
  console.error(`bench: ${e.message}`);
  Deno.exit(2);
}
const ROUNDS = options.rounds;
const ONLY = options.only;
const ARCH = options.arch;

// ---------------------------------------------------------------------------------------------
// Guest payload: the default guest's initramfs with /init replaced by the benchmark program.

async function sh(cmd: string): Promise<string> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], stderr: "inherit" }).output();
  if (r.code !== 0) throw new Error(`bench: ${cmd} failed (${r.code})`);
  return new TextDecoder().decode(r.stdout);
}

async function prepare(): Promise<{ initrd: string; disk: string }> {
  Deno.mkdirSync(OUT_DIR, { recursive: true });
  for (const f of ["vmlinuz", "vmlinux", "initramfs.cpio.gz"]) {
    try {
      Deno.statSync(`${GUEST}/${f}`);
    } catch {
      throw new Error(`bench: no ${GUEST}/${f}; run scripts/setup.sh first`);
    }
  }
  const initrd = `${OUT_DIR}/initrd.cpio.gz`;
  // Built on the host (bench.sh runs --prepare-only there first): the sandbox has neither the
  // network deno bundle may need for its esbuild nor, on arm64, a compiler.
  if (!options.prepared) {
    const bin = `${OUT_DIR}/guest_bench`;
    await sh(`gcc -O2 -static -o ${bin} ${REPO}scripts/bench/guest_bench.c`);
    await sh(`gcc -O2 -static -o ${EXIT_FLOOR_C} ${REPO}scripts/bench/exit_floor.c`);
    const overlay = `${OUT_DIR}/overlay.cpio.gz`;
    await writeCpioGz(overlay, [{ path: "init", mode: 0o100755, data: Deno.readFileSync(bin) }]);
    // The kernel unpacks concatenated archives in order: the later /init wins.
    await sh(`cat ${GUEST}/initramfs.cpio.gz ${overlay} > ${initrd}`);
    await sh(`cd ${REPO} && bash scripts/compile.sh >/dev/null`);
  }
  if (options.prepareOnly) return { initrd, disk: "" };
  for (const f of [BINARY, initrd, EXIT_FLOOR_C]) {
    try {
      Deno.statSync(f);
    } catch {
      throw new Error(`bench: no ${f}: \`deno task bench\` (scripts/bench.sh) builds it first`);
    }
  }
  // Its first run unpacks it (once per machine); not what the figures are about.
  await sh(`${BINARY} --version >/dev/null`);
  const disk = `${OUT_DIR}/disk.img`;
  try {
    if (Deno.statSync(disk).size !== DISK_BYTES) throw new Error();
  } catch {
    await sh(`head -c ${DISK_BYTES} /dev/urandom > ${disk}`);
  }
  return { initrd, disk };
}

// ---------------------------------------------------------------------------------------------
// Running one VM: wall time to the marker, the guest's results, the process's memory.

interface RunResult {
  /** ms from spawn to the marker line on the console. */
  wallMs: number;
  /** The guest's /proc/uptime at the marker, in seconds. */
  uptime: number;
  /** VmHWM at the marker, KiB; and the guest RAM mapping's resident KiB. */
  hwmKiB: number;
  guestKiB: number;
  /** BENCH key=value numbers the guest printed. */
  values: Record<string, number>;
  /** The steady state of each run the guest timed in chunks (`bench_chunks`), by key. */
  steady: Record<string, number>;
}

function guestResidentKiB(pid: number, ramBytes: number): number {
  // The guest RAM mapping: the largest resident mapping at least the guest's RAM in size (QEMU's
  // may be larger, with alignment). Its Rss is the guest pages touched.
  let best = 0;
  try {
    const smaps = Deno.readTextFileSync(`/proc/${pid}/smaps`);
    for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
      const size = Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
      const rss = Number(/^Rss:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
      if (size * 1024 >= ramBytes && rss > best) best = rss;
    }
  } catch { /* the process ended */ }
  // No guest mapping left: the VMM was already tearing down; no figure rather than a wrong one.
  return best > 0 ? best : NaN;
}

function vmHwmKiB(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1]);
  } catch {
    return NaN;
  }
}

const FAILED: RunResult = {
  wallMs: NaN,
  uptime: NaN,
  hwmKiB: NaN,
  guestKiB: NaN,
  values: {},
  steady: {},
};
/** Runs that ended without the marker (hung or failed): counted and shown, not hidden. */
const failures: string[] = [];

/** One VM run; a run that fails or hangs is reported and counts as missing, not as a number. */
async function runVm(
  cmd: string[],
  timeoutMs = 120_000,
  env?: Record<string, string>,
): Promise<RunResult> {
  try {
    return await runVmOnce(cmd, timeoutMs, env);
  } catch (e) {
    const what = `${cmd[0].split("/").pop()} ${cmd.slice(1).join(" ")}`.slice(0, 160);
    failures.push(`${what}: ${(e as Error).message.split("\n")[0]}`);
    console.error(`bench: FAILED ${(e as Error).message.split("\n").slice(0, 3).join(" | ")}`);
    return FAILED;
  }
}

async function runVmOnce(
  cmd: string[],
  timeoutMs: number,
  env?: Record<string, string>,
): Promise<RunResult> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const errText = new Response(child.stderr).text();
  let out = "";
  let wallMs = NaN, hwmKiB = NaN, guestKiB = NaN;
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    out += decoder.decode(chunk, { stream: true });
    if (Number.isNaN(wallMs) && out.includes("BENCH-MARKER")) {
      wallMs = performance.now() - t0;
      hwmKiB = vmHwmKiB(child.pid);
      guestKiB = guestResidentKiB(child.pid, RAM_BYTES);
    }
  }
  const status = await child.status;
  clearTimeout(timer);
  const err = await errText;
  if (Number.isNaN(wallMs)) {
    throw new Error(`bench: no marker from ${cmd.join(" ")} (status ${status.code})\n${out}${err}`);
  }
  const uptime = Number(/BENCH-MARKER uptime=([\d.]+)/.exec(out)?.[1]);
  const values: Record<string, number> = {};
  for (const m of out.matchAll(/^BENCH ([a-z_]+)=([\d.]+)(?=\s|$)/gm)) values[m[1]] = Number(m[2]);
  const steady: Record<string, number> = {};
  for (const [key, chunks] of Object.entries(chunkLines(out))) steady[key] = steadyState(chunks);
  return { wallMs, uptime, hwmKiB, guestKiB, values, steady };
}

// ---------------------------------------------------------------------------------------------
// The two VMMs' command lines for the same guest.

interface Guest {
  kernel: string;
  initrd: string;
  params: string;
  cpus: number;
  disk?: string;
}

/** The single binary users run (`deno task compile`), rebuilt from these sources in prepare(). */
const BINARY = `${REPO}denovmm`;

function denovmm(g: Guest): string[] {
  return [
    BINARY,
    "run",
    "-k",
    g.kernel,
    "-i",
    g.initrd,
    "-m",
    RAM,
    "-c",
    `${g.cpus}`,
    "-p",
    g.params,
    ...(g.disk ? ["-d", `${g.disk},ro`] : []),
  ];
}

function qemu(machine: "microvm" | "pc", g: Guest): string[] {
  return [
    QEMU,
    "-M",
    machine,
    "-accel",
    "kvm",
    "-cpu",
    "host",
    "-m",
    RAM,
    "-smp",
    `${g.cpus}`,
    "-kernel",
    g.kernel,
    "-initrd",
    g.initrd,
    "-append",
    `${BASE_CMDLINE} ${g.params}`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
    // The guest ends the VM through port 0x501, as under denovmm.
    "-device",
    "isa-debug-exit,iobase=0x501,iosize=1",
    ...(g.disk
      ? [
        "-drive",
        `file=${g.disk},format=raw,if=none,id=d0,cache=none,aio=threads,readonly=on`,
        "-device",
        "virtio-blk-pci,drive=d0",
      ]
      : []),
  ];
}

// ---------------------------------------------------------------------------------------------
// Statistics and the report.

interface Row {
  figure: string;
  unit: string;
  /** Whether a higher number is better (throughput) or a lower one (time, memory). */
  higherIsBetter: boolean;
  denovmm: number[];
  peer: string;
  qemu: number[];
  target?: string;
}

const rows: Row[] = [];
function row(figure: string, unit: string, peer: string, higherIsBetter = false, target = "") {
  const r: Row = { figure, unit, higherIsBetter, denovmm: [], peer, qemu: [], target };
  rows.push(r);
  return r;
}

function report(): string {
  const lines = [
    `denovmm vs QEMU${ARCH === "arm64" ? " arm64 (virt)" : ""} ${
      new Date().toISOString()
    } (${ROUNDS} rounds, A B alternating; ratio = denovmm/QEMU per round)`,
    "",
    [
      "figure".padEnd(44),
      "unit".padEnd(7),
      "denovmm med [min-max]".padEnd(24),
      "QEMU".padEnd(12),
      "QEMU med [min-max]".padEnd(24),
      "ratio med [min-max]".padEnd(22),
      "target",
    ].join(" "),
  ];
  for (const r of rows) {
    if (r.denovmm.length === 0) continue;
    const ratios = roundRatios(r.denovmm, r.qemu);
    lines.push([
      r.figure.padEnd(44),
      r.unit.padEnd(7),
      span(r.denovmm).padEnd(24),
      r.peer.padEnd(12),
      span(r.qemu).padEnd(24),
      span(ratios).padEnd(22),
      r.target ?? "",
    ].join(" "));
  }
  if (failures.length > 0) {
    lines.push("", `${failures.length} run(s) ended without a result (left out above):`);
    for (const f of failures) lines.push(`  ${f}`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// arm64: the guest program built on the host (cross compiler), measured in the arm64 sandbox.

async function have(cmd: string): Promise<boolean> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `command -v ${cmd}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return r.code === 0;
}

/** The guest program, the initramfs with it as /init, and the arm64 executable. */
async function buildArm64(): Promise<void> {
  Deno.mkdirSync(OUT_DIR, { recursive: true });
  for (const f of ["Image", "initramfs.cpio.gz"]) {
    try {
      Deno.statSync(`${ARM64_GUEST}/${f}`);
    } catch {
      throw new Error(`bench: no ${ARM64_GUEST}/${f}; run scripts/setup.sh first`);
    }
  }
  const cc = Deno.build.arch === "aarch64" ? "gcc" : "aarch64-linux-gnu-gcc";
  if (!(await have(cc))) {
    if (Deno.build.arch !== "x86_64" || !(await have("apt-get"))) {
      throw new Error(`bench: no ${cc} to build the arm64 guest program with`);
    }
    // Only the benchmark needs it (not setup, not CI): installed on demand, said so.
    log(
      "no aarch64-linux-gnu-gcc: installing gcc-aarch64-linux-gnu and libc6-dev-arm64-cross " +
        "(apt-get) to build the arm64 guest program scripts/bench/guest_bench.c",
    );
    await sh(
      "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " +
        "gcc-aarch64-linux-gnu libc6-dev-arm64-cross >&2",
    );
  }
  await sh(`${cc} -O2 -static -o ${ARM64_GUEST_PROGRAM} ${REPO}scripts/bench/guest_bench.c`);
  const program = Deno.readFileSync(ARM64_GUEST_PROGRAM);
  const why = notStaticAarch64(program);
  if (why) throw new Error(`bench: ${ARM64_GUEST_PROGRAM}: ${why}`);
  const overlay = `${OUT_DIR}/overlay-arm64.cpio.gz`;
  await writeCpioGz(overlay, [{ path: "init", mode: 0o100755, data: program }]);
  await sh(`cat ${ARM64_GUEST}/initramfs.cpio.gz ${overlay} > ${ARM64_INITRD}`);
  await sh(`cd ${REPO} && bash scripts/compile.sh --target aarch64 >/dev/null`);
}

/** Where it runs (the arm64 sandbox): all of it built, the executable unpacked once. */
async function readyArm64(): Promise<void> {
  for (const f of [ARM64_BINARY, ARM64_INITRD, `${ARM64_GUEST}/Image`]) {
    try {
      Deno.statSync(f);
    } catch {
      throw new Error(
        `bench: no ${f}: \`deno task bench --arch arm64\` (scripts/bench.sh) builds it first`,
      );
    }
  }
  // Its first run unpacks it (once per machine; the sandbox's home is new each time).
  await sh(`${ARM64_BINARY} --version >/dev/null`);
}

async function benchArm64(): Promise<void> {
  if (!options.prepared) await buildArm64();
  if (options.prepareOnly) return;
  await readyArm64();
  // The nested guests boot under an emulated CPU: a boot takes about half a minute.
  const timeoutMs = 300_000;
  const g = (params: string, cpus: number): Arm64Guest => ({
    kernel: `${ARM64_GUEST}/Image`,
    initrd: ARM64_INITRD,
    params,
    cpus,
    ram: RAM,
  });
  if (ONLY.has("boot")) {
    await section("boot", async () => {
      for (const cpus of [1, 2]) {
        const guest = g("quiet bench=boot", cpus);
        const wall = row(`boot to /init, Image, ${cpus} vCPU (wall)`, "s", "virt");
        const up = row(`  guest uptime at /init, ${cpus} vCPU`, "s", "virt");
        const rss = row(`peak RSS, boot, ${cpus} vCPU`, "MiB", "virt");
        const rssNet = row(`  RSS less guest pages touched, ${cpus} vCPU`, "MiB", "virt");
        for (let round = 0; round < ROUNDS; round++) {
          // A B A B: each denovmm run next to the QEMU run it is compared with.
          const d = await runVm(denovmmArm64(ARM64_BINARY, guest), timeoutMs);
          const q = await runVm(qemuArm64(QEMU_ARM64, guest), timeoutMs);
          wall.denovmm.push(d.wallMs / 1000), wall.qemu.push(q.wallMs / 1000);
          up.denovmm.push(d.uptime), up.qemu.push(q.uptime);
          rss.denovmm.push(d.hwmKiB / 1024), rss.qemu.push(q.hwmKiB / 1024);
          rssNet.denovmm.push((d.hwmKiB - d.guestKiB) / 1024);
          rssNet.qemu.push((q.hwmKiB - q.guestKiB) / 1024);
          log(
            `boot ${cpus} vCPU round ${round + 1}: denovmm ${fmt(d.wallMs / 1000)} s ` +
              `(uptime ${d.uptime} s), QEMU ${fmt(q.wallMs / 1000)} s (uptime ${q.uptime} s)`,
          );
        }
      }
    });
  }
  if (ONLY.has("exits")) {
    await section("exits", async () => {
      // 10 000 (x86: 20 000): an exit costs 0.5-0.8 ms in the arm64 sandbox, several times x86's.
      const n = 10000;
      const mmio = row("exit round trip, MMIO write (unclaimed)", "µs", "virt");
      const pio = row("exit round trip, PCI I/O window write", "µs", "virt");
      const hex = (a: number) => `0x${a.toString(16)}`;
      // The second half of each run, timed in chunks (stats.ts, steadyState).
      const mmioSteady = row("  MMIO write, steady state", "µs", "virt");
      const pioSteady = row("  PCI I/O window write, steady state", "µs", "virt");
      const cases = [
        ["mmio", mmio, mmioSteady, UNCLAIMED_MMIO, UNCLAIMED_MMIO],
        ["pio window", pio, pioSteady, pioWindowAddress("denovmm"), pioWindowAddress("qemu")],
      ] as const;
      for (let round = 0; round < ROUNDS; round++) {
        for (const [what, r, rSteady, atD, atQ] of cases) {
          const params = (at: number) =>
            `quiet bench=mmio bench_n=${n} bench_addr=${hex(at)} bench_chunks=10`;
          const d = await runVm(denovmmArm64(ARM64_BINARY, g(params(atD), 1)), timeoutMs);
          const q = await runVm(qemuArm64(QEMU_ARM64, g(params(atQ), 1)), timeoutMs);
          r.denovmm.push(d.values.mmio_us), r.qemu.push(q.values.mmio_us);
          rSteady.denovmm.push(d.steady.mmio ?? NaN), rSteady.qemu.push(q.steady.mmio ?? NaN);
          log(
            `exits ${what} round ${round + 1}: denovmm ${d.values.mmio_us} µs (${hex(atD)}), ` +
              `QEMU ${q.values.mmio_us} µs (${hex(atQ)})`,
          );
        }
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------

const log = (s: string) => console.error(`bench: ${s}`);

// A section (boot, exits, ...) that this run finished before the sandbox's kernel died is kept,
// not measured again, when with-kvm.sh starts the run once more (./bench/checkpoint.ts).
const checkpoint = new Checkpoint<Row>(
  `${OUT_DIR}/checkpoint-${ARCH}.json`,
  options.prepared ? Deno.env.get("DENOVMM_BENCH_RUN") : undefined,
);
async function section(name: string, body: () => Promise<void>): Promise<void> {
  const kept = checkpoint.restore(name);
  if (kept) {
    rows.push(...kept.rows), failures.push(...kept.failures);
    log(`${name}: as this run's first try measured it (the sandbox's kernel died after it)`);
    return;
  }
  const firstRow = rows.length, firstFailure = failures.length;
  await body();
  checkpoint.save(name, { rows: rows.slice(firstRow), failures: failures.slice(firstFailure) });
}

/**
 * One exit on a trivial guest (exit_floor.c's: N writes to an unclaimed port from real mode),
 * where no guest kernel adds its own noise: a C loop of KVM_RUN calls (the least any VMM does),
 * denovmm's exit loop as an AP's Worker runs it, and in slices as the boot vCPU runs it on the
 * main thread (scripts/bench/exit_floor.ts), each against QEMU `microvm` running the same loop
 * as its firmware (exit_floor_bios.ts), timed from the difference of two runs so that QEMU's
 * own start is left out.
 */
async function exitFloors(): Promise<void> {
  const n = 30000;
  const qShort = 1000, qLong = 1000 + 2 * n;
  const bios = (count: number) => {
    const path = `${OUT_DIR}/exit_floor_bios_${count}.bin`;
    Deno.writeFileSync(path, exitFloorBios(count));
    return path;
  };
  const [short, long] = [bios(qShort), bios(qLong)];
  const qemuMs = async (firmware: string) => {
    const t0 = performance.now();
    const r = await new Deno.Command(QEMU, {
      args: [
        ...["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "16M", "-bios", firmware],
        ...["-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none"],
        ...["-serial", "none", "-device", "isa-debug-exit,iobase=0x501,iosize=1"],
      ],
      stdout: "null",
    }).output();
    // isa-debug-exit ends QEMU with (value << 1) | 1.
    return r.code === 1 ? performance.now() - t0 : NaN;
  };
  const floorUs = async (cmd: string[]) => {
    const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stderr: "inherit" }).output();
    return Number(
      /FLOOR \S+ exits=\d+ us=([\d.]+)/.exec(new TextDecoder().decode(out.stdout))?.[1],
    );
  };
  const js = (mode: string) => [
    Deno.execPath(),
    ...["run", "-A", "--quiet", `${REPO}scripts/bench/exit_floor.ts`, mode, `${n}`],
  ];
  const c = row("exit floor, trivial guest: C loop", "µs", "microvm");
  const loop = row("  denovmm's exit loop (an AP's)", "µs", "microvm");
  const slice = row("  the same in slices (the boot vCPU's)", "µs", "microvm");
  await qemuMs(short); // its libraries read once before timing
  for (let round = 0; round < ROUNDS; round++) {
    const q = (await qemuMs(long) - await qemuMs(short)) * 1000 / (qLong - qShort);
    const r = [await floorUs([EXIT_FLOOR_C, `${n}`]), await floorUs(js("loop"))];
    r.push(await floorUs(js("slice")));
    [c, loop, slice].forEach((row, i) => (row.denovmm.push(r[i]), row.qemu.push(q)));
    log(
      `exit floor round ${round + 1}: C ${r[0]} µs, loop ${r[1]} µs, slices ${r[2]} µs, ` +
        `QEMU ${fmt(q)} µs`,
    );
  }
}

async function benchX86(): Promise<void> {
  const { initrd, disk } = await prepare();
  if (options.prepareOnly) return;
  const bz = `${GUEST}/vmlinuz`;
  const elf = `${GUEST}/vmlinux`;

  if (ONLY.has("boot")) {
    await section("boot", async () => {
      // RSS less guest pages per vCPU count, for what one more vCPU adds.
      const net: Record<number, { denovmm: number[]; qemu: number[] }> = {};
      for (const cpus of [1, 2]) {
        const g = (kernel: string): Guest => ({ kernel, initrd, params: "quiet bench=boot", cpus });
        const s = cpus === 1 ? "" : "s";
        // The figures first: the vmlinux against QEMU `pc` on the bzImage (what most
        // users run) and against QEMU's fastest way to boot the same kernel.
        const elfPc = row(
          `boot to /init, vmlinux, ${cpus} vCPU${s} (wall)`,
          "s",
          "pc bzImage",
          false,
          cpus === 1 ? "≤0.50" : "≤0.60",
        );
        const elfBest = row(`  same, vs QEMU's fastest`, "s", "", false, cpus === 1 ? "≤0.70" : "");
        // QEMU loads an ELF vmlinux with a PVH note (Debian's has CONFIG_PVH=y) through PVH:
        // no real mode, no decompression, as denovmm's vmlinux boot.
        const peers = {
          "pc bzImage": [] as number[],
          "pc PVH": [] as number[],
          "microvm bz": [] as number[],
          "microvm PVH": [] as number[],
        };
        const others = (["pc PVH", "microvm PVH", "microvm bz"] as const).map((peer) =>
          [peer, row(`  same, vs QEMU ${peer}`, "s", peer)] as const
        );
        const bzPc = row(`boot to /init, bzImage, ${cpus} vCPU${s} (wall)`, "s", "pc bzImage");
        const upPc = row(`  guest uptime at /init, vmlinux, ${cpus} vCPU${s}`, "s", "pc bzImage");
        const rss = row(`peak RSS, boot, ${cpus} vCPU${s} (vmlinux)`, "MiB", "microvm bz");
        const rssNet = row(
          `RSS less guest pages touched, ${cpus} vCPU${s}`,
          "MiB",
          "microvm bz",
          false,
          cpus === 1 ? "≤48 MiB" : "",
        );
        // With 1 vCPU, the same boot with vCPU 0 on a Worker (DENOVMM_BOOT_VCPU=worker): what
        // running it on the main thread saves the start and the memory.
        const onWorker = cpus === 1
          ? {
            wall: row("  boot to /init, vCPU 0 on a Worker", "s", "pc bzImage"),
            rssNet: row("  RSS less guest pages, vCPU 0 on a Worker", "MiB", "microvm bz"),
          }
          : undefined;
        for (let round = 0; round < ROUNDS; round++) {
          // A B A B: each denovmm run next to the QEMU runs it is compared with.
          const dElf = await runVm(denovmm(g(elf)));
          const qPc = await runVm(qemu("pc", g(bz)));
          const dBz = await runVm(denovmm(g(bz)));
          const qPcPvh = await runVm(qemu("pc", g(elf)));
          const qMicroPvh = await runVm(qemu("microvm", g(elf)));
          const qMicro = await runVm(qemu("microvm", g(bz)));
          peers["pc bzImage"].push(qPc.wallMs / 1000);
          peers["pc PVH"].push(qPcPvh.wallMs / 1000);
          peers["microvm bz"].push(qMicro.wallMs / 1000);
          peers["microvm PVH"].push(qMicroPvh.wallMs / 1000);
          elfPc.denovmm.push(dElf.wallMs / 1000);
          elfBest.denovmm.push(dElf.wallMs / 1000);
          for (const [, r] of others) r.denovmm.push(dElf.wallMs / 1000);
          bzPc.denovmm.push(dBz.wallMs / 1000), bzPc.qemu.push(qPc.wallMs / 1000);
          upPc.denovmm.push(dElf.uptime), upPc.qemu.push(qPc.uptime);
          rss.denovmm.push(dElf.hwmKiB / 1024), rss.qemu.push(qMicro.hwmKiB / 1024);
          rssNet.denovmm.push((dElf.hwmKiB - dElf.guestKiB) / 1024);
          rssNet.qemu.push((qMicro.hwmKiB - qMicro.guestKiB) / 1024);
          if (onWorker) {
            const dW = await runVm(denovmm(g(elf)), undefined, { DENOVMM_BOOT_VCPU: "worker" });
            onWorker.wall.denovmm.push(dW.wallMs / 1000),
              onWorker.wall.qemu.push(qPc.wallMs / 1000);
            onWorker.rssNet.denovmm.push((dW.hwmKiB - dW.guestKiB) / 1024);
            onWorker.rssNet.qemu.push((qMicro.hwmKiB - qMicro.guestKiB) / 1024);
          }
          log(
            `boot ${cpus} vCPU round ${round + 1}: denovmm vmlinux ${fmt(dElf.wallMs / 1000)} s, ` +
              `bz ${fmt(dBz.wallMs / 1000)} s; QEMU pc bz ${fmt(qPc.wallMs / 1000)} s, ` +
              `pc PVH ${fmt(qPcPvh.wallMs / 1000)} s, microvm PVH ${
                fmt(qMicroPvh.wallMs / 1000)
              } s, microvm bz ${fmt(qMicro.wallMs / 1000)} s`,
          );
        }
        elfPc.qemu = peers["pc bzImage"];
        for (const [peer, r] of others) r.qemu = peers[peer];
        const best = fastest(peers);
        elfBest.peer = best.name;
        elfBest.qemu = best.samples;
        net[cpus] = { denovmm: rssNet.denovmm, qemu: rssNet.qemu };
      }
      const added = row(
        "  RSS less guest pages, the 2nd vCPU adds",
        "MiB",
        "microvm bz",
        false,
        "≤8 MiB",
      );
      added.denovmm = roundDiffs(net[1].denovmm, net[2].denovmm);
      added.qemu = roundDiffs(net[1].qemu, net[2].qemu);
      // The floor under that figure: what an empty Worker adds to a Deno process (every thread
      // that runs JavaScript has an isolate of its own), with the launcher's malloc arenas.
      const first = row("  floor: an empty Deno Worker adds (1st)", "MiB", "");
      const second = row("  floor: an empty Deno Worker adds (2nd)", "MiB", "");
      for (let round = 0; round < ROUNDS; round++) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", `${REPO}scripts/bench/worker_floor.ts`, "2"],
          env: { MALLOC_ARENA_MAX: "2" },
          stderr: "inherit",
        }).output();
        const kib =
          (/WORKER_FLOOR rss_kib=([\d,]+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ??
            "").split(",").map(Number);
        first.denovmm.push((kib[1] - kib[0]) / 1024);
        second.denovmm.push((kib[2] - kib[1]) / 1024);
      }
    });
  }

  if (ONLY.has("exits")) {
    await section("exits", async () => {
      const n = 20000;
      // Timed in ten chunks as well: the steady state leaves out the first writes, which pay for
      // V8's optimizing compiles (stats.ts, steadyState).
      const g = (mode: string): Guest => ({
        kernel: elf,
        initrd,
        params: `quiet bench=${mode} bench_n=${n} bench_chunks=10`,
        cpus: 1,
      });
      const pio = row("exit round trip, port I/O write", "µs", "microvm bz", false, "≤1.05");
      // QEMU's guest entered as denovmm's is (the same vmlinux, through PVH): the guest's entry
      // changes what an exit costs it under the sandbox's emulation (README "Benchmarks").
      const pioPvh = row("  same, vs QEMU on the vmlinux", "µs", "microvm PVH");
      const mmio = row("exit round trip, MMIO write", "µs", "microvm bz", false, "≤1.00");
      const mmioPvh = row("  same, vs QEMU on the vmlinux", "µs", "microvm PVH");
      // vCPU 0 on a Worker, as the APs run (DENOVMM_BOOT_VCPU=worker), against the same QEMU runs:
      // what the main thread's slices cost an exit.
      const pioWorker = row("  port write, vCPU 0 on a Worker", "µs", "microvm bz");
      const mmioWorker = row("  MMIO write, vCPU 0 on a Worker", "µs", "microvm bz");
      // The same runs' second halves: an exit once the JIT has warmed up.
      const pioSteady = row("  port write, steady state", "µs", "microvm bz");
      const pioSteadyWorker = row("  port write, steady, vCPU 0 on a Worker", "µs", "microvm bz");
      const mmioSteady = row("  MMIO write, steady state", "µs", "microvm bz");
      const mmioSteadyWorker = row("  MMIO write, steady, vCPU 0 on a Worker", "µs", "microvm bz");
      const cases = [
        [`pio`, pio, pioPvh, pioWorker, pioSteady, pioSteadyWorker, "pio_us"],
        ["mmio", mmio, mmioPvh, mmioWorker, mmioSteady, mmioSteadyWorker, "mmio_us"],
      ] as const;
      const onWorker = { DENOVMM_BOOT_VCPU: "worker" };
      for (let round = 0; round < ROUNDS; round++) {
        for (const [mode, r, rPvh, rWorker, rSteady, rSteadyWorker, key] of cases) {
          const d = await runVm(denovmm(g(mode)));
          const q = await runVm(qemu("microvm", { ...g(mode), kernel: bz }));
          const dWorker = await runVm(denovmm(g(mode)), undefined, onWorker);
          const qPvh = await runVm(qemu("microvm", g(mode)));
          r.denovmm.push(d.values[key]), rPvh.denovmm.push(d.values[key]);
          r.qemu.push(q.values[key]), rPvh.qemu.push(qPvh.values[key]);
          rWorker.denovmm.push(dWorker.values[key]), rWorker.qemu.push(q.values[key]);
          rSteady.denovmm.push(d.steady[mode] ?? NaN), rSteady.qemu.push(q.steady[mode] ?? NaN);
          rSteadyWorker.denovmm.push(dWorker.steady[mode] ?? NaN);
          rSteadyWorker.qemu.push(q.steady[mode] ?? NaN);
          log(
            `exits ${mode} round ${round + 1}: denovmm ${d.values[key]} µs (vCPU 0 on a Worker ${
              dWorker.values[key]
            } µs), QEMU ${q.values[key]} µs (bzImage), ${qPvh.values[key]} µs (vmlinux); ` +
              `steady state: denovmm ${fmt(d.steady[mode])} (Worker ${
                fmt(dWorker.steady[mode])
              }), ` +
              `QEMU ${fmt(q.steady[mode])} µs`,
          );
        }
      }
    });
  }

  if (ONLY.has("exits")) await section("floors", exitFloors);

  if (ONLY.has("disk")) {
    await section("disk", async () => {
      const g: Guest = {
        kernel: elf,
        initrd,
        params: "quiet bench=disk bench_n=2000",
        cpus: 1,
        disk,
      };
      const seq = row("disk sequential read 1 MiB O_DIRECT", "MiB/s", "pc bzImage", true, "≥1.0");
      const rand = row("disk random read 4 KiB O_DIRECT", "IOPS", "pc bzImage", true, "≥0.9");
      for (let round = 0; round < ROUNDS; round++) {
        const d = await runVm(denovmm(g));
        const q = await runVm(qemu("pc", { ...g, kernel: bz }));
        seq.denovmm.push(d.values.seq_mib_s), seq.qemu.push(q.values.seq_mib_s);
        rand.denovmm.push(d.values.rand_iops), rand.qemu.push(q.values.rand_iops);
        log(
          `disk round ${
            round + 1
          }: denovmm ${d.values.seq_mib_s} MiB/s ${d.values.rand_iops} IOPS; ` +
            `QEMU ${q.values.seq_mib_s} MiB/s ${q.values.rand_iops} IOPS`,
        );
      }
    });
  }

  if (ONLY.has("startup")) {
    await section("startup", async () => {
      const binary = BINARY;
      const time = async (cmd: string[], env?: Record<string, string>) => {
        const t0 = performance.now();
        const r = await new Deno.Command(cmd[0], { args: cmd.slice(1), env, stdout: "null" })
          .output();
        if (r.code !== 0) throw new Error(`bench: ${cmd.join(" ")} exited ${r.code}`);
        return performance.now() - t0;
      };
      // Cold: the page cache dropped before each run (needs root; the sandbox is).
      const drop = () =>
        sh("sync; echo 3 > /proc/sys/vm/drop_caches").then(() => true, () => false);
      const cold = row("--version, cold page cache", "ms", "QEMU");
      const warm = row("--version, warm", "ms", "QEMU");
      // The floor under any program on this Deno: an empty module, run as the executable runs
      // denovmm (the same Deno, copied out of the repository as the executable unpacks its own,
      // with a code cache of its own), against the same QEMU --version.
      const floor = row("an empty Deno program, warm", "ms", "QEMU");
      const dir = Deno.makeTempDirSync({ prefix: "denovmm-bench-" });
      const deno = `${dir}/deno`;
      Deno.copyFileSync(Deno.execPath(), deno);
      Deno.chmodSync(deno, 0o755);
      Deno.writeTextFileSync(`${dir}/empty.js`, "export {};\n");
      const empty = [deno, "run", "-A", "--no-lock", "--no-config", `${dir}/empty.js`];
      const env = { DENO_DIR: `${dir}/.deno`, DENO_NO_UPDATE_CHECK: "1" };
      await time(empty, env); // writes its code cache
      for (let round = 0; round < ROUNDS; round++) {
        if (await drop()) cold.denovmm.push(await time([binary, "--version"]));
        if (await drop()) cold.qemu.push(await time([QEMU, "--version"]));
        warm.denovmm.push(await time([binary, "--version"]));
        warm.qemu.push(await time([QEMU, "--version"]));
        floor.denovmm.push(await time(empty, env));
        floor.qemu.push(warm.qemu[warm.qemu.length - 1]);
      }
      Deno.removeSync(dir, { recursive: true });
    });
  }
}

if (ARCH === "arm64") await benchArm64();
else await benchX86();
if (options.prepareOnly) Deno.exit(0);

const text = report();
console.log(text);
Deno.mkdirSync(OUT_DIR, { recursive: true });
Deno.writeTextFileSync(
  options.out,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      arch: ARCH,
      // Where it ran: the sandbox's CPUs and kernel (or the host's, with a usable /dev/kvm).
      machine: { cpus: navigator.hardwareConcurrency, kernel: Deno.osRelease() },
      rounds: ROUNDS,
      rows,
      failures,
      table: text,
    },
    null,
    2,
  ),
);
console.error(`bench: raw numbers in ${options.out}`);
checkpoint.clear();
