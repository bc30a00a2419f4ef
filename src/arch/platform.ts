/**
 * What a machine needs from its architecture, and nothing else: the one seam between what any
 * denovmm machine has (KVM's VM and vCPUs, guest RAM, the buses, PCI, virtio, the 8250) and what
 * only one kind of computer has (on a PC: the IOAPIC and PIC, port 0xCF8, the E820 map, the zero
 * page, the MP table, CPUID). src/machine/ builds the VM from one object of this shape, chosen in
 * one place (src/machine/arch.ts); each architecture lives under src/arch/<name>/ and imports
 * nothing of src/machine/.
 *
 * The kernel and the boot vCPU's state are the architecture's own types (`Kernel`, `Entry`): the
 * machine only hands them from one call to the next.
 *
 * @module
 */
import type { Kvm, VcpuFd, VmFd } from "../../ffi/kvm_fds.ts";
import type { KVM_CAP } from "../../ffi/kvm.ts";
import type { Bus } from "../bus/bus.ts";
import type { BusDevice } from "../bus/device.ts";
import type { IrqLine } from "../bus/interrupt.ts";
import type { ElfLoadPiece, FileSource } from "../boot/elf.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { GuestRange, RamLayout } from "../memory/regions.ts";

/**
 * A kernel file: all of it in memory, or its first bytes and a way to read the rest. The second
 * is how a vmlinux should come: its segments are read straight into guest RAM.
 */
export type KernelFile = Uint8Array | { head: Uint8Array; source: FileSource };

/** A parsed kernel checked against this machine's RAM (once), ready to load. */
export interface PlacedKernel {
  /**
   * The copies from file to RAM that loading makes, where they may run on another thread
   * (src/machine/kernel_copy.ts); undefined when the loader copies the kernel itself.
   */
  copies?: ElfLoadPiece[];
}

/** One PCI slot's interrupt pin and the GSI it reaches (for the platform's description). */
export interface PciIntxRoute {
  slot: number;
  /** 1 = INTA# .. 4 = INTD#. */
  pin: number;
  gsi: number;
}

/** Everything {@link Platform.loadKernel} puts in guest memory besides the kernel. */
export interface BootInput {
  initrd?: Uint8Array | FileSource;
  cmdline: string;
  cpus: number;
  /** Where each PCI function's INTx goes, for the description of the machine. */
  pciIntx: readonly PciIntxRoute[];
  /** The 64-bit PCI window ({@link Platform.pciMmio64Window}), for the description too. */
  mmio64: GuestRange;
  /** The caller has already made the kernel's {@link PlacedKernel.copies}. */
  copiesMade: boolean;
}

/** A default interrupt route: a GSI to one input of one in-kernel interrupt controller. */
export interface IrqchipRoute {
  gsi: number;
  /** KVM's irqchip number (KVM_IRQCHIP_*). */
  chip: number;
  pin: number;
}

/** How a thread's copy of the platform devices reaches the rest of the VM. */
export interface DeviceWiring {
  serialState: SharedArrayBuffer;
  /** Level of an interrupt line (GSI) on the in-kernel interrupt controller. */
  irq: (gsi: number, high: boolean) => void;
  /** Where the guest's console bytes go. */
  consoleOut: (byte: number) => void;
  /** End the VM with an exit status (a reset or power-off register, a debug port), saying why. */
  stop: (status: number, why: string) => void;
}

/** The CPU model every vCPU gets, read once from KVM. */
export interface VcpuModel<Entry> {
  /** The guest's physical-address width: no guest address above 2^bits is reachable. */
  physAddrBits: number;
  /** Give vCPU `id` its identity (on arm64: reset it, the boot vCPU on, the others off). */
  configure(vcpu: VcpuFd, id: number): void;
  /** Put the boot vCPU, configured, in the state the kernel's entry asks for. */
  enter(vcpu: VcpuFd, entry: Entry): void;
}

/**
 * What every thread of the machine asks of the platform: the memory map, where PCI lives and how
 * its config space and INTx reach the guest, the interrupt controller's fixed routes, and the
 * devices every guest of the platform expects. Kept apart from the boot side
 * ({@link Platform}) so a vCPU or I/O Worker loads only this much of the architecture's
 * modules: a Worker's module graph is loaded again by every thread, and under an emulated CPU
 * each module costs start-up time.
 */
