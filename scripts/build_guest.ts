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
 * that `denovmm run -k` boots without the guest decompressing itself), and puts
 * the kernels the KVM tests boot with the default guest's initramfs in
 * .cache/kernels/FLAVOUR/ (vmlinuz + release): amd64 (the guest's own),
 * cloud-amd64 and rt-amd64.
 */
import { writeCpioGz } from "./lib/cpio.ts";
import { decompress, exists, run, sha256 } from "./lib/build_util.ts";
import { moduleOrder, modulesDir } from "./lib/kmod.ts";
import { bzImagePayload, parseBzImage } from "../src/arch/x86_64/boot/bzimage.ts";
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

/**
 * The versioned kernel package a meta-package (linux-image-amd64, linux-image-cloud-amd64, ...)
 * points at on this machine's release, and its kernel release, e.g. "6.1.0-41-cloud-amd64".
 */
async function kernelPackage(meta: string): Promise<{ pkg: string; release: string }> {
  const deps = await run("apt-cache", ["depends", meta]);
  const pkg = deps.match(/Depends: (linux-image-\S+)/)?.[1];
  if (!pkg) throw new Error(`no kernel package in: apt-cache depends ${meta}`);
  return { pkg, release: pkg.replace(/^linux-image-/, "").replace(/-unsigned$/, "") };
}

/**
 * A kernel .deb's flavour ("amd64", "cloud-amd64", "rt-amd64") from its file name:
 * linux-image-ABI-FLAVOUR[-unsigned]_VERSION_ARCH.deb, ABI as 6.1.0-41 (Debian 12) or
 * 6.12.57+deb13 (Debian 13).
 */
function debFlavour(name: string): string | undefined {
  return name.match(/^linux-image-\d[^-_]*(?:-\d+)?-(.+?)(?:-unsigned)?_.*\.deb$/)?.[1];
}

/**
 * `apt-get download`s `pkg` into .cache/debs and returns the .deb's path. Only called when a
 * newer kernel is wanted, so the .debs of the same flavour already there are stale: they go
 * first (27 to 71 MB each on Debian 12).
 */
async function download(pkg: string): Promise<string> {
  const dir = `${cache}/debs`;
  await Deno.mkdir(dir, { recursive: true });
  const flavour = debFlavour(`${pkg}_.deb`);
  for (const e of Deno.readDirSync(dir)) {
    if (flavour && debFlavour(e.name) === flavour) await Deno.remove(`${dir}/${e.name}`);
  }
  await run("apt-get", ["download", "-q", pkg], dir);
  const deb = [...Deno.readDirSync(dir)]
    .map((e) => e.name).find((n) => n.startsWith(`${pkg}_`) && n.endsWith(".deb"));
  if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${dir}`);
  return `${dir}/${deb}`;
}

/**
 * Unpacks the versioned kernel package that linux-image-amd64 points at into
 * .cache/kernel/ (`apt-get download` + `dpkg -x`: no root, no install).
 * Returns the kernel release, e.g. "6.1.0-41-amd64".
 */
async function unpackKernel(): Promise<string> {
  const { pkg, release } = await kernelPackage("linux-image-amd64");
  if (await exists(`${cache}/kernel/boot/vmlinuz-${release}`)) return release;

  console.log(`build_guest: downloading ${pkg}`);
  const deb = await download(pkg);
  await Deno.remove(`${cache}/kernel`, { recursive: true }).catch(() => {});
  await run("dpkg", ["-x", deb, `${cache}/kernel`]);
  return release;
}

/**
 * Puts a kernel in .cache/kernels/FLAVOUR/: `vmlinuz` (written by `write`, given the path) and
 * `release`, written last, so that a run cut short leaves a stale or missing release and the
 * next run fetches again. A `release` naming `release` already means up to date.
 */
async function installKernel(
  flavour: string,
  release: string,
  write: (path: string) => Promise<string>,
): Promise<void> {
  const dir = `${cache}/kernels/${flavour}`;
  const releasePath = `${dir}/release`;
  if (
    await exists(`${dir}/vmlinuz`) &&
    (await Deno.readTextFile(releasePath).catch(() => "")) === `${release}\n`
  ) {
    console.log(`build_guest: kernels/${flavour} up to date (Linux ${release})`);
    return;
  }
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/vmlinuz.tmp`;
  const from = await write(tmp);
  const bzImage = parseBzImage(await Deno.readFile(tmp)); // what denovmm will check
  await Deno.rename(tmp, `${dir}/vmlinuz`);
  await Deno.writeTextFile(releasePath, `${release}\n`);
  console.log(
    `build_guest: kernels/${flavour}: Linux ${release}, bzImage protocol ` +
      `${bzImage.version >> 8}.${bzImage.version & 0xff}, from ${from}`,
  );
}

/**
 * The KVM tests' kernels (see installKernel): the default guest's, copied, and Debian's cloud
 * and rt flavours, of which only the bzImage is kept (the tests boot them with the default
 * guest's initramfs, whose modules do not fit them anyway).
 */
async function fetchKernels(guestDir: string, release: string): Promise<void> {
  await installKernel("amd64", release, async (path) => {
    await Deno.copyFile(`${guestDir}/vmlinuz`, path);
    return ".cache/guest/vmlinuz";
  });
  for (const flavour of ["cloud-amd64", "rt-amd64"]) {
    const { pkg, release } = await kernelPackage(`linux-image-${flavour}`);
    await installKernel(flavour, release, async (path) => {
      const deb = await download(pkg);
      // Only the bzImage, from the start of the data tarball: --occurrence=1 makes tar stop
      // once it has it (0.05 s instead of 3 s decompressing every module), so dpkg-deb dies of
      // SIGPIPE, hence its status and stderr are ignored; a failed dpkg-deb leaves tar without
      // the file, and tar's status, which run() checks, says so.
      await run("bash", [
        "-c",
        'dpkg-deb --fsys-tarfile "$1" 2>/dev/null | tar -xO --occurrence=1 "$2" >"$3"',
        "bash",
        deb,
        `./boot/vmlinuz-${release}`,
        path,
      ]);
      const size = (await Deno.stat(deb)).size;
      return `${deb.slice(root.length + 1)} (${(size / 1e6).toFixed(1)} MB)`;
    });
  }
}

/**
 * The kernel build's compressors that we can undo, by their magic: xz (Debian 12's kernel) and
 * zstd (Debian 13's). Both need the stream alone: the kernel build appends the uncompressed
 * size (4 bytes, size_append in scripts/Makefile.lib) after it, which plain `xz -d` rejects as
 * a truncated second stream (--single-stream stops after the first) and `zstd -d` as an
 * unknown frame (hence the payload is handed over without those 4 bytes).
 */
const PAYLOAD_FORMATS = [
  { tool: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], args: ["--single-stream"] },
  { tool: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], args: [] },
];

