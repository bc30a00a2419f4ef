/**
 * A vCPU thread (a Worker): one per vCPU, because a synchronous KVM_RUN blocks its JavaScript
 * thread. It is the machine's: it wires this machine's devices onto its buses, so it lives here
 * and src/vcpu/ (the exit loop, which knows buses and not devices) imports nothing of the machine.
 * It builds its own bus and device objects (shared state comes in as SharedArrayBuffers),
 * then runs the exit loop until the VM ends, and reports the outcome to the main thread.
 */
import { VcpuFd, VmFd } from "../../ffi/kvm_fds.ts";
import { libc } from "../../ffi/libc.ts";
import { Bus } from "../bus/bus.ts";
import { wiring } from "./arch.ts";
import { FdWriter } from "../../ffi/fd_writer.ts";
import { ExitStats, STAT } from "../vcpu/exit_stats.ts";
import { registerPci } from "./pci_devices.ts";
import { runLoop, StopRequest } from "../vcpu/exit_loop.ts";
import { describeError } from "../log.ts";
import type { VcpuWorkerInit, VcpuWorkerReport } from "./vcpu_thread_protocol.ts";

const PIO_SPACE = 0x10000;
const MMIO_SPACE = 2 ** 52;

declare const self: {
  onmessage: ((e: MessageEvent<VcpuWorkerInit>) => void) | null;
  postMessage(m: VcpuWorkerReport): void;
};

self.onmessage = (e: MessageEvent<VcpuWorkerInit>) => {
  const init = e.data;
  self.onmessage = null;
  try {
    const outcome = runVcpu(init);
    self.postMessage({ type: "done", vcpuId: init.vcpuId, ...outcome });
  } catch (err) {
    // A device or the loop threw: a bug in denovmm, not the guest's doing. One line, and with
    // --debug the stack that says where.
    self.postMessage({
      type: "error",
      vcpuId: init.vcpuId,
      message: describeError(err, init.debug),
    });
  }
};

function runVcpu(init: VcpuWorkerInit) {
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
  // The boot CPU must not run before every AP's thread is in KVM_RUN: an AP whose Worker is
  // still loading when Linux sends INIT/SIPI misses the kernel's bring-up timeout and later
  // runs a trampoline that has moved on, which ends the VM in a triple fault.
  self.postMessage({ type: "ready", vcpuId: init.vcpuId, tid: libc.gettid() });
  const gate = new Int32Array(init.startGate);
  while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0);
  return runLoop(vcpu, pio, mmio, stats, stop, {
    debug: init.debug,
    log,
    registers: wiring.registers,
  });
}