export interface PlatformWiring<Layout extends RamLayout = RamLayout> {
  readonly name: string;

  /** Guest RAM's regions for `ramBytes`; throws MemoryLayoutError with a line for the user. */
  memoryLayout(ramBytes: number): Layout;
  /** The PCI windows for BARs below 4 GiB, and the ECAM region (`size` bytes from `gpa`). */
  readonly pciIo: GuestRange;
  readonly pciMmio32: GuestRange;
  readonly pciEcam: GuestRange;

  /** The routes KVM_SET_GSI_ROUTING must keep (the legacy lines); MSIs take GSIs above. */
  readonly defaultGsiRoutes: readonly IrqchipRoute[];
  readonly firstMsiGsi: number;
  /** The GSI a PCI slot's interrupt pin (1 = INTA#) reaches. */
  intxGsi(slot: number, pin?: number): number;
  /** The line of the console UART, for a thread that only raises its interrupt. */
  consoleIrq(irq: DeviceWiring["irq"]): IrqLine;

  /**
   * KVM_IRQ_LINE's `irq` argument for interrupt line `gsi`: the GSI itself on a PC; on arm64
   * the SPI's INTID with its type in the top bits.
   */
  irqLineArg(gsi: number): number;
  /**
   * Whether MSI routes must carry the requester ID of the function that sends them (an arm64
   * GICv3 ITS translates by device ID; a PC's KVM refuses the flag).
   */
  readonly msiDevid: boolean;
  /** A dead vCPU's registers, a few lines for the message that says where it died. */
  registers(vcpu: VcpuFd): string[];

  /** Put the PCI bus's config-space mechanisms (port I/O, ECAM) on this thread's buses. */
  registerConfigAccess(pio: Bus, mmio: Bus, access: { conf1: BusDevice; ecam: BusDevice }): void;

  /** This thread's copies of the devices every guest of this platform expects. */
  registerDevices(pio: Bus, mmio: Bus, wiring: DeviceWiring): void;
}

/**
 * One architecture's machine: its {@link PlatformWiring} and what the main thread alone needs
 * to build the VM and boot it. `Layout` is its memory map (RAM regions and whatever its boot
 * protocol says of them), `Kernel` a parsed kernel, `Placed` one checked against the RAM, `Entry`
 * the boot vCPU's first state.
 */
export interface Platform<
  Layout extends RamLayout = RamLayout,
  Kernel = unknown,
  Placed extends PlacedKernel = PlacedKernel,
  Entry = unknown,
> extends PlatformWiring<Layout> {
  /** Where large PCI BARs go: above RAM, up to what the guest can address (size 0: none). */
  pciMmio64Window(layout: Layout, physAddrBits: number): GuestRange;

  /** KVM capabilities this platform's VM cannot do without. */
  readonly requiredCaps: readonly (keyof typeof KVM_CAP)[];
  /** Kernel parameters every boot gets (the console, how a reboot ends the VM); `-p` follows. */
  readonly baseCmdline: string;
  /** The largest vCPU count the platform describes (KVM's own limit is checked too). */
  readonly maxCpus: number;
  /**
   * The in-kernel interrupt controller and timers, and what KVM needs before vCPUs exist, for
   * a VM of `cpus` vCPUs. Returns what must follow once every vCPU exists and is configured,
   * before any irqfd is bound: an arm64 vGIC is initialised then, and KVM refuses irqfds
   * (EAGAIN) before.
   */
  createIrqchip(vm: VmFd, cpus: number): () => void;

  /** Check a kernel file without knowing the machine (bad input before /dev/kvm is opened). */
  parseKernel(file: KernelFile): Kernel;
  /** Check that the kernel fits `layout`'s RAM, and plan its copies. */
  placeKernel(kernel: Kernel, layout: Layout): Placed;
  /** Write the kernel and all the guest finds at its entry; returns the boot vCPU's state. */
  loadKernel(mem: GuestMemory, layout: Layout, kernel: Placed, boot: BootInput): Entry;

  /** The model every vCPU gets (on a PC: KVM's supported CPUID, per-vCPU ids filled in). */
  vcpuModel(kvm: Kvm, vm: VmFd): VcpuModel<Entry>;
}
