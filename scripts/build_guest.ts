/**
 * Builds the default guest (`guest`) or the KVM sandbox's initramfs (`sandbox`)
 * from Debian's own kernel and busybox-static, without installing the kernel:
 *
 *   .tools/deno run -A scripts/build_guest.ts guest|sandbox
 *
 * Both modes put the kernel at .cache/guest/vmlinuz (+ kernel-release); the
 * initramfs goes to .cache/<mode>/initramfs.cpio.gz. A stamp next to it records
 * what it was built from, so a second run with the same inputs does nothing.
 * `guest` also extracts the uncompressed kernel to .cache/guest/vmlinux (an ELF
 * that `denovmm run -k` boots without the guest decompressing itself).
 */
import { writeCpioGz } from "./lib/cpio.ts";
import { readModinfo } from "./lib/modinfo.ts";
import { bzImagePayload } from "../src/boot/bzimage.ts";
import { parseElf } from "../src/boot/elf.ts";

const MODULES: Record<string, string[]> = {
  // KVM-ENV.md "The nested guest": what the default guest's devices need.
  guest: [
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "e1000e",
  ],
  // KVM-ENV.md "Nested KVM under QEMU's software CPU" and "VFIO".
  sandbox: ["kvm_amd", "virtio_pci", "9pnet_virtio", "9p", "vfio_iommu_type1", "vfio_pci", "tun"],
};

const mode = Deno.args[0];
if (!(mode in MODULES)) {
  console.error("usage: build_guest.ts guest|sandbox");
  Deno.exit(2);
}

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const cache = `${root}/.cache`;

/** Runs a command and returns its stdout; throws with its stderr on failure. */
async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Unpacks the versioned kernel package that linux-image-amd64 points at into
 * .cache/kernel/ (`apt-get download` + `dpkg -x`: no root, no install).
 * Returns the kernel release, e.g. "6.1.0-41-amd64".
 */
async function unpackKernel(): Promise<string> {
  const deps = await run("apt-cache", ["depends", "linux-image-amd64"]);
  const pkg = deps.match(/Depends: (linux-image-\S+)/)?.[1];
  if (!pkg) throw new Error(`no kernel package in: apt-cache depends linux-image-amd64`);
  const release = pkg.replace(/^linux-image-/, "").replace(/-unsigned$/, "");
  if (await exists(`${cache}/kernel/boot/vmlinuz-${release}`)) return release;

  console.log(`build_guest: downloading ${pkg}`);
  await Deno.mkdir(`${cache}/debs`, { recursive: true });
  await run("apt-get", ["download", "-q", pkg], `${cache}/debs`);
  const deb = [...Deno.readDirSync(`${cache}/debs`)]
    .map((e) => e.name).find((n) => n.startsWith(`${pkg}_`) && n.endsWith(".deb"));
  if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${cache}/debs`);
  await Deno.remove(`${cache}/kernel`, { recursive: true }).catch(() => {});
  await run("dpkg", ["-x", `${cache}/debs/${deb}`, `${cache}/kernel`]);
  return release;
}

/** Maps module name (with `_`, as modinfo spells it) to its .ko path. */
function indexModules(dir: string, index = new Map<string, string>()): Map<string, string> {
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) indexModules(path, index);
    else if (e.name.endsWith(".ko")) index.set(e.name.slice(0, -3).replaceAll("-", "_"), path);
    else if (/\.ko\.(xz|zst|gz)$/.test(e.name)) {
      throw new Error(`${path}: compressed modules are not supported (busybox insmod)`);
    }
  }
  return index;
}

/**
 * Resolves `wanted` with their `depends=` (from each .ko's .modinfo) into a
 * load order: every module after all it depends on. Built-in modules are skipped.
 */
async function moduleOrder(release: string, wanted: string[]): Promise<string[]> {
  const modDir = `${cache}/kernel/lib/modules/${release}`;
  const index = indexModules(`${modDir}/kernel`);
  const builtin = new Set(
    (await Deno.readTextFile(`${modDir}/modules.builtin`)).split("\n")
      .map((l) => l.replace(/^.*\//, "").replace(/\.ko$/, "").replaceAll("-", "_")),
  );
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = async (name: string) => {
    if (order.includes(name) || builtin.has(name)) return;
    const path = index.get(name);
    if (!path) throw new Error(`module ${name} is neither in ${modDir} nor built in`);
    if (visiting.has(name)) throw new Error(`module dependency cycle at ${name}`);
    visiting.add(name);
    for (const dep of (await readModinfo(path)).depends) await visit(dep.replaceAll("-", "_"));
    order.push(name);
  };
  for (const name of wanted) await visit(name);
  return order.map((n) => index.get(n)!);
}

async function sha256(...parts: Uint8Array[]): Promise<string> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** xz's stream header magic: FD 37 7A 58 5A 00. */
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

/**
 * Writes .cache/guest/vmlinux: the bzImage's payload (the kernel build's compressed vmlinux,
 * xz on Debian) through `xz -dc`. A stamp with the bzImage's hash makes a second run a no-op.
 */
async function extractVmlinux(guestDir: string, release: string): Promise<void> {
  const bzImage = await Deno.readFile(`${guestDir}/vmlinuz`);
  const target = `${guestDir}/vmlinux`;
  const stampPath = `${guestDir}/vmlinux.stamp`;
  const stamp = `${release} ${await sha256(bzImage)}\n`;
  if (await exists(target) && (await Deno.readTextFile(stampPath).catch(() => "")) === stamp) {
    console.log(`build_guest: vmlinux up to date (Linux ${release})`);
    return;
  }
  const payload = bzImagePayload(bzImage);
  if (!XZ_MAGIC.every((b, i) => payload[i] === b)) {
    throw new Error(`${guestDir}/vmlinuz: payload is not xz-compressed; only xz is supported`);
  }
  let xz: Deno.ChildProcess;
  try {
    // --single-stream: the kernel build appends the uncompressed size (4 bytes, size_append in
    // scripts/Makefile.lib) after the stream, which plain xz -d rejects as a truncated second one.
    xz = new Deno.Command("xz", {
      args: ["-dc", "--single-stream"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error("xz not found: install xz-utils (scripts/setup.sh does)", { cause: e });
  }
  const feeding = (async () => {
    const w = xz.stdin.getWriter();
    await w.write(payload);
    await w.close();
  })();
  const [out] = await Promise.all([xz.output(), feeding]);
  if (!out.success) {
    throw new Error(`xz -dc failed on the payload: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const vmlinux = out.stdout;
  const sizeAppended = new DataView(payload.buffer, payload.byteOffset + payload.length - 4, 4)
    .getUint32(0, true);
  if (vmlinux.length !== sizeAppended) {
    throw new Error(`xz gave ${vmlinux.length} bytes; the bzImage says vmlinux is ${sizeAppended}`);
  }
  const kernel = parseElf(vmlinux); // what denovmm will check: fail here rather than at boot
  const tmp = `${target}.tmp`;
  await Deno.writeFile(tmp, vmlinux);
  await Deno.rename(tmp, target);
  await Deno.writeTextFile(stampPath, stamp);
  console.log(
    `build_guest: vmlinux extracted: ${(vmlinux.length / 1e6).toFixed(1)} MB, ` +
      `${kernel.segments.length} segments, entry 0x${kernel.entryGpa.toString(16)}`,
  );
}

