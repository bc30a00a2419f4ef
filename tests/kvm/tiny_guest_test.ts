// Hand-assembled guests (no Linux) on a real KVM VM: port I/O in and out, MMIO read and write,
// unclaimed addresses, and the debug-exit port, all through the same exit loop Linux uses.
import { deepEqual, equal } from "../assert.ts";
import { VcpuFd } from "../../ffi/kvm_fds.ts";
import { Bus } from "../../src/bus/bus.ts";
import { type BusDevice, leValue, setLeValue } from "../../src/bus/device.ts";
import { DEBUG_EXIT_PORT, DebugExit } from "../../src/devices/debug_exit.ts";
import { createStats, ExitStats, STAT } from "../../src/vcpu/exit_stats.ts";
import { runLoop, StopRequest } from "../../src/vcpu/exit_loop.ts";
import { createVm } from "../../src/machine/vm.ts";
import { registerLegacyDevices } from "../../src/arch/x86_64/legacy_devices.ts";
import { Serial8250 } from "../../src/devices/serial.ts";
import { x86Registers } from "../../src/arch/x86_64/registers.ts";

/** A device that records writes and answers reads with a fixed value. */
class Recorder implements BusDevice {
  writes: Array<[number, number, number]> = [];
  reads: Array<[number, number]> = [];
  constructor(readonly answer: number) {}
  read(offset: number, data: Uint8Array): void {
    this.reads.push([offset, data.length]);
    setLeValue(data, this.answer);
  }
  write(offset: number, data: Uint8Array): void {
    this.writes.push([offset, data.length, leValue(data)]);
  }
}

const CODE_GPA = 0x1000;
const MMIO_GPA = 0xd000_0000; // in the 32-bit hole: no RAM there
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** 32-bit protected-mode code (flat segments set through KVM_SET_SREGS). */
const PROGRAM = [
  ...[0x66, 0xba, 0x10, 0x00], // mov dx, 0x10
  ...[0xb0, 0x5a], // mov al, 0x5a
  0xee, // out dx, al            -> claimed port write
  0xec, // in al, dx             -> claimed port read
  ...[0x88, 0xc3], // mov bl, al
  ...[0x66, 0xba, 0x99, 0x00], // mov dx, 0x99
  0xec, // in al, dx             -> unclaimed port read: 0xff
  ...[0x88, 0xc7], // mov bh, al
  ...[0x66, 0xba, 0x98, 0x00], // mov dx, 0x98
  0xee, // out dx, al            -> unclaimed port write: dropped
  ...[0xc7, 0x05, ...le32(MMIO_GPA), ...le32(0x12345678)], // mov dword [MMIO], 0x12345678
  ...[0xa1, ...le32(MMIO_GPA + 4)], // mov eax, [MMIO+4]
  ...[0x89, 0xc1], // mov ecx, eax
  ...[0xa1, ...le32(MMIO_GPA + 0x1000)], // mov eax, [unclaimed]
  ...[0x89, 0xc6], // mov esi, eax
  ...[0xc7, 0x05, ...le32(MMIO_GPA + 0x1000), ...le32(1)], // mov dword [unclaimed], 1
  ...[0xb0, 42], // mov al, 42
  ...[0x66, 0xba, DEBUG_EXIT_PORT & 0xff, DEBUG_EXIT_PORT >> 8], // mov dx, 0x501
  0xee, // out dx, al            -> debug-exit with status 42
  0xf4, // hlt (never reached)
];

function flat(type: number, selector: number) {
  return {
    base: 0,
    limit: 0xffff_ffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 1,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
  };
}

/**
 * A vCPU in 32-bit protected mode with flat segments, starting at CODE_GPA; `paging` gives CR3
 * (with CR0.PG) for the triple-fault test.
 */
function flatVcpu(created: ReturnType<typeof createVm>, paging?: { cr3: number }): VcpuFd {
  const vcpu = new VcpuFd(created.vm.createVcpu(0), created.kvm.vcpuMmapSize());
  const sregs = vcpu.getSregs();
  sregs.setSegment("cs", flat(0xb, 0x8));
  for (const s of ["ds", "es", "ss", "fs", "gs"] as const) sregs.setSegment(s, flat(0x3, 0x10));
  sregs.setDtable("idt", { base: 0, limit: 0 });
  if (paging) sregs.set("cr3", paging.cr3);
  sregs.set("cr0", paging ? 0x8000_0001 : 1); // PE, and PG when asked
  vcpu.setSregs();
  vcpu.regs.bytes.fill(0);
  vcpu.regs.set("rip", CODE_GPA);
  vcpu.regs.set("rflags", 2);
  vcpu.regs.set("rsp", 0x8000);
  vcpu.setRegs();
  return vcpu;
}

