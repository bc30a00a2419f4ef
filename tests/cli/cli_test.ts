import { deepEqual, equal, match, ok, throws } from "../assert.ts";
import {
  BASE_CMDLINE,
  type Command,
  type DefaultGuest,
  parseCommandLine,
  UsageError,
  VERSION,
} from "../../src/cli/cli.ts";
import type { MachineConfig } from "../../src/machine/machine.ts";

const MiB = 1024 * 1024;
const GUEST: DefaultGuest = { kernel: "/guest/vmlinuz", initrd: "/guest/initramfs.cpio.gz" };

/** Parses `argv` with a defaults callback that counts its calls. */
function parse(argv: string[]): { cmd: Command; defaultsCalls: number } {
  let defaultsCalls = 0;
  const cmd = parseCommandLine(argv, () => {
    defaultsCalls++;
    return GUEST;
  });
  return { cmd, defaultsCalls };
}

function runConfig(argv: string[]): MachineConfig {
  const { cmd } = parse(argv);
  if (cmd.kind !== "run") throw new Error(`expected a run command, got ${cmd.kind}`);
  return cmd.config;
}

/** Asserts `argv` is refused with a one-line UsageError whose message matches `pattern`. */
function usageError(argv: string[], pattern: RegExp): string {
  let message = "";
  throws(() => parse(argv), (e: unknown) => {
    ok(e instanceof UsageError, `${JSON.stringify(argv)}: ${e} is not a UsageError`);
    message = e.message;
    return true;
  });
  ok(message.length > 0, `${JSON.stringify(argv)}: empty message`);
  ok(!message.includes("\n"), `${JSON.stringify(argv)}: message spans lines: ${message}`);
  match(message, pattern, `${JSON.stringify(argv)}: ${message}`);
  return message;
}

Deno.test("cli: run with no options boots the default guest with 256 MiB, 1 vCPU and quiet", () => {
  const { cmd, defaultsCalls } = parse(["run"]);
  deepEqual(cmd, {
    kind: "run",
    config: {
      kernelPath: GUEST.kernel,
      initrdPath: GUEST.initrd,
      cmdline: `${BASE_CMDLINE} quiet`,
      ramBytes: 256 * MiB,
      cpus: 1,
      debug: false,
      disks: [],
      rng: false,
      nets: [],
      console: "serial",
      vfio: [],
    },
  });
  equal(defaultsCalls, 1);
});

Deno.test("cli: -k skips the default guest entirely (no initrd, callback not called)", () => {
  const { cmd, defaultsCalls } = parse(["run", "-k", "/my/bzImage"]);
  equal(defaultsCalls, 0);
  if (cmd.kind !== "run") throw new Error(cmd.kind);
  equal(cmd.config.kernelPath, "/my/bzImage");
  equal(cmd.config.initrdPath, undefined);
});

Deno.test("cli: -k with -i uses both given files", () => {
  const { cmd, defaultsCalls } = parse(["run", "-k", "/my/bzImage", "-i", "/my/initrd"]);
  equal(defaultsCalls, 0);
  if (cmd.kind !== "run") throw new Error(cmd.kind);
  equal(cmd.config.kernelPath, "/my/bzImage");
  equal(cmd.config.initrdPath, "/my/initrd");
});

Deno.test("cli: -i without -k keeps the given initrd and takes the default kernel", () => {
  const config = runConfig(["run", "-i", "/my/initrd"]);
  equal(config.kernelPath, GUEST.kernel);
  equal(config.initrdPath, "/my/initrd");
});

