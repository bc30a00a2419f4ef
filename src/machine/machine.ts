/**
 * Builds and runs one VM from a plain description: KVM VM and RAM, the Linux boot, the vCPUs
 * (each on its own Worker), and the console. What only the architecture knows (memory map,
 * interrupt controller, boot protocol, CPU model) comes from its platform object (./arch.ts). Resolves with the status the VM ended with.
 */
import { VcpuFd } from "../../ffi/kvm_fds.ts";
import type { KvmRun } from "../../ffi/kvm_run.ts";
import { KVM_CAP } from "../../ffi/kvm.ts";
import { Serial8250, SERIAL_RX_CAPACITY } from "../devices/serial.ts";
import { platform } from "./arch_boot.ts";
import { createStats, ExitStats } from "../vcpu/exit_stats.ts";
import type { VcpuWorkerInit, VcpuWorkerReport } from "./vcpu_thread_protocol.ts";
import { allocateGuestRam, createVm, type GuestRam } from "./vm.ts";
import { KernelCopy } from "./kernel_copy.ts";
import { type ConsoleInput, StdinPump } from "../console/stdin_pump.ts";
import { InputRing } from "../console/input_ring.ts";
import { EventFd } from "../../ffi/eventfd.ts";
import { type OpenInputFile, openInputFile, openKernelFile } from "./input_files.ts";
import { pciIntxRoutes, planPci } from "./pci_devices.ts";
import { GsiRouter } from "./gsi_router.ts";
import { msixEvents } from "../pci/msix.ts";
import { findHostDevice, type HostPciDevice } from "../vfio/host_device.ts";
import { mapGuestRam, openVfioDevice } from "../vfio/container.ts";
import { virtioRequests } from "./virtio_devices.ts";
import type { DiskOption } from "../virtio/blk.ts";
import type { NetOption } from "../virtio/net.ts";
import type { IoWorkerInit, IoWorkerReport } from "./io_thread_protocol.ts";
import { DiskSync } from "./disk_sync.ts";
import { VcpuStopper } from "./vcpu_stop.ts";
import { BootVcpu } from "./boot_vcpu.ts";
import { EventLoopProbe } from "../../ffi/event_loop_probe.ts";
import { readableNow } from "../../ffi/readable_now.ts";
import { describeError } from "../log.ts";
import { exitOnSignal, routeStopSignals, signalStatus, type StopSignal } from "./signals.ts";

export interface VfioDeviceOption {
  bdf: string;
  /** Hide the device's MSI-X capability (its driver falls back to MSI or INTx). */
  noMsix?: boolean;
}

export interface MachineConfig {
  kernelPath: string;
  initrdPath?: string;
  cmdline: string;
  ramBytes: number;
  cpus: number;
  debug: boolean;
  /** `--disk PATH[,ro]`, in order. */
  disks?: DiskOption[];
  /** `--rng`: a virtio-rng fed from the host's CSPRNG. */
  rng?: boolean;
  /** `--network tap[=NAME][,mac=MAC]`, in order. */
  nets?: NetOption[];
  /** `--vfio-pci BDF[,nomsix]`: host PCI devices passed through with VFIO. */
  vfio?: VfioDeviceOption[];
  /** Where the terminal is wired: the 8250 (ttyS0, default) or a virtio console (hvc0). */
  console?: "serial" | "virtio";
}

/** A machine that cannot be built on this host as asked (one line for the user). */
export class MachineError extends Error {
  override name = "MachineError";
}

export interface MachineResult {
  status: number;
  /** For stderr: why the VM ended badly (with a register dump), if it did. */
  message?: string;
}

const STDOUT_FD = 1;
/**
 * How many asks of vCPU 0's slices (one a tick, 20 ms, or one every 1024 exits) say "work" after
 * one that found it. A SIGTERM sent just before stdin's EOF was seen only at the slice's clock,
 * while the EOF's turn let the guest power off first: status 0 instead of 143
 * (tests/kvm/fault_test.ts, once in a suite run).
 */