Deno.test("kvm: a tiny guest's port I/O, MMIO, unclaimed accesses and debug-exit", () => {
  const created = createVm(32 * 1024 * 1024, 1);
  created.memory.write(CODE_GPA, new Uint8Array(PROGRAM));
  const vcpu = flatVcpu(created);

  const pio = new Bus("pio", 0x10000);
  const mmio = new Bus("mmio", 2 ** 52);
  const port = new Recorder(0x33);
  const window = new Recorder(0xcafef00d);
  const stop = new StopRequest();
  pio.register(0x10, 1, port, "port recorder");
  pio.register(DEBUG_EXIT_PORT, 2, new DebugExit((s) => stop.stop(s)), "debug-exit");
  mmio.register(MMIO_GPA, 0x100, window, "mmio recorder");
  const stats = new ExitStats(createStats());
  const logged: string[] = [];
  const outcome = runLoop(vcpu, pio, mmio, stats, stop, {
    debug: true,
    log: (l) => logged.push(l),
  });

  equal(outcome.status, 42, outcome.message);
  deepEqual(port.writes, [[0, 1, 0x5a]]);
  deepEqual(port.reads, [[0, 1]]);
  deepEqual(window.writes, [[0, 4, 0x12345678]]);
  deepEqual(window.reads, [[4, 4]]);
  const regs = vcpu.getRegs();
  equal(regs.get("rbx") & 0xffffn, 0xff33n, "bl from the device, bh all-ones from nowhere");
  equal(regs.get("rcx") & 0xffff_ffffn, 0xcafef00dn);
  equal(regs.get("rsi") & 0xffff_ffffn, 0xffff_ffffn, "unclaimed MMIO reads all-ones");
  equal(stats.get(STAT.pioReadUnclaimed), 1);
  equal(stats.get(STAT.pioWriteUnclaimed), 1);
  equal(stats.get(STAT.mmioReadUnclaimed), 1);
  equal(stats.get(STAT.mmioWriteUnclaimed), 1);
  deepEqual(logged, [
    "unclaimed port read at 0x99 size 1",
    "unclaimed port write at 0x98 size 1",
    "unclaimed mmio read at 0xd0001000 size 4",
    "unclaimed mmio write at 0xd0001000 size 4",
  ]);
});

Deno.test("kvm: a guest that triple-faults ends with a register dump and status 1", () => {
  // Paging on with an empty page directory (zeroed RAM at 0x3000: no page is present) and an
  // empty IDT: the first fetch faults, the fault cannot be delivered (#DF), nor can that.
  const vcpu = flatVcpu(createVm(32 * 1024 * 1024, 1), { cr3: 0x3000 });
  const outcome = runLoop(
    vcpu,
    new Bus("pio", 0x10000),
    new Bus("mmio", 2 ** 52),
    new ExitStats(createStats()),
    new StopRequest(),
    { debug: false, log: () => {}, registers: x86Registers },
  );
  equal(outcome.status, 1);
  for (
    const reg of ["KVM_EXIT_SHUTDOWN", "rip 0x", "rsp 0x", "cr0 0x", "cr3 0x", "cr4 0x", "efer 0x"]
  ) {
    equal(outcome.message?.includes(reg), true, `dump lacks ${reg}: ${outcome.message}`);
  }
});

Deno.test("kvm: through the legacy wiring, COM1 output reaches the console and an i8042 reset ends the VM with 0", () => {
  const created = createVm(32 * 1024 * 1024, 1);
  created.memory.write(
    CODE_GPA,
    new Uint8Array([
      ...[0x66, 0xba, 0xf8, 0x03], // mov dx, 0x3f8
      ...[0xb0, 0x41], // mov al, 'A'
      0xee, // out dx, al         -> THR
      ...[0xb0, 0xfe], // mov al, 0xfe
      ...[0xe6, 0x64], // out 0x64, al       -> pulse the reset line
      ...[0xb0, 9], // mov al, 9
      ...[0x66, 0xba, DEBUG_EXIT_PORT & 0xff, DEBUG_EXIT_PORT >> 8],
      0xee, // out dx, al  -> would end with 9 if the reset were ignored
    ]),
  );
  const vcpu = flatVcpu(created);
  const pio = new Bus("pio", 0x10000);
  const stop = new StopRequest();
  const printed: number[] = [];
  registerLegacyDevices(pio, {
    serialState: Serial8250.createState(),
    irq: (gsi, high) => created.vm.irqLine(gsi, high),
    consoleOut: (b) => printed.push(b),
    stop: (s) => stop.stop(s),
  });
  const outcome = runLoop(vcpu, pio, new Bus("mmio", 2 ** 52), new ExitStats(createStats()), stop, {
    debug: false,
    log: () => {},
  });
  deepEqual(printed, [0x41]);
  equal(outcome.status, 0, "the reset ended the VM before the debug-exit write");
});
