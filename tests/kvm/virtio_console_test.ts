// --console virtio: the terminal is the guest's hvc0 (virtio-console), input and output both
// through virtqueues, and the shell's exit status still comes back.
import { equal, match } from "../assert.ts";
import { runDenovmm } from "./guest_runner.ts";

Deno.test("virtio console: the shell runs on hvc0, reads piped input, and its status returns", async () => {
  const r = await runDenovmm({
    args: ["run", "--console", "virtio"],
    input: "tty\necho typed-$((40+2))\nexit 4\n",
    // Typed once the guest is up: without multiport, a virtio console cannot say when the
    // guest opened hvc0, and bytes sent before that may be dropped (see README).
    inputAfter: "denovmm guest ready",
  });
  equal(r.status, 4, r.stdout + r.stderr);
  match(r.stdout, /^\/dev\/hvc0\r?$/m, "the shell's terminal is hvc0");
  match(r.stdout, /^typed-42\r?$/m);
});
