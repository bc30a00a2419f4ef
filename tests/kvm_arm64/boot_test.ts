// The arm64 machine end to end, in the aarch64 sandbox (a 16 KiB-page host with a real
// /dev/kvm, GICv3 and ITS; scripts/sandbox.sh --arch arm64): the default guest (Debian's 4 KiB
// page arm64 kernel and busybox) boots from its Image and a device tree denovmm writes, runs
// piped commands on the 8250, and ends the VM through the debug-exit port or PSCI.
import { equal, match } from "../assert.ts";
import { assertMemTotal, runDenovmm } from "../kvm/guest_runner.ts";

Deno.test("arm64: the host is arm64 with 16 KiB pages and a /dev/kvm (the case this suite is for)", () => {
  equal(Deno.build.arch, "aarch64");
  const smaps = Deno.readTextFileSync("/proc/self/smaps");
  match(smaps, /^KernelPageSize:\s+16 kB$/m);
  Deno.statSync("/dev/kvm");
});

Deno.test("arm64: the guest boots with 1 vCPU, runs piped commands, sees -p and RAM, its status returns", async () => {
  const r = await runDenovmm({
    args: ["run", "-m", "256M", "-p", "quiet denovmm.test=1"],
    input: [
      "echo arch $(uname -m)",
      "echo cpus $(grep -c ^processor /proc/cpuinfo)",
      "grep KernelPageSize /proc/self/smaps | head -1",
      "cat /proc/cmdline",
      "grep MemTotal /proc/meminfo",
      "grep -E 'ttyS0|arch_timer|GICv3' /proc/interrupts | sed 's/^/irq /'",
      "cat /proc/device-tree/compatible; echo",
      "exit 3",
    ].join("\n") + "\n",
  });
  equal(r.status, 3, r.stdout + r.stderr);
  match(r.stdout, /denovmm guest ready: Linux /);
  match(r.stdout, /^arch aarch64\r?$/m);
  match(r.stdout, /^cpus 1\r?$/m);
  // The guest's own pages: the kernel is 4 KiB-page, the host's are 16 KiB.
  match(r.stdout, /KernelPageSize:\s+4 kB/);
  match(r.stdout, /console=ttyS0 .*denovmm\.test=1/);
  assertMemTotal(r.stdout, 256 * 1024 * 1024);
  match(r.stdout, /linux,dummy-virt/);
  // The console's interrupt and the architected timer's, both through the vGIC.
  match(r.stdout, /^irq .*GICv3.*ttyS0/m);
  match(r.stdout, /^irq .*arch_timer/m);
});

Deno.test("arm64: 2 vCPUs come online through PSCI, run a job each, and poweroff ends the VM (SYSTEM_OFF)", async () => {
  const r = await runDenovmm({
    args: ["run", "-c", "2", "--debug"],
    input: [
      "echo online $(cat /sys/devices/system/cpu/online)",
      "(i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo job-a done) &",
      "(i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo job-b done) &",
      "wait",
      "poweroff -f",
    ].join("\n") + "\n",
  });
  equal(r.status, 0, r.stdout + r.stderr);
  match(r.stdout, /^online 0-1\r?$/m);
  match(r.stdout, /job-a done/);
  match(r.stdout, /job-b done/);
  // PSCI SYSTEM_OFF reaches denovmm as KVM_EXIT_SYSTEM_EVENT type 1 (SYSTEM_RESET, type 2, in
  // virtio_test.ts's network boot); the debug-exit port is the 1-vCPU boot's way out. (EOF on
  // stdin ends a guest the same way on either architecture: tests/kvm/linux_guest_test.ts.)
  match(r.stderr, /KVM_EXIT_SYSTEM_EVENT type 1: the VM ends, status 0/);
});