Deno.test("cli: long and short options give the same machine", () => {
  const short = runConfig(
    [
      "run",
      "-k",
      "/k",
      "-i",
      "/i",
      "-p",
      "init=/bin/sh",
      "-m",
      "512M",
      "-c",
      "1",
      "--debug",
      "-d",
      "/a.img",
      "-d",
      "/b.img,ro",
      "--rng",
      "-n",
      "tap=dv0,mac=52:54:00:00:00:09",
      "--vfio-pci",
      "0000:00:10.0",
    ],
  );
  const long = runConfig([
    "run",
    "--kernel",
    "/k",
    "--initrd=/i",
    "--params",
    "init=/bin/sh",
    "--mem=512M",
    "--cpus",
    "1",
    "--debug",
    "--disk",
    "/a.img",
    "--disk=/b.img,ro",
    "--rng",
    "--network=tap=dv0,mac=52:54:00:00:00:09",
    "--vfio-pci=0000:00:10.0",
  ]);
  deepEqual(short, long);
  deepEqual(short, {
    kernelPath: "/k",
    initrdPath: "/i",
    cmdline: `${BASE_CMDLINE} init=/bin/sh`,
    ramBytes: 512 * MiB,
    cpus: 1,
    debug: true,
    disks: [{ path: "/a.img", readOnly: false }, { path: "/b.img", readOnly: true }],
    rng: true,
    nets: [{ tap: "dv0", mac: new Uint8Array([0x52, 0x54, 0, 0, 0, 9]) }],
    console: "serial",
    vfio: [{ bdf: "0000:00:10.0" }],
  });
});

Deno.test("cli: --console virtio adds console=hvc0 after ttyS0; other values are usage errors", () => {
  const config = runConfig(["run", "--console", "virtio"]);
  equal(config.console, "virtio");
  equal(config.cmdline, `${BASE_CMDLINE} console=hvc0 quiet`);
  usageError(["run", "--console", "vga"], /^--console vga: expected serial or virtio$/);
});

Deno.test("cli: --network takes tap, tap=NAME and a unicast mac; anything else is a usage error", () => {
  deepEqual(runConfig(["run", "-n", "tap"]).nets, [{ tap: "" }]);
  usageError(["run", "-n", "user"], /^--network "user": expected tap/);
  usageError(["run", "-n", "tap,mac=01:00:5e:00:00:01"], /bad option "mac=01:00:5e:00:00:01"/);
  usageError(["run", "-n", "tap,mac=zz"], /bad option/);
  usageError(["run", "-n", "tap,speed=10"], /bad option "speed=10"/);
});

Deno.test("cli: --disk takes PATH or PATH,ro; an empty path is a usage error", () => {
  equal(runConfig(["run", "--disk", "/x,y.img"]).disks?.[0].path, "/x,y.img");
  usageError(["run", "--disk", ",ro"], /^--disk ",ro": expected PATH or PATH,ro$/);
});

Deno.test("cli: --vfio-pci takes BDF or BDF,nomsix; other flags are usage errors", () => {
  deepEqual(runConfig(["run", "--vfio-pci", "0000:00:11.0,nomsix"]).vfio, [
    { bdf: "0000:00:11.0", noMsix: true },
  ]);
  usageError(
    ["run", "--vfio-pci", "0000:00:11.0,nomsi"],
    /^--vfio-pci 0000:00:11\.0,nomsi: unknown option "nomsi" \(nomsix\)$/,
  );
  usageError(["run", "--vfio-pci", "00:11.0,nomsix"], /expected a PCI address like 0000:00:10\.0/);
});

Deno.test("cli: options may come before the command", () => {
  equal(runConfig(["-m", "1G", "run"]).ramBytes, 1024 * MiB);
});

Deno.test("cli: -p is appended to the base command line and replaces quiet", () => {
  equal(
    runConfig(["run", "-p", "loglevel=8 rdinit=/sh"]).cmdline,
    `${BASE_CMDLINE} loglevel=8 rdinit=/sh`,
  );
  ok(!runConfig(["run", "-p", "x"]).cmdline.includes("quiet"));
});

Deno.test("cli: -p '' gives exactly the base command line", () => {
  equal(runConfig(["run", "-p", ""]).cmdline, BASE_CMDLINE);
});

Deno.test("cli: -m takes K, M, G and T suffixes in either case, and a bare number is MiB", () => {
  const cases: Array<[string, number]> = [
    ["256M", 256 * MiB],
    ["2G", 2048 * MiB],
    ["3500M", 3500 * MiB],
    ["512", 512 * MiB],
    ["32768K", 32 * MiB],
    ["1t", 1024 * 1024 * MiB],
  ];
  for (const [text, bytes] of cases) equal(runConfig(["run", "-m", text]).ramBytes, bytes, text);
});

