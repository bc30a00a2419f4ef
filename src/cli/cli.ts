/**
 * The command line, kvmtool-style: `denovmm run -k KERNEL -i INITRD -p PARAMS -m SIZE -c N`.
 * Parsing is pure (argv in, a command out) so every error path is testable; usage errors
 * are `UsageError`s, which main.ts turns into one line on stderr and exit status 2.
 */
import { parseArgs } from "./parse_args.ts";
import { MAX_RAM_BYTES, MemoryLayoutError, MIN_RAM_BYTES, parseSize } from "../memory/regions.ts";
import type { MachineConfig, VfioDeviceOption } from "../machine/machine.ts";
import type { DiskOption } from "../virtio/blk.ts";
import type { NetOption } from "../virtio/net.ts";
import { parseMac } from "../virtio/net_config.ts";
import { isBdf } from "../vfio/host_device.ts";
import { platform } from "../machine/arch_boot.ts";

export const VERSION = "0.1.0";

/** Kernel parameters every boot gets, the platform's (src/arch/<name>/cmdline.ts); `-p` is
 * appended. */
export const BASE_CMDLINE = platform.baseCmdline;
/** Added unless the user passes their own -p: keeps the boot fast and the console clean. */
export const DEFAULT_PARAMS = "quiet";

export const DEFAULT_RAM = "256M";
/** The platform's limit (255 on a PC: 8-bit APIC ids, 0xff broadcast); KVM's own limit is
 * checked when the VM starts. */
export const MAX_CPUS = platform.maxCpus;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; config: MachineConfig };

export const USAGE = `denovmm ${VERSION}: a KVM virtual machine monitor in TypeScript

usage:
  denovmm run [options]      boot a Linux guest on this terminal
  denovmm --help | --version

run options:
  -k, --kernel PATH   bzImage to boot (default: the default guest's kernel)
  -i, --initrd PATH   initramfs (default: the default guest's, when -k is not given)
  -p, --params STR    kernel parameters appended to "${BASE_CMDLINE}"
                      (default "${DEFAULT_PARAMS}")
  -m, --mem SIZE      guest RAM: 256M, 2G, 3500M; a bare number is MiB (default ${DEFAULT_RAM})
  -c, --cpus N        vCPUs, 1 to ${MAX_CPUS} or what KVM allows (default 1)
  -d, --disk PATH[,ro] a raw disk image as virtio-blk (repeatable); ",ro" opens it read-only
      --rng           a virtio-rng device fed from the host's CSPRNG
  -n, --network tap[=NAME][,mac=MAC]
                      virtio-net on a tap device (repeatable); the host side is yours to
                      configure (ip addr/link on the tap); MAC default 52:54:00:12:34:56
      --console serial|virtio
                      the terminal on the 8250 (ttyS0, default) or on virtio-console (hvc0)
      --vfio-pci BDF[,nomsix]
                      pass the host PCI device BDF (bound to vfio-pci) through (repeatable);
                      nomsix hides its MSI-X, so the driver uses MSI or INTx
      --debug         log unclaimed port/MMIO accesses and exit counts to stderr

machine: ACPI tables describe it (CPUs, IOAPIC, PCI with ECAM, COM1, power-off); a kernel
without ACPI, or -p acpi=off, finds CPUs and IRQs in the MP table instead.

console: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A. The guest ends the VM with status S
by writing byte S to I/O port 0x501; poweroff ends it with status 0.`;

