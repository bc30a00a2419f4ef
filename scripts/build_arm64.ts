/**
 * Builds what the arm64 sandbox (scripts/sandbox.sh --arch arm64) and the default arm64 guest
 * need, from Debian's arm64 packages (fetched and checked by scripts/lib/debian.ts, never
 * installed):
 *
 *   .tools/deno run -A scripts/build_arm64.ts
 *
 * - .cache/arm64/sandbox/: Image (trixie's 16 KiB-page kernel, linux-image-arm64-16k, with
 *   KVM, the SMMUv3 and the GICv3 ITS built in) + kernel-release + initramfs.cpio.gz (trixie's
 *   busybox-static, the 9p and VFIO modules, scripts/initramfs/sandbox-init.sh as /init);
 * - .cache/arm64/root/: the tree the sandbox chroots into: trixie's libc6 and libgcc-s1 (what
 *   Deno's arm64 binary links against), busybox's applets in /usr/bin, and trixie's
 *   qemu-system-arm with everything it depends on (qemu-system-aarch64, for benchmarks that
 *   compare denovmm with QEMU inside the arm64 sandbox);
 * - .cache/arm64/guest/: Image (bookworm's linux-image-arm64, 6.1, 4 KiB pages, as the raw
 *   Image with "ARM\x64" at 0x38) + kernel-release + initramfs.cpio.gz, built like the x86
 *   default guest's (scripts/initramfs/guest-init.sh, bookworm's busybox-static, the virtio,
 *   e1000e and nvme modules with their dependencies).
 *
 * Each output has a stamp naming the builder's hash and the packages it came from: while the
 * stamp matches this builder, the output is kept and nothing is fetched (rm -rf .cache/arm64
 * takes newer packages).
 */
import { writeCpioGz } from "./lib/cpio.ts";
import { exists, run, sha256, writeAtomic } from "./lib/build_util.ts";
import { type Module, moduleOrder, modulesDir } from "./lib/kmod.ts";
import { fetchDeb, type PackageIndex, packageIndex, type Stanza, unpackDeb } from "./lib/debian.ts";
import { arm64Image, imagePageSize } from "./lib/arm64_image.ts";
import { busyboxApplets } from "./lib/busybox.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const cache = `${root}/.cache/arm64`;
const debs = `${cache}/debs`;
const encoder = new TextEncoder();

/** The sandbox's modules: 9p for the shares, VFIO for --vfio, tun for a nested guest's network. */
const SANDBOX_MODULES = ["9pnet_virtio", "9p", "vfio_iommu_type1", "vfio_pci", "tun"];
/** The default guest's: KVM-ENV.md "The nested guest", plus nvme (passed through on arm64). */
const GUEST_MODULES = [
  "virtio_pci",
  "virtio_net",
  "virtio_blk",
  "virtio_console",
  "virtio_rng",
  "e1000e",
  "nvme",
];

/** The builder's own sources and the init scripts: part of every stamp. */
async function builderHash(): Promise<string> {
  const files = [
    "build_arm64.ts",
    "lib/cpio.ts",
    "lib/modinfo.ts",
    "lib/build_util.ts",
    "lib/kmod.ts",
    "lib/debian.ts",
    "lib/arm64_image.ts",
    "lib/busybox.ts",
    "initramfs/sandbox-init.sh",
    "initramfs/guest-init.sh",
  ];
  return await sha256(
    ...await Promise.all(files.map((f) => Deno.readFile(`${root}/scripts/${f}`))),
  );
}

/** An output's stamp: up to date while its first word is this builder's hash. */
class Stamp {
  constructor(readonly path: string, readonly hash: string) {}
  async current(): Promise<string | undefined> {
    const text = await Deno.readTextFile(this.path).catch(() => "");
    return text.startsWith(`${this.hash} `) ? text.slice(this.hash.length + 1).trim() : undefined;
  }
  async write(what: string): Promise<void> {
    await Deno.writeTextFile(this.path, `${this.hash} ${what}\n`);
  }
}

/** Lazily fetched indices: an up-to-date run fetches none. */
const indices = new Map<string, Promise<PackageIndex>>();
function index(suite: string): Promise<PackageIndex> {
  if (!indices.has(suite)) indices.set(suite, packageIndex(suite, "arm64", `${cache}/index`));
  return indices.get(suite)!;
}

/** Downloads (or finds) `pkg` from `suite` and unpacks it into `into`; returns its stanza. */
async function unpack(suite: string, pkg: string, into: string): Promise<Stanza> {
  const stanza = await (await index(suite)).get(pkg);
  await unpackDeb(await fetchDeb(stanza, debs), into);
  return stanza;
}