Deno.test("cli: -m below the 32M minimum is refused (1024K and 4097K too, before any alignment check)", () => {
  for (const text of ["16M", "1024K", "4097K", "31"]) usageError(["run", "-m", text], /^-m .*32M/);
});

Deno.test("cli: -m above 1T is refused", () => {
  usageError(["run", "-m", "2T"], /^-m 2T: .*1T/);
  usageError(["run", "-m", "1048577M"], /^-m 1048577M: .*1T/);
});

Deno.test("cli: -m that is not a whole number of 4K pages is refused", () => {
  usageError(["run", "-m", "32769K"], /^-m 32769K: .*multiple of 4K/);
});

Deno.test("cli: -m that is not a size is refused with a reason", () => {
  usageError(["run", "-m", "abc"], /^-m: invalid size "abc"/);
  usageError(["run", "-m", "0"], /^-m: .*greater than 0/);
  usageError(["run", "--mem=-5"], /^-m: .*negative/);
  usageError(["run", "-m", "1.5G"], /^-m: .*fraction/);
  usageError(["run", "-m", "12Q"], /^-m: invalid size/);
  usageError(["run", "-m", ""], /^-m: invalid size/);
});

Deno.test("cli: -m -5 (a value that looks like an option) is refused naming -m", () => {
  usageError(["run", "-m", "-5"], /-m/);
});

Deno.test("cli: -c other than 1 is refused naming -c", () => {
  usageError(["run", "-c", "0"], /^-c 0: .*at least 1/);
  usageError(["run", "-c", "256"], /^-c 256: at most 255 vCPUs/);
  usageError(["run", "-c", "9999"], /^-c 9999: at most 255 vCPUs/);
  usageError(["run", "-c", "x"], /^-c x: not a whole number/);
  usageError(["run", "--cpus=-1"], /^-c -1: /);
  usageError(["run", "-c", "-1"], /-c/);
  usageError(["run", "-c", "1.0"], /^-c 1.0: not a whole number/);
});

Deno.test("cli: an unknown option is one line naming it, without node's hint", () => {
  equal(usageError(["--bogus"], /./), "unknown option --bogus");
  equal(usageError(["run", "--bogus"], /./), "unknown option --bogus");
  equal(usageError(["run", "-x"], /./), "unknown option -x");
});

Deno.test("cli: an option missing its value at the end is refused naming it", () => {
  usageError(["run", "-k"], /-k/);
  usageError(["run", "--kernel"], /-k/);
  usageError(["run", "-m"], /-m/);
});

Deno.test("cli: a flag given a value is refused", () => {
  usageError(["run", "--debug=1"], /--debug/);
});

Deno.test("cli: an unknown command, no command, or an extra argument is refused", () => {
  usageError(["frob"], /^unknown command "frob"/);
  usageError([], /^no command given/);
  usageError(["run", "extra"], /^unexpected argument "extra"/);
});

Deno.test("cli: --help, -h and help ask for help; --version, -v and version for the version", () => {
  for (const argv of [["--help"], ["-h"], ["help"], ["run", "--help"]]) {
    deepEqual(parse(argv).cmd, { kind: "help" }, argv.join(" "));
  }
  for (const argv of [["--version"], ["-v"], ["version"]]) {
    deepEqual(parse(argv).cmd, { kind: "version" }, argv.join(" "));
  }
  match(VERSION, /^\d+\.\d+\.\d+/);
});

Deno.test("cli: help and version never look for the default guest", () => {
  for (const argv of [["--help"], ["version"]]) equal(parse(argv).defaultsCalls, 0);
});

Deno.test("cli: a usage error is raised before the default guest is looked for", () => {
  let called = false;
  throws(() =>
    parseCommandLine(["run", "-m", "abc"], () => {
      called = true;
      return GUEST;
    }), UsageError);
  equal(called, false);
});

Deno.test("cli: the default guest's own UsageError passes through unchanged", () => {
  throws(
    () =>
      parseCommandLine(["run"], () => {
        throw new UsageError("no default guest");
      }),
    (e: unknown) => e instanceof UsageError && e.message === "no default guest",
  );
});
