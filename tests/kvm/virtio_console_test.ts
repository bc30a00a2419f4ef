// --console virtio: the terminal is the guest's hvc0 (virtio-console), input and output both
// through virtqueues, and the shell's exit status still comes back. The same boot, with a disk
// and an rng beside the console and --debug, holds the MSI routing to its budget: at most one
// KVM_SET_GSI_ROUTING per MSI-X enable or unmask event (issue 13).
import { equal, match, ok } from "../assert.ts";
import { REPO, runDenovmm } from "./guest_runner.ts";

Deno.test("virtio console: the shell runs on hvc0, reads piped input, and its status returns", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "console-test-" });
  try {
    const disk = `${dir}/disk.img`;
    await Deno.writeFile(disk, new Uint8Array(4 * 1024 * 1024));
    const r = await runDenovmm({
      args: ["run", "--console", "virtio", "--rng", "--disk", disk, "--debug"],
      input: "tty\necho typed-$((40+2))\nexit 4\n",
      // Typed once the guest is up: without multiport, a virtio console cannot say when the
      // guest opened hvc0, and bytes sent before that may be dropped (see README).
      inputAfter: "denovmm guest ready",
    });
    equal(r.status, 4, r.stdout + r.stderr);
    match(r.stdout, /^\/dev\/hvc0\r?$/m, "the shell's terminal is hvc0");
    match(r.stdout, /^typed-42\r?$/m);
    // One vCPU: it ran on the main thread (src/machine/boot_vcpu.ts), which served the piped
    // input above between its slices; no vCPU Worker was started.
    match(r.stderr, /vcpu0 \(main thread\) enters the guest/);
    ok(!/thread ready/.test(r.stderr), r.stderr);
    const m = /KVM_SET_GSI_ROUTING calls: (\d+) \(MSI-X enable and unmask events: (\d+)\)/.exec(
      r.stderr,
    );
    ok(m, r.stderr);
    const [calls, events] = [Number(m[1]), Number(m[2])];
    console.log(`KVM_SET_GSI_ROUTING calls: ${calls}, MSI-X enable and unmask events: ${events}`);
    ok(calls > 0, "the drivers' vectors were routed");
    ok(calls <= events, `${calls} routing calls for ${events} enable and unmask events`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