const WARM_ASKS = 5;
/** How often a piped stdin's EOF is repeated to the guest (see StdinPump). */
const EOF_REPEAT_MS = 300;
/** How long the vCPUs get to leave KVM_RUN when the VM ends, and how often they are kicked. */
const VCPU_STOP_TIMEOUT_MS = 2000;
const VCPU_KICK_REPEAT_MS = 50;

/**
 * Set up the VM and run it; throws (before any vCPU runs) on bad input or a host without KVM.
 * However the VM ends (the guest, Ctrl-A x, SIGTERM/SIGINT/SIGHUP, an error), its vCPUs are
 * stopped and then every writable disk is flushed (fdatasync) before this resolves.
 */
export async function runMachine(cfg: MachineConfig): Promise<MachineResult> {
  // --debug: when each step of the start-up ended, in ms since the process started.
  const steps: string[] = [];
  const mark = (step: string) => steps.push(`${step} ${Math.round(performance.now())}`);
  mark("machine loaded");
  const { kernel, close: closeKernel } = openKernelFile(cfg.kernelPath);
  let initrd: OpenInputFile | undefined;
  let threads: Threads | undefined;
  let copy: KernelCopy | undefined;
  let setup: ReturnType<typeof buildMachine>;
  let disks: DiskSync | undefined;
  try {
    initrd = cfg.initrdPath ? openInputFile(cfg.initrdPath, "initrd") : undefined;
    // Bad input is reported as such before /dev/kvm is opened, so on any host, KVM or not. The
    // kernel is parsed here, once, and checked against the RAM it is given once, below.
    const parsed = platform.parseKernel(kernel);
    mark("kernel parsed");
    const hosts = (cfg.vfio ?? []).map((v) => findHostDevice(v.bdf));
    const withIo = (cfg.disks ?? []).length > 0 || (cfg.nets ?? []).length > 0 ||
      cfg.rng === true || cfg.console === "virtio" || hosts.length > 0;
    // A vmlinux's segments (tens of MiB) go into RAM on a pool thread from now on, while this
    // thread is held starting the Workers (kernel_copy.ts). The VM itself comes after that.
    const ram = allocateGuestRam(cfg.ramBytes);
    const placed = platform.placeKernel(parsed, ram.layout);
    if (!(kernel instanceof Uint8Array) && placed.copies) {
      copy = new KernelCopy(kernel.source, placed.copies, ram.memory);
    }
    // A Worker takes a while to start (its own V8 isolate and module graph: seconds under an
    // emulated CPU). Started now, they load while this thread builds the VM; each then waits
    // for its init message.
    mark("RAM mapped");
    threads = new Threads(cfg.cpus, withIo, bootVcpuOnWorker());
    mark("Workers made");
    const tBuild = performance.now();
    setup = buildMachine(cfg, ram, placed, initrd, hosts, copy !== undefined, mark);
    disks = new DiskSync((cfg.disks ?? []).filter((d) => !d.readOnly).map((d) => d.path));
    await copy?.done();
    mark("kernel copied");
    if (cfg.debug) {
      console.error(
        `denovmm: VM built ${Math.round(performance.now())} ms after start ` +
          `(${Math.round(performance.now() - tBuild)} ms to build it); ms after start: ` +
          steps.join(", "),
      );
    }
  } catch (e) {
    threads?.terminate();
    disks?.close();
    throw e;
  } finally {
    // The guest is loaded (or will not be): the files are not needed while it runs. Not before
    // the pool's reads into RAM are over, though: a closed descriptor's number is soon reused.
    await copy?.settled();
    closeKernel();
    initrd?.close();
  }
  const running = threads;
  const flushed = disks;
  return await running.run(cfg, setup, flushed).catch((e) => {
    running.terminate();
    throw e;
  }).finally(() => flushed.close());
}

