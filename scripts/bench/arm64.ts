/**
 * The arm64 bench's two machines (scripts/bench.ts --arch arm64): denovmm's and QEMU's `virt`
 * under the same KVM, on the same kernel, initramfs, RAM and vCPUs, with no devices on either
 * beyond each machine's own (a UART, the GICv3 with its ITS, a PCI host bridge with nothing on
 * it; QEMU's virt adds its RTC, GPIO, fw_cfg and empty virtio-mmio slots, which this guest's
 * kernel does not drive). Pure: tests/scripts/bench_test.ts checks it.
 */
import { BASE_CMDLINE } from "../../src/arch/arm64/cmdline.ts";
import {
  GIC_REDIST_BYTES_PER_CPU,
  GIC_REDIST_START,
  MAX_CPUS,
  PCI_ECAM,
  PCI_IO_CPU_START,
  UART,
} from "../../src/arch/arm64/memory_map.ts";

/**
 * An address nobody claims in either machine: past denovmm's GICv3 redistributors (which end at
 * 0x0a04_0000 with 256 vCPUs) and before its UART, and in QEMU virt's (hw/arm/virt.c
 * base_memmap) gap between its 32 virtio-mmio transports (0x0a00_0000 + 32 * 0x200) and its
 * platform bus (0x0c00_0000). Not RAM in either, so the guest's /dev/mem maps it uncached.
 */
export const UNCLAIMED_MMIO = 0x0a80_0000;
/** QEMU virt's PCIe PIO window (VIRT_PCIE_PIO): port N of its PCI bus at this address + N. */
export const QEMU_VIRT_PCIE_PIO = 0x3eff_0000;
/** A PCI I/O port nobody claims on either bus (denovmm: debug-exit 0x501, I/O BARs 0x1000 up). */
export const UNCLAIMED_PORT = 0x4f0;

/** Where a CPU write reaches `port` of each machine's PCI I/O space. */
export function pioWindowAddress(vmm: "denovmm" | "qemu", port = UNCLAIMED_PORT): number {
  return (vmm === "denovmm" ? PCI_IO_CPU_START : QEMU_VIRT_PCIE_PIO) + port;
}

/** UNCLAIMED_MMIO is outside everything denovmm's arm64 map places (checked by the test too). */
export function denovmmClaims(addr: number): boolean {
  const redistEnd = GIC_REDIST_START + MAX_CPUS * GIC_REDIST_BYTES_PER_CPU;
  return (addr >= 0x0800_0000 && addr < redistEnd) ||
    (addr >= UART.gpa && addr < PCI_IO_CPU_START + 0x1_0000) ||
    addr >= PCI_ECAM.gpa;
}

export interface Arm64Guest {
  kernel: string;
  initrd: string;
  /** Appended to each machine's base command line. */
  params: string;
  cpus: number;
  ram: string;
}

export function denovmmArm64(binary: string, g: Arm64Guest): string[] {
  return [
    binary,
    "run",
    "-k",
    g.kernel,
    "-i",
    g.initrd,
    "-m",
    g.ram,
    "-c",
    `${g.cpus}`,
    "-p",
    g.params,
  ];
}

/**
 * denovmm's own base command line (src/arch/arm64/cmdline.ts) with the console on QEMU virt's
 * UART, a PL011 (ttyAMA0), instead of denovmm's 8250 (ttyS0): the only difference.
 */
export function qemuArm64Cmdline(params: string): string {
  return `${BASE_CMDLINE.replace(/\bconsole=ttyS0\b/, "console=ttyAMA0")} ${params}`;
}

export function qemuArm64(qemu: string, g: Arm64Guest): string[] {
  return [
    qemu,
    "-M",
    "virt,gic-version=3",
    "-accel",
    "kvm",
    "-cpu",
    "host",
    "-m",
    g.ram,
    "-smp",
    `${g.cpus}`,
    "-kernel",
    g.kernel,
    "-initrd",
    g.initrd,
    "-append",
    qemuArm64Cmdline(g.params),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    // The guest powers off (PSCI SYSTEM_OFF); a panic's reset ends the VM too.
    "-no-reboot",
  ];
}

/**
 * Why `elf` is not a static aarch64 executable, or undefined when it is: ELF64 little-endian,
 * e_machine EM_AARCH64 (183), and no PT_INTERP (no dynamic loader to find in the guest).
 */
export function notStaticAarch64(elf: Uint8Array): string | undefined {
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    return "not an ELF file";
  }
  if (elf[4] !== 2 || elf[5] !== 1) return "not a 64-bit little-endian ELF";
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const machine = v.getUint16(18, true);
  if (machine !== 183) return `e_machine ${machine}, not EM_AARCH64 (183)`;
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) return "program headers past the end of the file";
    if (v.getUint32(at, true) === 3) return "dynamically linked (it has a PT_INTERP)";
  }
  return undefined;
}