const OPTIONS = {
  kernel: { type: "string", short: "k" },
  initrd: { type: "string", short: "i" },
  params: { type: "string", short: "p" },
  mem: { type: "string", short: "m" },
  cpus: { type: "string", short: "c" },
  disk: { type: "string", short: "d", multiple: true },
  rng: { type: "boolean" },
  network: { type: "string", short: "n", multiple: true },
  console: { type: "string" },
  "vfio-pci": { type: "string", multiple: true },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

export interface DefaultGuest {
  kernel: string;
  initrd: string;
}

export function parseCommandLine(argv: string[], defaults: () => DefaultGuest): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(cleanParseError((e as Error).message));
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length === 0) throw new UsageError("no command given (try: denovmm run)");
  const [command, ...rest] = positionals;
  if (command === "help") return { kind: "help" };
  if (command === "version") return { kind: "version" };
  if (command !== "run") throw new UsageError(`unknown command "${command}" (try: denovmm run)`);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);

  const ramBytes = parseMem(values.mem ?? DEFAULT_RAM);
  const cpus = parseCpus(values.cpus ?? "1");
  let kernelPath = values.kernel;
  let initrdPath = values.initrd;
  if (kernelPath === undefined) {
    const d = defaults();
    kernelPath = d.kernel;
    initrdPath ??= d.initrd;
  }
  const params = values.params ?? DEFAULT_PARAMS;
  const console = values.console ?? "serial";
  if (console !== "serial" && console !== "virtio") {
    throw new UsageError(`--console ${console}: expected serial or virtio`);
  }
  // The last console= names /dev/console: hvc0 for a virtio console, with ttyS0 kept for
  // the kernel's messages until virtio_console is loaded.
  const base = console === "virtio" ? `${BASE_CMDLINE} console=hvc0` : BASE_CMDLINE;
  return {
    kind: "run",
    config: {
      kernelPath,
      initrdPath,
      cmdline: params === "" ? base : `${base} ${params}`,
      ramBytes,
      cpus,
      debug: values.debug ?? false,
      disks: (values.disk ?? []).map(parseDisk),
      rng: values.rng ?? false,
      nets: (values.network ?? []).map(parseNetwork),
      console,
      vfio: (values["vfio-pci"] ?? []).map(parseVfio),
    },
  };
}

/** `BDF[,nomsix]`. */
function parseVfio(text: string): VfioDeviceOption {
  const [bdf, ...flags] = text.split(",");
  if (!isBdf(bdf)) {
    throw new UsageError(`--vfio-pci ${text}: expected a PCI address like 0000:00:10.0`);
  }
  for (const f of flags) {
    if (f !== "nomsix") throw new UsageError(`--vfio-pci ${text}: unknown option "${f}" (nomsix)`);
  }
  return flags.length > 0 ? { bdf, noMsix: true } : { bdf };
}

/** `PATH[,ro]`, as kvmtool spells it. */
function parseDisk(text: string): DiskOption {
  const readOnly = text.endsWith(",ro");
  const path = readOnly || text.endsWith(",rw") ? text.slice(0, -3) : text;
  if (path === "") throw new UsageError(`--disk "${text}": expected PATH or PATH,ro`);
  return { path, readOnly };
}

/** `tap[=NAME][,mac=MAC]`: the only mode is tap, as the issue and kvmtool users expect. */
function parseNetwork(text: string): NetOption {
  const [mode, ...opts] = text.split(",");
  const m = /^tap(?:=(.*))?$/.exec(mode);
  if (!m) throw new UsageError(`--network "${text}": expected tap[=NAME][,mac=MAC]`);
  const net: NetOption = { tap: m[1] ?? "" };
  for (const opt of opts) {
    const [key, value] = opt.split("=");
    const mac = key === "mac" && value !== undefined ? parseMac(value) : undefined;
    if (!mac) {
      throw new UsageError(`--network "${text}": bad option "${opt}" (mac=52:54:00:xx:xx:xx)`);
    }
    net.mac = mac;
  }
  return net;
}

function parseMem(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (e) {
    if (e instanceof MemoryLayoutError) throw new UsageError(`-m: ${e.message}`);
    throw e;
  }
  if (bytes < MIN_RAM_BYTES) throw new UsageError(`-m ${text}: at least 32M of RAM is needed`);
  if (bytes > MAX_RAM_BYTES) throw new UsageError(`-m ${text}: at most 1T of RAM is supported`);
  if (bytes % 4096 !== 0) throw new UsageError(`-m ${text}: must be a multiple of 4K`);
  return bytes;
}

function parseCpus(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`-c ${text}: not a whole number of vCPUs`);
  const n = Number(text);
  if (n < 1) throw new UsageError(`-c ${text}: a VM needs at least 1 vCPU`);
  if (n > MAX_CPUS) {
    throw new UsageError(`-c ${text}: at most ${MAX_CPUS} vCPUs on ${platform.name}`);
  }
  return n;
}

/** node:util's messages carry a trailing hint meant for node scripts; keep the first line. */
function cleanParseError(message: string): string {
  const first = message.split("\n")[0].replace(/\. To specify a positional argument.*$/, "");
  return first.replace(/^Unknown option '(.*)'$/, "unknown option $1");
}