/** Everything the threads need, built on the main thread. */
function buildMachine(
  cfg: MachineConfig,
  ram: GuestRam,
  kernel: ReturnType<typeof platform.placeKernel>,
  initrd: OpenInputFile | undefined,
  hosts: HostPciDevice[],
  elfPiecesWritten: boolean,
  mark: (step: string) => void,
) {
  const consoleIo = cfg.console === "virtio"
    ? { ring: InputRing.createState(), inputFd: EventFd.create().fd, outFd: STDOUT_FD }
    : undefined;
  const requests = virtioRequests(cfg.disks ?? [], cfg.rng ?? false, cfg.nets ?? [], consoleIo);
  const { kvm, vm, layout, memory, ramHva, irqchipReady } = createVm(ram, cfg.cpus);
  mark("VM created");
  const passthrough = hosts.map((h) => {
    const d = openVfioDevice(h);
    mapGuestRam(d, layout.regions, ramHva);
    return d;
  });
  // The CPU every vCPU gets: its address width bounds the 64-bit PCI window.
  const vcpuModel = platform.vcpuModel(kvm, vm);
  const maxVcpus = kvm.checkExtension(KVM_CAP.MAX_VCPUS);
  if (cfg.cpus > maxVcpus) {
    throw new MachineError(`-c ${cfg.cpus}: this host's KVM allows at most ${maxVcpus} vCPUs`);
  }
  // Every vCPU, then the interrupt controller's last step, before the devices' irqfds: an arm64
  // vGIC initialises only once all vCPUs exist, and KVM binds no irqfd until it has.
  const runSize = kvm.vcpuMmapSize();
  const vcpus: VcpuFd[] = [];
  for (let id = 0; id < cfg.cpus; id++) {
    const vcpu = new VcpuFd(vm.createVcpu(id), runSize);
    vcpuModel.configure(vcpu, id);
    vcpus.push(vcpu);
  }
  irqchipReady();
  mark("vCPUs made");
  const mmio64 = platform.pciMmio64Window(layout, vcpuModel.physAddrBits);
  const pci = planPci(vm, requests, passthrough, cfg.vfio, undefined, mmio64);
  const entry = platform.loadKernel(memory, layout, kernel, {
    initrd,
    cmdline: cfg.cmdline,
    cpus: cfg.cpus,
    pciIntx: pciIntxRoutes(pci),
    mmio64,
    copiesMade: elfPiecesWritten,
  });
  mark("kernel loaded");
  // Only the boot vCPU starts at the kernel's entry; the guest starts the others.
  vcpuModel.enter(vcpus[0], entry);
  const vcpuFds = vcpus.map((v) => v.fd);
  // Each vCPU's kvm_run page, mapped here too: the main thread sets immediate_exit to stop it.
  const runs: KvmRun[] = vcpus.map((v) => v.run);
  return { vm, ramHva, pci, consoleIo, runSize, vcpuFds, runs };
}

/**
 * Whether vCPU 0 runs on a Worker of its own, as the APs do, instead of on the main thread in
 * slices (./boot_vcpu.ts): `DENOVMM_BOOT_VCPU=worker`. The main thread starts sooner and holds
 * one isolate less; a Worker's loop never hands the thread back, so V8 optimizes it once and
 * no tick interrupts it (README "Benchmarks": what each costs).
 */
export function bootVcpuOnWorker(): boolean {
  const v = Deno.env.get("DENOVMM_BOOT_VCPU");
  if (v === undefined || v === "" || v === "main") return false;
  if (v === "worker") return true;
  throw new MachineError(`DENOVMM_BOOT_VCPU is 'main' or 'worker', not '${v}'`);
}

/**
 * The boot vCPU (on this thread: ./boot_vcpu.ts), the application processors' Workers and the
 * I/O Worker, from their start to the VM's end.
 */
class Threads {
  /** The vCPU Workers: the APs', and vCPU 0's where it has one; index vCPU id - #firstWorker. */
  readonly #aps: Worker[] = [];
  /** 1, or 0 where vCPU 0 runs on a Worker too (bootVcpuOnWorker). */
  readonly #firstWorker: number;
  readonly #io: Worker | undefined;
  #resolve: (r: MachineResult) => void = () => {};
  readonly #ended = new Promise<MachineResult>((resolve) => this.#resolve = resolve);
  /** The vCPUs whose exit loop has not ended (nor their Worker failed). */
  readonly #looping = new Set<number>();
  #allStopped: () => void = () => {};
  readonly #stopped = new Promise<void>((resolve) => this.#allStopped = resolve);
  #openGate: () => void = () => {};

