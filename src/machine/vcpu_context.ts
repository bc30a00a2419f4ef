/**
 * One vCPU's side of the machine, wherever its loop runs (a vCPU Worker, or the main thread for
 * the boot vCPU, ./boot_vcpu.ts): the vCPU fd, its own port and MMIO buses with this machine's
 * devices on them (shared state comes in as SharedArrayBuffers), its exit counters and its stop
 * request. What runs the loop decides when.
 */
import { VcpuFd, VmFd } from "../../ffi/kvm_fds.ts";
import { Bus } from "../bus/bus.ts";
import { wiring } from "./arch.ts";
import { FdWriter } from "../../ffi/fd_writer.ts";
import { ExitStats, STAT } from "../vcpu/exit_stats.ts";
import { registerPci } from "./pci_devices.ts";
import { type LoopOptions, StopRequest } from "../vcpu/exit_loop.ts";
import type { VcpuWorkerInit } from "./vcpu_thread_protocol.ts";

const PIO_SPACE = 0x10000;
const MMIO_SPACE = 2 ** 52;

export interface VcpuContext {
  vcpu: VcpuFd;
  pio: Bus;
  mmio: Bus;
  stats: ExitStats;
  stop: StopRequest;
  opts: LoopOptions;
}

export function vcpuContext(init: VcpuWorkerInit): VcpuContext {
  const vm = new VmFd(init.vmFd);
  const vcpu = new VcpuFd(init.vcpuFd, init.runSize);
  const stop = new StopRequest(new Int32Array(init.hostStop));
  const out = new FdWriter(init.consoleFd);
  const log = (line: string) => console.error(`denovmm: vcpu${init.vcpuId}: ${line}`);
  const pio = new Bus("port I/O", PIO_SPACE);
  const mmio = new Bus("MMIO", MMIO_SPACE);
  wiring.registerDevices(pio, mmio, {
    serialState: init.serialState,
    irq: (gsi, high) => vm.irqLine(wiring.irqLineArg(gsi), high),
    consoleOut: (b) => out.writeByte(b),
    stop: (status, why) => {
      if (init.debug && stop.outcome === undefined) log(`${why}: the VM ends, status ${status}`);
      stop.stop(status);
    },
  });
  const stats = new ExitStats(init.stats, init.vcpuId);
  // Nothing decodes there: counted and (--debug) logged like any other unclaimed access.
  registerPci(
    pio,
    mmio,
    init.pci,
    vm,
    (write, addr, size) => {
      stats.bump(write ? STAT.mmioWriteUnclaimed : STAT.mmioReadUnclaimed);
      if (init.debug) {
        log(`unclaimed mmio ${write ? "write" : "read"} at 0x${addr.toString(16)} size ${size}`);
      }
    },
    (write, addr, size) => {
      stats.bump(write ? STAT.pioWriteUnclaimed : STAT.pioReadUnclaimed);
      if (init.debug) {
        log(`unclaimed port ${write ? "write" : "read"} at 0x${addr.toString(16)} size ${size}`);
      }
    },
    init.debug ? log : undefined,
    undefined,
    (ecam) => {
      stats.bump(ecam ? STAT.pciEcam : STAT.pciConf1);
    },
  );
  return {
    vcpu,
    pio,
    mmio,
    stats,
    stop,
    opts: { debug: init.debug, log, registers: wiring.registers },
  };
}
