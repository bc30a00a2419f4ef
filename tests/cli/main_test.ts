// main.ts as the user meets it: exit statuses and the one line on stderr for every failure that
// happens before a VM runs. None of these needs a working KVM: the ones that must not reach it
// point DENOVMM_KVM_DEVICE at a path that does not exist, so reaching KVM first would show.
import { equal, match, ok } from "../assert.ts";
import { VERSION } from "../../src/cli/cli.ts";
import { SYNTHETIC_ELF_SEGMENTS, syntheticElf } from "../boot/test_kernel.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const NO_KVM = "/nonexistent-kvm";

/** A file scripts/setup.sh builds; under CI=true its absence fails the run instead of skipping. */
function guestFile(name: string): string | undefined {
  const path = `${REPO}.cache/guest/${name}`;
  try {
    Deno.statSync(path);
    return path;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    if (Deno.env.get("CI") === "true") {
      throw new Error(`main tests need ${path} (run scripts/setup.sh)`, { cause: e });
    }
    console.warn(`skipping main tests that need ${path}: not built (run scripts/setup.sh)`);
    return undefined;
  }
}
const kernelPath = guestFile("vmlinuz");
const initrdPath = guestFile("initramfs.cpio.gz");
const vmlinuxPath = guestFile("vmlinux");

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function denovmm(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: REPO,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // A start that hangs (as --disk FIFO once did) fails the test instead of the whole run.
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs denovmm expecting `code` and one `denovmm: ` line on stderr matching `pattern`. */
async function fails(
  args: string[],
  code: number,
  pattern: RegExp,
  env: Record<string, string> = { DENOVMM_KVM_DEVICE: NO_KVM },
): Promise<string> {
  const r = await denovmm(args, env);
  const what = `denovmm ${args.join(" ")}: stderr ${JSON.stringify(r.stderr)}`;
  equal(r.code, code, what);
  ok(!r.stderr.includes("    at "), `stack trace on stderr: ${what}`);
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  equal(lines.length, 1, `not exactly one line: ${what}`);
  match(lines[0], /^denovmm: /, what);
  match(lines[0], pattern, what);
  equal(r.stdout, "", `stdout: ${what}`);
  return lines[0];
}

Deno.test("main: --version prints the version and exits 0", async () => {
  const r = await denovmm(["--version"]);
  equal(r.code, 0, r.stderr);
  equal(r.stdout, `denovmm ${VERSION}\n`);
  equal(r.stderr, "");
});

Deno.test("main: --help prints the usage, which mentions run, and exits 0", async () => {
  const r = await denovmm(["--help"]);
  equal(r.code, 0, r.stderr);
  match(r.stdout, /denovmm run/);
  match(r.stdout, /-m, --mem/);
  equal(r.stderr, "");
});

Deno.test("main: an unknown option is one line and exit status 2", async () => {
  equal(await fails(["--bogus"], 2, /./), "denovmm: unknown option --bogus");
});

Deno.test("main: no command and an unknown command exit 2", async () => {
  await fails([], 2, /no command given/);
  await fails(["frob"], 2, /unknown command "frob"/);
});

Deno.test("main: a bad -m exits 2 naming -m", async () => {
  await fails(["run", "-m", "abc"], 2, /-m: invalid size "abc"/);
});

Deno.test("main: a bad -c exits 2 naming -c", async () => {
  await fails(["run", "-c", "9999"], 2, /-c 9999: /);
});

Deno.test("main: a missing kernel file exits 1 naming the path", async () => {
  await fails(["run", "-k", "/nonexistent/kernel"], 1, /\/nonexistent\/kernel: no such file/);
});

Deno.test("main: a directory as the kernel exits 1", async () => {
  await fails(["run", "-k", "/tmp"], 1, /kernel \/tmp: is a directory/);
});

Deno.test("main: an empty kernel file exits 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/empty`, new Uint8Array());
    await fails(["run", "-k", `${dir}/empty`], 1, /empty/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: a missing initrd exits 1 naming it, before KVM is touched", {
  ignore: kernelPath === undefined,
}, async () => {
  await fails(
    ["run", "-k", kernelPath!, "-i", "/nonexistent/initrd"],
    1,
    /initrd \/nonexistent\/initrd: no such file/,
  );
});

Deno.test("main: random bytes as the kernel exit 1 with not a bzImage, before KVM is touched", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/random`, crypto.getRandomValues(new Uint8Array(4096)));
    await fails(["run", "-k", `${dir}/random`], 1, /not a bzImage/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: a truncated kernel exits 1 with truncated, before KVM is touched", {
  ignore: kernelPath === undefined,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kernel = await Deno.readFile(kernelPath!);
    await Deno.writeFile(`${dir}/vmlinuz`, kernel.subarray(0, 100 * 1024));
    await fails(["run", "-k", `${dir}/vmlinuz`], 1, /truncated/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: an ELF kernel for another machine exits 1 naming e_machine, before KVM", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/vmlinux`, syntheticElf({ machine: 183 })); // EM_AARCH64
    await fails(["run", "-k", `${dir}/vmlinux`], 1, /not for x86-64 \(e_machine 183/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: an ELF segment with p_filesz > p_memsz exits 1 naming it, before KVM", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [text, data] = SYNTHETIC_ELF_SEGMENTS;
    const file = syntheticElf({ segments: [text, { ...data, filesz: 0x800, memsz: 0x400 }] });
    await Deno.writeFile(`${dir}/vmlinux`, file);
    await fails(["run", "-k", `${dir}/vmlinux`], 1, /segment 1: p_filesz 2048 exceeds p_memsz/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: a truncated vmlinux exits 1 with ELF truncated, before KVM is touched", {
  ignore: vmlinuxPath === undefined,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kernel = await Deno.readFile(vmlinuxPath!);
    await Deno.writeFile(`${dir}/vmlinux`, kernel.subarray(0, 1024 * 1024));
    await fails(["run", "-k", `${dir}/vmlinux`], 1, /ELF truncated: segment 0 needs bytes/);
    // Just the magic: an ELF that is too short is still judged as an ELF.
    await Deno.writeFile(`${dir}/vmlinux`, kernel.subarray(0, 16));
    await fails(["run", "-k", `${dir}/vmlinux`], 1, /ELF truncated: header needs 64 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: a KVM device that does not exist exits 1 naming it", {
  ignore: kernelPath === undefined || initrdPath === undefined,
}, async () => {
  await fails(["run"], 1, /\/nonexistent-kvm does not exist/, { DENOVMM_KVM_DEVICE: NO_KVM });
});

Deno.test("main: a device that is not KVM exits 1 saying so", {
  ignore: kernelPath === undefined || initrdPath === undefined,
}, async () => {
  await fails(["run"], 1, /\/dev\/null is not a KVM device/, { DENOVMM_KVM_DEVICE: "/dev/null" });
});

/** A path that open(O_RDWR) refuses with EACCES for this user: /proc/version for most users,
 * a read-only sysfs attribute for root (kernfs refuses writers without a store method). */
function unwritableFile(): string | undefined {
  for (const path of ["/proc/version", "/sys/kernel/uevent_seqnum"]) {
    try {
      Deno.openSync(path, { read: true, write: true }).close();
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied) return path;
    }
  }
  console.warn("skipping the permission-denied KVM test: no file here refuses a read-write open");
  return undefined;
}
const deniedPath = unwritableFile();

Deno.test("main: a KVM device that cannot be opened exits 1 with permission denied", {
  ignore: kernelPath === undefined || deniedPath === undefined,
}, async () => {
  const line = await fails(["run"], 1, /permission denied/, { DENOVMM_KVM_DEVICE: deniedPath! });
  ok(line.includes(deniedPath!), line);
});

Deno.test("main: a tap that cannot be created exits 1 naming it", {
  ignore: kernelPath === undefined || initrdPath === undefined,
}, async () => {
  await fails(["run", "--network", "tap=lo"], 1, /cannot create tap "lo": .*not a tap/);
});

Deno.test("main: a --disk that does not exist or is a directory exits 1 naming it", {
  ignore: kernelPath === undefined || initrdPath === undefined,
}, async () => {
  await fails(
    ["run", "--disk", "/nonexistent/disk.img"],
    1,
    /disk \/nonexistent\/disk\.img: no such file/,
  );
  await fails(["run", "--disk", "/tmp,ro"], 1, /disk \/tmp: /);
  const dir = Deno.makeTempDirSync();
  try {
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    await fails(["run", "--disk", `${dir}/fifo,ro`], 1, /fifo: not a regular file or block dev/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("main: --vfio-pci with a malformed address is a usage error, a missing device exits 1", {
  ignore: kernelPath === undefined || initrdPath === undefined,
}, async () => {
  await fails(
    ["run", "--vfio-pci", "10.0"],
    2,
    /--vfio-pci 10\.0: expected a PCI address like 0000:00:10\.0/,
  );
  await fails(
    ["run", "--vfio-pci", "0000:7f:1f.7"],
    1,
    /--vfio-pci 0000:7f:1f\.7: no such PCI device on this host/,
  );
});