/**
 * Writes .cache/guest/vmlinux: the bzImage's payload (the kernel build's compressed vmlinux:
 * xz on Debian 12, zstd on 13) through its decompressor. A stamp with the bzImage's hash makes
 * a second run a no-op.
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
  const format = PAYLOAD_FORMATS.find((f) => f.magic.every((b, i) => payload[i] === b));
  if (!format) {
    const head = [...payload.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0"));
    throw new Error(
      `${guestDir}/vmlinuz: payload starts ${head.join(" ")}: neither xz nor zstd, ` +
        `the only compressions supported`,
    );
  }
  const stream = payload.subarray(0, payload.length - 4);
  const vmlinux = await decompress(format.tool, stream, "the kernel's payload", format.args);
  const sizeAppended = new DataView(payload.buffer, payload.byteOffset + payload.length - 4, 4)
    .getUint32(0, true);
  if (vmlinux.length !== sizeAppended) {
    throw new Error(
      `${format.tool} gave ${vmlinux.length} bytes; the bzImage says vmlinux is ${sizeAppended}`,
    );
  }
  const kernel = parseElf(vmlinux); // what denovmm will check: fail here rather than at boot
  const tmp = `${target}.tmp`;
  await Deno.writeFile(tmp, vmlinux);
  await Deno.rename(tmp, target);
  await Deno.writeTextFile(stampPath, stamp);
  console.log(
    `build_guest: vmlinux extracted (${format.tool}): ${(vmlinux.length / 1e6).toFixed(1)} MB, ` +
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
  if (mode === "guest") {
    await extractVmlinux(guestDir, release);
    await fetchKernels(guestDir, release);
  }

  const busybox = await Deno.readFile("/bin/busybox");
  const init = await Deno.readFile(`${root}/scripts/initramfs/${mode}-init.sh`);
  const builder = await Promise.all(
    ["build_guest.ts", "lib/cpio.ts", "lib/modinfo.ts", "lib/build_util.ts", "lib/kmod.ts"]
      .map((f) => Deno.readFile(`${root}/scripts/${f}`)),
  );
  const stamp = `${release} ${await sha256(busybox, init, ...builder)}\n`;
  const target = `${outDir}/initramfs.cpio.gz`;
  const stampPath = `${outDir}/initramfs.stamp`;
  if (await exists(target) && (await Deno.readTextFile(stampPath).catch(() => "")) === stamp) {
    console.log(`build_guest: ${mode} up to date (Linux ${release})`);
    return;
  }

  const modules = await moduleOrder(await modulesDir(`${cache}/kernel`, release), MODULES[mode]);
  const names = modules.map((m) => m.name);
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
    // The kernel the modules are for: guest-init.sh loads none under another (the KVM tests
    // boot Debian's cloud and rt kernels with this image).
    { path: "etc/modules.release", mode: 0o100644, data: new TextEncoder().encode(`${release}\n`) },
    {
      path: "etc/modules.order",
      mode: 0o100644,
      data: new TextEncoder().encode(names.join("\n") + "\n"),
    },
    ...modules.map((m) => ({ path: `lib/modules/${m.name}`, mode: 0o100644, data: m.data })),
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