  /** Whether this thread's event loop has work, asked by vCPU 0 here between its exits. */
  readonly #probe: EventLoopProbe | undefined;
  /** Int32[0] turns 1 when an AP's Worker reports its end (VcpuWorkerInit.mail). */
  readonly #mail = new Int32Array(new SharedArrayBuffer(4));

  constructor(cpus: number, withIo: boolean, vcpu0OnWorker: boolean) {
    this.#firstWorker = vcpu0OnWorker ? 0 : 1;
    // Before the first Worker: each has an epoll instance of its own (../../ffi/event_loop_probe.ts).
    this.#probe = vcpu0OnWorker ? undefined : EventLoopProbe.ofThisThread();
    if (withIo) {
      const io = new Worker(new URL("./io_thread.ts", import.meta.url), { type: "module" });
      io.onmessage = (e: MessageEvent<IoWorkerReport>) => {
        if (e.data.type === "error") {
          this.#resolve({ status: 1, message: `I/O worker: ${e.data.message}` });
        }
      };
      io.onerror = (e) => {
        e.preventDefault();
        this.#resolve({ status: 1, message: `I/O worker failed: ${e.message}` });
      };
      this.#io = io;
    }
    this.#looping.add(0);
    for (let id = this.#firstWorker; id < cpus; id++) {
      const w = new Worker(new URL("./vcpu_thread.ts", import.meta.url), { type: "module" });
      w.onerror = (e) => {
        e.preventDefault();
        this.#loopEnded(id);
        this.#resolve({ status: 1, message: `vcpu${id} worker failed: ${e.message}` });
      };
      this.#aps.push(w);
      this.#looping.add(id);
    }
  }