/**
 * The kernel a meta-package points at (its -unsigned build where the index has one: the same
 * kernel without the EFI signature), unpacked into .cache/arm64/kernel-FLAVOUR/. Returns the
 * unpacked tree, the release and the raw Image.
 */
async function kernel(suite: string, meta: string) {
  const idx = await index(suite);
  const signed = await idx.dependency(meta);
  const pkg = idx.has(`${signed}-unsigned`) ? `${signed}-unsigned` : signed;
  const release = signed.replace(/^linux-image-/, "");
  const tree = `${cache}/kernel-${release}`;
  if (!await exists(`${tree}/boot/vmlinuz-${release}`)) {
    await Deno.remove(tree, { recursive: true }).catch(() => {});
    await unpack(suite, pkg, `${tree}.tmp`);
    await Deno.rename(`${tree}.tmp`, tree);
  }
  const vmlinuz = `${tree}/boot/vmlinuz-${release}`;
  const image = await arm64Image(await Deno.readFile(vmlinuz), vmlinuz);
  return { tree, release, image, pkg };
}

/** busybox-static of `suite`: its binary and applet names. */
async function busybox(suite: string) {
  const dir = `${cache}/busybox-${suite}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const stanza = await unpack(suite, "busybox-static", dir);
  const path = await exists(`${dir}/usr/bin/busybox`)
    ? `${dir}/usr/bin/busybox`
    : `${dir}/bin/busybox`;
  const binary = await Deno.readFile(path);
  return { binary, applets: busyboxApplets(binary, path), version: stanza.Version };
}

/**
 * An initramfs like build_guest.ts's: busybox with every applet but modprobe (see there: the
 * kernel's request_module calls would exec it for nothing) linked in /bin (the applets' own
 * directories are not in the binary; every init here runs with /bin on PATH), the init, the
 * modules flat in /lib/modules with their load order and the release they are for.
 */
async function writeInitramfs(
  target: string,
  init: Uint8Array<ArrayBuffer>,
  bb: { binary: Uint8Array<ArrayBuffer>; applets: string[] },
  release: string,
  modules: Module[],
): Promise<void> {
  const names = modules.map((m) => m.name);
  await writeCpioGz(target, [
    ...["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "etc"]
      .map((path) => ({ path, mode: 0o40755 })),
    { path: "lib", mode: 0o40755 },
    { path: "lib/modules", mode: 0o40755 },
    // The kernel opens /dev/console before /init runs: it must exist in the image.
    { path: "dev/console", mode: 0o20600, rdev: [5, 1] as [number, number] },
    { path: "bin/busybox", mode: 0o100755, data: bb.binary },
    ...bb.applets.filter((a) => a !== "busybox" && a !== "modprobe")
      .map((a) => ({ path: `bin/${a}`, mode: 0o120777, data: encoder.encode("/bin/busybox") })),
    { path: "init", mode: 0o100755, data: init },
    { path: "etc/modules.release", mode: 0o100644, data: encoder.encode(`${release}\n`) },
    { path: "etc/modules.order", mode: 0o100644, data: encoder.encode(names.join("\n") + "\n") },
    ...modules.map((m) => ({ path: `lib/modules/${m.name}`, mode: 0o100644, data: m.data })),
  ]);
}

/** A kernel + initramfs output directory (sandbox/ or guest/). */
async function buildBoot(
  name: string,
  hash: string,
  suite: string,
  meta: string,
  busyboxSuite: string,
  initScript: string,
  wanted: string[],
  pageSize: number,
): Promise<void> {
  const dir = `${cache}/${name}`;
  const stamp = new Stamp(`${dir}/stamp`, hash);
  const done = await stamp.current();
  if (done && await exists(`${dir}/Image`) && await exists(`${dir}/initramfs.cpio.gz`)) {
    console.log(`build_arm64: ${name} up to date (${done})`);
    return;
  }
  await Deno.mkdir(dir, { recursive: true });
  const k = await kernel(suite, meta);
  const pages = imagePageSize(k.image);
  if (pages !== pageSize) {
    throw new Error(`${k.pkg}: an Image for ${pages ?? "unspecified"}-byte pages, not ${pageSize}`);
  }
  const bb = await busybox(busyboxSuite);
  const modules = await moduleOrder(await modulesDir(k.tree, k.release), wanted);
  const init = await Deno.readFile(`${root}/scripts/initramfs/${initScript}`);
  await writeInitramfs(`${dir}/initramfs.cpio.gz.tmp`, init, bb, k.release, modules);
  await Deno.rename(`${dir}/initramfs.cpio.gz.tmp`, `${dir}/initramfs.cpio.gz`);
  await writeAtomic(`${dir}/Image`, k.image);
  await Deno.writeTextFile(`${dir}/kernel-release`, `${k.release}\n`);
  const what = `Linux ${k.release}, busybox ${bb.version}`;
  await stamp.write(what);
  const size = (await Deno.stat(`${dir}/initramfs.cpio.gz`)).size;
  console.log(
    `build_arm64: ${name} built: Image ${(k.image.length / 1e6).toFixed(1)} MB (${
      pageSize / 1024
    } KiB ` +
      `pages), initramfs ${(size / 1e6).toFixed(1)} MB, ${what}, ${modules.length} modules: ` +
      modules.map((m) => m.name.slice(0, -3)).join(" "),
  );
}

/** What the chroot has beside libc6 and libgcc-s1: QEMU (about 85 packages, 32 MB of .debs). */
const ROOT_EXTRAS = ["qemu-system-arm"];

/**
 * The chroot's tree: merged /usr as on trixie (bin, sbin, lib link into usr/), libc6 and
 * libgcc-s1, QEMU and its dependencies, busybox with its applets in /usr/bin (where no package
 * put a program of the same name), a root user and localhost. The mount points
 * (/proc, /tmp, the work folder's path, ...) are made by the sandbox's init on a tmpfs, so this
 * tree is shared read-only.
 */
async function buildRoot(hash: string): Promise<void> {
  const dir = `${cache}/root`;
  const stamp = new Stamp(`${cache}/root.stamp`, hash);
  const done = await stamp.current();
  if (done && await exists(`${dir}/usr/bin/busybox`)) {
    console.log(`build_arm64: root up to date (${done})`);
    return;
  }
  const tmp = `${dir}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  for (const d of ["usr/bin", "usr/sbin", "usr/lib", "etc"]) {
    await Deno.mkdir(`${tmp}/${d}`, { recursive: true });
  }
  for (const l of ["bin", "sbin", "lib"]) await Deno.symlink(`usr/${l}`, `${tmp}/${l}`);
  const versions: string[] = [];
  for (const pkg of ["libc6", "libgcc-s1"]) {
    versions.push(`${pkg} ${(await unpack("trixie", pkg, tmp)).Version}`);
  }
  const trixie = await index("trixie");
  const extras = await trixie.closure(ROOT_EXTRAS, new Set(["libc6", "libgcc-s1"]));
  // Fetched a few at a time (most are small), unpacked in turn.
  const pending = [...extras];
  const debPaths = new Map<Stanza, string>();
  await Promise.all(Array.from({ length: 6 }, async () => {
    for (let s = pending.shift(); s; s = pending.shift()) debPaths.set(s, await fetchDeb(s, debs));
  }));
  for (const s of extras) await unpackDeb(debPaths.get(s)!, tmp);
  // A package that still ships /bin or /lib as a directory would have replaced the merged-/usr
  // link with a directory (tar does that): then the loader or busybox would be missing.
  for (const l of ["bin", "sbin", "lib"]) {
    if (!(await Deno.lstat(`${tmp}/${l}`)).isSymlink) {
      throw new Error(`unpacking the chroot's packages replaced /${l}, a link into /usr`);
    }
  }
  for (const name of ROOT_EXTRAS) {
    versions.push(`${name} ${extras.find((s) => s.Package === name)!.Version}`);
  }
  versions.push(`${extras.length - ROOT_EXTRAS.length} dependencies`);
  const bb = await busybox("trixie");
  await Deno.writeFile(`${tmp}/usr/bin/busybox`, bb.binary, { mode: 0o755 });
  for (const a of bb.applets) {
    if (!await exists(`${tmp}/usr/bin/${a}`)) await Deno.symlink("busybox", `${tmp}/usr/bin/${a}`);
  }
  versions.push(`busybox ${bb.version}`);
  await Deno.writeTextFile(`${tmp}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(`${tmp}/etc/group`, "root:x:0:\n");
  await Deno.writeTextFile(`${tmp}/etc/hosts`, "127.0.0.1 localhost\n::1 localhost\n");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, dir);
  await stamp.write(versions.join(", "));
  const du = (await run("du", ["-sm", dir])).split("\t")[0];
  console.log(`build_arm64: root built: ${du} MB, ${versions.join(", ")}`);
}

async function main() {
  const hash = await builderHash();
  await Deno.mkdir(cache, { recursive: true });
  // trixie's 16k flavour: the sandbox's host page size differs from the guest's, as on Apple
  // silicon and many arm64 servers, which is what the VMM has to get right.
  await buildBoot(
    "sandbox",
    hash,
    "trixie",
    "linux-image-arm64-16k",
    "trixie",
    "sandbox-init.sh",
    SANDBOX_MODULES,
    16384,
  );
  await buildRoot(hash);
  await buildBoot(
    "guest",
    hash,
    "bookworm",
    "linux-image-arm64",
    "bookworm",
    "guest-init.sh",
    GUEST_MODULES,
    4096,
  );
}

await main();
