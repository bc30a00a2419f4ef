// Bad input on the arm64 machine, as on x86 (tests/kvm/bad_input_test.ts): one line on stderr,
// exit status 1, no stack trace, before the guest runs.
import { failsWithOneLine, GUEST_DIR, REPO } from "../kvm/guest_runner.ts";

const MiB = 1024 * 1024;

Deno.test("arm64 bad input: a PC kernel, a compressed Image, an initrd too large for -m", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache` });
  try {
    // A bzImage is not an arm64 Image: the header says so before /dev/kvm is opened.
    const bz = new Uint8Array(4096);
    bz.set([0x48, 0x64, 0x72, 0x53], 0x202); // "HdrS"
    await Deno.writeFile(`${dir}/bzImage`, bz);
    await failsWithOneLine(["run", "-k", `${dir}/bzImage`], /not an arm64 Image|ARM\\x64/);
    // A gzip'd Image (what Debian ships as vmlinuz): the user is told to decompress it.
    const image = await Deno.readFile(`${GUEST_DIR}/Image`);
    const gz = new Response(
      new Blob([image.subarray(0, 1 * MiB)]).stream().pipeThrough(new CompressionStream("gzip")),
    );
    await Deno.writeFile(`${dir}/vmlinuz`, new Uint8Array(await gz.arrayBuffer()));
    await failsWithOneLine(["run", "-k", `${dir}/vmlinuz`], /decompress it first/);
    // An initrd that cannot fit beside the kernel: checked once the VM's RAM exists.
    const file = await Deno.open(`${dir}/zeros`, { write: true, create: true });
    await file.truncate(100 * MiB);
    file.close();
    await failsWithOneLine(["run", "-m", "96M", "-i", `${dir}/zeros`], /initrd.*-m/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