async function main() {
  const release = await unpackKernel();
  const guestDir = `${cache}/guest`;
  const outDir = `${cache}/${mode}`;
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.mkdir(guestDir, { recursive: true });

  // The kernel is shared by both modes: the sandbox boots the same one.
  await Deno.copyFile(`${cache}/kernel/boot/vmlinuz-${release}`, `${guestDir}/vmlinuz`);
  await Deno.writeTextFile(`${guestDir}/kernel-release`, `${release}\n`);
  if (mode === "guest") await extractVmlinux(guestDir, release);

  const busybox = await Deno.readFile("/bin/busybox");
  const init = await Deno.readFile(`${root}/scripts/initramfs/${mode}-init.sh`);
  const builder = await Promise.all(
    ["build_guest.ts", "lib/cpio.ts", "lib/modinfo.ts"]
      .map((f) => Deno.readFile(`${root}/scripts/${f}`)),
  );
  const stamp = `${release} ${await sha256(busybox, init, ...builder)}\n`;
  const target = `${outDir}/initramfs.cpio.gz`;
  const stampPath = `${outDir}/initramfs.stamp`;
  if (await exists(target) && (await Deno.readTextFile(stampPath).catch(() => "")) === stamp) {
    console.log(`build_guest: ${mode} up to date (Linux ${release})`);
    return;
  }

  const modules = await moduleOrder(release, MODULES[mode]);
  const names = modules.map((p) => p.replace(/^.*\//, ""));
  // Every applet but modprobe. The kernel runs /sbin/modprobe for each module it asks for
  // (request_module: a crypto template, a netdev alias, ...), and busybox's cannot find our
  // modules (they sit flat in /lib/modules, loaded by /init with insmod): each such call
  // costs an exec that fails, and under nested emulation a boot spent 0.1 s in them for
  // nothing. Without the file, the kernel's call fails at once.
  const applets = (await run("/bin/busybox", ["--list-full"])).split("\n")
    .filter((a) => a !== "" && a !== "sbin/modprobe");

  const entries = [
    ...["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "etc"]
      .map((path) => ({ path, mode: 0o40755 })),
    { path: "lib", mode: 0o40755 },
    { path: "lib/modules", mode: 0o40755 },
    // The kernel opens /dev/console before /init runs: it must exist in the image.
    { path: "dev/console", mode: 0o20600, rdev: [5, 1] as [number, number] },
    { path: "bin/busybox", mode: 0o100755, data: busybox },
    ...applets.filter((a) => a !== "bin/busybox")
      .map((path) => ({ path, mode: 0o120777, data: new TextEncoder().encode("/bin/busybox") })),
    { path: "init", mode: 0o100755, data: init },
    {
      path: "etc/modules.order",
      mode: 0o100644,
      data: new TextEncoder().encode(names.join("\n") + "\n"),
    },
    ...await Promise.all(modules.map(async (p, i) => ({
      path: `lib/modules/${names[i]}`,
      mode: 0o100644,
      data: await Deno.readFile(p),
    }))),
  ];
  await writeCpioGz(target, entries);
  await Deno.writeTextFile(stampPath, stamp);
  const size = (await Deno.stat(target)).size;
  console.log(
    `build_guest: ${mode} built: ${target.slice(root.length + 1)} (${
      (size / 1e6).toFixed(1)
    } MB, ` +
      `Linux ${release}, ${names.length} modules: ${names.map((n) => n.slice(0, -3)).join(" ")})`,
  );
}

await main();
