// Input that parses but does not fit the machine: reported as one line, exit status 1, before
// any vCPU runs. The initrd's and command line's fit is checked by loadLinux, once the VM's RAM
// exists, so these open KVM (the kernel's own fit is checked before: placeKernel).
import { failsWithOneLine } from "./guest_runner.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const KERNEL = `${REPO}.cache/guest/vmlinuz`;
const VMLINUX = `${REPO}.cache/guest/vmlinux`;
const MiB = 1024 * 1024;

Deno.test("bad input: an initrd larger than RAM above the kernel exits 1 naming initrd and -m", async () => {
  await Deno.stat(KERNEL); // the default guest (scripts/setup.sh) is required here
  const dir = await Deno.makeTempDir();
  try {
    // Sparse: 100 MiB of zeros without writing them.
    const file = await Deno.open(`${dir}/zeros`, { write: true, create: true });
    await file.truncate(100 * MiB);
    file.close();
    await failsWithOneLine(
      ["run", "-m", "96M", "-i", `${dir}/zeros`],
      /initrd of 100 MiB does not fit.*larger -m/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad input: RAM too small for the kernel exits 1 naming -m, for a bzImage and a vmlinux", async () => {
  await Deno.stat(KERNEL);
  await failsWithOneLine(
    ["run", "-m", "40M", "-k", KERNEL],
    /kernel needs .* MiB of RAM to decompress.*larger -m/,
  );
  await Deno.stat(VMLINUX);
  await failsWithOneLine(
    ["run", "-m", "40M", "-k", VMLINUX],
    // 74 MiB for Debian 12's Linux 6.1, 66 MiB for Debian 13's 6.12.
    /kernel needs [4-9]\d(\.\d)? MiB of RAM \(its segments end there\).*larger -m/,
  );
});
