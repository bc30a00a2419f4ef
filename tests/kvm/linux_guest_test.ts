// The default Linux guest on a real KVM VM (in the sandbox where the host has none): it boots
// to its shell, runs piped commands, sees the RAM and command line it was given, and its
// exit status comes back to the host.
import { equal, ok } from "../assert.ts";
import { assertMemTotal, GUEST_DIR, kernelRelease, runDenovmm } from "./guest_runner.ts";

const BANNER = "denovmm guest ready: Linux ";
const MiB = 1024 * 1024;

Deno.test("linux: 256M guest boots, runs piped commands, sees -p, and its exit status returns", async () => {
  const r = await runDenovmm({
    args: ["run", "-m", "256M", "-p", "quiet denovmm.test=piped-42"],
    input: "uname -r\ncat /proc/cmdline\ngrep MemTotal /proc/meminfo\n" +
      "echo aperture-scans=$(dmesg | grep -c 'Checking aperture')\n" +
      "echo crypto-notests=$(cat /sys/module/cryptomgr/parameters/notests)\n" +
      'test -e "$(cat /proc/sys/kernel/modprobe)" || echo no-modprobe-helper\nexit 7\n',
  });
  equal(r.status, 7, `status ${r.status}\n${r.stdout}\n${r.stderr}`);
  ok(r.stdout.includes(BANNER + kernelRelease()), r.stdout);
  // Escaped: Debian 13's release has a '+' (6.12.117+deb13-amd64).
  const release = kernelRelease().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  ok(new RegExp(`^${release}\\r?$`, "m").test(r.stdout), "uname -r shows Debian's kernel");
  ok(/console=ttyS0 .*quiet denovmm\.test=piped-42/.test(r.stdout), "/proc/cmdline carries -p");
  assertMemTotal(r.stdout, 256 * MiB);
  // pci=noearly (BASE_CMDLINE): no early PCI scan. On an AMD family 0xf CPU (the sandbox's)
  // the kernel would otherwise walk all 256 buses for a GART aperture, a second of port exits.
  ok(/aperture-scans=0\r?$/m.test(r.stdout), "the kernel scanned PCI early");
  // Two more things a boot need not spend its time on: the crypto self-tests (BASE_CMDLINE),
  // and the kernel's module helper, which the default guest leaves out (build_guest.ts)
  // because busybox's modprobe cannot find its modules: each request_module was a failing exec.
  ok(/crypto-notests=Y\r?$/m.test(r.stdout), "the crypto self-tests ran");
  ok(/^no-modprobe-helper\r?$/m.test(r.stdout), "the guest has the kernel's modprobe helper");
});

Deno.test("linux: a 3500M guest (RAM split around the 32-bit hole) sees all of it", async () => {
  const r = await runDenovmm({
    args: ["run", "-m", "3500M"],
    input: "grep MemTotal /proc/meminfo\n",
  });
  equal(r.status, 0, `EOF ends the shell with status 0\n${r.stdout}\n${r.stderr}`);
  assertMemTotal(r.stdout, 3500 * MiB);
});

Deno.test("linux: EOF on stdin ends the guest's shell, and the VM with status 0", async () => {
  const r = await runDenovmm({ args: ["run"], input: "echo no-exit-command\n" });
  equal(r.status, 0, r.stdout + r.stderr);
  ok(r.stdout.includes("no-exit-command"));
});

// The default guest boots its vmlinux (src/cli/default_guest.ts); the bzImage path must keep
// working for kernels that come only as one.
Deno.test("linux: the bzImage (compressed, self-decompressing) boots to the shell and returns its exit status", async () => {
  const r = await runDenovmm({
    args: ["run", "-k", `${GUEST_DIR}/vmlinuz`, "-i", `${GUEST_DIR}/initramfs.cpio.gz`],
    input: "echo hi-from-$((6 * 7))-bzimage; exit 0\n",
  });
  equal(r.status, 0, `status ${r.status}\n${r.stdout}\n${r.stderr}`);
  ok(r.stdout.includes(BANNER + kernelRelease()), r.stdout);
  // The shell's output, not the echo of the typed line: the arithmetic must have run.
  ok(r.stdout.includes("hi-from-42-bzimage"), r.stdout);
});