  /** vCPU 0 on this thread, once every AP is ready; it ends as a Worker's loop would. */
  async #runBootVcpu(
    init: VcpuWorkerInit,
    stopper: VcpuStopper,
    allApsReady: Promise<void>,
    debug: boolean,
    pump: StdinPump,
  ): Promise<void> {
    try {
      const bsp = new BootVcpu(init);
      stopper.setThread(0, bsp.tid);
      await allApsReady;
      if (debug) {
        console.error(
          `denovmm: vcpu0 (main thread) enters the guest ${Math.round(performance.now())} ms ` +
            `after start`,
        );
      }
      const probe = this.#probe;
      const mail = this.#mail;
      // The pump's timed work and stdin first: done or looked at here, without a turn, unless
      // it needs one. Then an AP's report, then whatever else woke the event loop. After work,
      // the next WARM_ASKS asks say yes as well: what comes with it but is not seen (a stop
      // signal just before stdin's EOF, say) is served within ticks, not at the slice's clock.
      let warm = 0;
      const needsTurn = probe && ((): boolean => {
        if (pump.tick() || Atomics.exchange(mail, 0, 0) !== 0 || probe.ready()) {
          warm = WARM_ASKS;
          return true;
        }
        return warm > 0 && warm-- > 0;
      });
      const outcome = await bsp.run(needsTurn, probe && (() => probe.settle()));
      this.#loopEnded(0);
      if (!outcome.stoppedByHost) {
        this.#resolve({ status: outcome.status, message: outcome.message });
      }
    } catch (err) {
      // A device or the loop threw: a bug in denovmm, not the guest's doing.
      this.#loopEnded(0);
      this.#resolve({ status: 1, message: `vcpu0: ${describeError(err, debug)}` });
    }
  }

  #loopEnded(id: number): void {
    this.#looping.delete(id);
    if (this.#looping.size === 0) this.#allStopped();
  }

  terminate(): void {
    for (const w of this.#aps) w.terminate();
    this.#io?.terminate();
  }

  async run(
    cfg: MachineConfig,
    m: ReturnType<typeof buildMachine>,
    disks: DiskSync,
  ): Promise<MachineResult> {
    const { vm, pci, consoleIo } = m;
    const stopper = new VcpuStopper(m.runs);
    const serialState = Serial8250.createState();
    const stats = createStats();
    // The main thread's handle on the UART: it only feeds input and raises the RX interrupt.
    const serial = new Serial8250(
      serialState,
      platform.consoleIrq((gsi, high) => vm.irqLine(platform.irqLineArg(gsi), high)),
      () => {},
    );
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const mail = this.#mail;
    let ready = 0;
    const t0 = performance.now();
    if (this.#io) {
      const ioInit: IoWorkerInit = {
        ramHva: m.ramHva,
        ramBytes: cfg.ramBytes,
        controlFd: pci.controlFd,
        vmFd: vm.fd,
        routerState: pci.routerState,
        devices: pci.devices,
        vfio: pci.vfio,
        debug: cfg.debug,
      };
      this.#io.postMessage(ioInit);
    }
    const init = (id: number): VcpuWorkerInit => ({
      vcpuId: id,
      vcpuFd: m.vcpuFds[id],
      runSize: m.runSize,
      vmFd: vm.fd,
      serialState,
      stats,
      debug: cfg.debug,
      consoleFd: STDOUT_FD,
      pci,
      startGate: gate.buffer as SharedArrayBuffer,
      hostStop: stopper.flag,
      mail: mail.buffer as SharedArrayBuffer,
    });
    // Every AP's thread is ready before any vCPU enters the guest (see ./vcpu_thread.ts): the
    // gate opens for the APs' Workers and for vCPU 0 on this thread.
    let apsReady: () => void = () => {};
    const allApsReady = new Promise<void>((resolve) => apsReady = resolve);
    this.#openGate = () => {
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      apsReady();
    };
    const openGate = this.#openGate;
    if (this.#aps.length === 0) openGate();
    this.#aps.forEach((w, index) => {
      w.onmessage = (e: MessageEvent<VcpuWorkerReport>) => {
        const r = e.data;
        if (r.type === "ready") {
          stopper.setThread(r.vcpuId, r.tid);
          if (cfg.debug) {
            console.error(
              `denovmm: vcpu${r.vcpuId} thread ready ${Math.round(performance.now())} ms after ` +
                `start (${Math.round(performance.now() - t0)} ms after its init)`,
            );
          }
          if (++ready === this.#aps.length) openGate();
        } else if (r.type === "done") {
          this.#loopEnded(r.vcpuId);
          if (!r.stoppedByHost) this.#resolve({ status: r.status, message: r.message });
        } else {
          this.#loopEnded(r.vcpuId);
          this.#resolve({ status: 1, message: `vcpu${r.vcpuId}: ${r.message}` });
        }
      };
      w.postMessage(init(index + this.#firstWorker));
    });
    let quit: (r: MachineResult) => void = () => {};
    const quitRequested = new Promise<MachineResult>((resolve) => quit = resolve);
    const input: ConsoleInput = consoleIo ? virtioConsoleInput(consoleIo) : {
      push: (b) => serial.pushInput(b),
      pending: () => SERIAL_RX_CAPACITY - serial.rxSpace(),
    };
    const pump = new StdinPump(
      input,
      () => quit({ status: 0 }),
      Deno.stdin,
      EOF_REPEAT_MS,
    );
    // The boot vCPU's ticks look at stdin (StdinPump.readBetweenTicks) where they ask the
    // event loop's probe; its turns then come only for work.
    if (this.#probe) pump.readBetweenTicks(readableNow(0));
    if (this.#firstWorker === 1) {
      void this.#runBootVcpu(init(0), stopper, allApsReady, cfg.debug, pump);
    }
    pump.run().catch(() => {});
    let signalled: (s: StopSignal) => void = () => {};
    const signal = new Promise<StopSignal>((resolve) => signalled = resolve);
    const unroute = routeStopSignals((s) => signalled(s));
    try {
      const end = await Promise.race([this.#ended, quitRequested, signal]);
      // From here a second signal ends denovmm at once.
      routeStopSignals((s) =>
        exitOnSignal(s, "while the VM was being stopped: exiting without flushing the disks")
      );
      const problems = await this.#stop(stopper, disks);
      // DENOVMM_STATS=1: the counters alone, without --debug's line per unclaimed access (which
      // would be what an exit-heavy guest's run measures).
      if (cfg.debug || Deno.env.get("DENOVMM_STATS") === "1") {
        console.error(`denovmm: exits: ${new ExitStats(stats).summary()}`);
      }
      if (cfg.debug) {
        const events = [
          ...pci.devices.map((d) => d.plan.msix),
          ...pci.vfio.flatMap((v) => v.msix ? [v.msix] : []),
        ].reduce((n, plan) => n + msixEvents(plan), 0);
        console.error(
          `denovmm: KVM_SET_GSI_ROUTING calls: ${new GsiRouter(pci.routerState, vm).commits()} ` +
            `(MSI-X enable and unmask events: ${events})`,
        );
      }
      return endResult(end, problems, disks.count);
    } finally {
      unroute();
      pump.restore();
    }
  }

  /**
   * Stop the vCPUs, then the I/O Worker, then flush the writable disks: every write the guest
   * saw completed was written before its vCPUs stopped, so the flush covers it. Returns what
   * went wrong, one phrase each.
   */
  async #stop(stopper: VcpuStopper, disks: DiskSync): Promise<string[]> {
    stopper.request();
    // vCPUs still waiting at the start gate go through it and end before the guest.
    this.#openGate();
    const deadline = performance.now() + VCPU_STOP_TIMEOUT_MS;
    while (this.#looping.size > 0 && performance.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#stopped,
        new Promise((resolve) => timer = setTimeout(resolve, VCPU_KICK_REPEAT_MS)),
      ]);
      clearTimeout(timer);
      if (this.#looping.size > 0) stopper.request();
    }
    const problems = [...this.#looping].map((id) =>
      `vcpu${id} did not stop within ${VCPU_STOP_TIMEOUT_MS / 1000} s`
    );
    // Not joined (Deno cannot): a request it is in the middle of was not acknowledged to the
    // guest, which no longer runs, and needs no flush.
    this.#io?.terminate();
    return [...problems, ...disks.flush()];
  }
}

/**
 * What the VM ended with: a signal gives 128 + its number and always one line; a disk that
 * could not be flushed makes the status 1 and is named.
 */
export function endResult(
  end: MachineResult | StopSignal,
  problems: string[],
  diskCount: number,
): MachineResult {
  const flushFailed = problems.some((p) => p.startsWith("disk "));
  if (typeof end === "string") {
    const status = flushFailed ? 1 : signalStatus(end);
    const flushed = diskCount === 0
      ? "no writable disk to flush"
      : `${diskCount} writable disk${diskCount === 1 ? "" : "s"} flushed`;
    const what = problems.length === 0
      ? `vCPUs stopped, ${flushed}`
      : `vCPUs stopped, but ${problems.join("; ")}`;
    return { status, message: `${end}: ${what}; exit status ${status}` };
  }
  if (problems.length === 0) return end;
  const line = `when the VM ended: ${problems.join("; ")}`;
  return {
    status: flushFailed ? 1 : end.status,
    message: end.message === undefined ? line : `${end.message}\n${line}`,
  };
}

/** stdin into the virtio console: the ring, then a wake-up for the I/O Worker. */
function virtioConsoleInput(io: { ring: SharedArrayBuffer; inputFd: number }): ConsoleInput {
  const ring = new InputRing(io.ring);
  const wake = new EventFd(io.inputFd);
  return {
    push: (b) => {
      const n = ring.push(b);
      if (n > 0) wake.signal();
      return n;
    },
    pending: () => ring.count(),
  };
}
