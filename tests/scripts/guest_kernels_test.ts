import { equal, match, ok } from "../assert.ts";

const cache = new URL("../../.cache/kernels", import.meta.url).pathname;

// What scripts/setup.sh (build_guest.ts guest) leaves for the KVM tests: Debian's three
// x86-64 kernels, each a bzImage with the release it was taken from. Fails until setup ran.
for (const flavour of ["amd64", "cloud-amd64", "rt-amd64"]) {
  Deno.test(`guest kernels: .cache/kernels/${flavour} holds a bzImage and its release`, async () => {
    const dir = `${cache}/${flavour}`;
    const hint = `${dir}: run scripts/setup.sh`;
    const vmlinuz = await Deno.readFile(`${dir}/vmlinuz`).catch((e) => {
      throw new Error(hint, { cause: e });
    });
    ok(vmlinuz.length > 1 << 20, `${dir}/vmlinuz is ${vmlinuz.length} bytes`);
    // The boot protocol's setup header signature at 0x202.
    equal(new TextDecoder().decode(vmlinuz.subarray(0x202, 0x206)), "HdrS", `${dir}/vmlinuz`);
    const release = await Deno.readTextFile(`${dir}/release`).catch((e) => {
      throw new Error(hint, { cause: e });
    });
    // 6.1.0-57-amd64 on Debian 12, 6.12.57+deb13-amd64 on 13: the ABI, then the flavour.
    match(release, new RegExp(`^\\d+\\.\\d+[^-\\s]*(-\\d+)?-${flavour}\\n$`));
    // kernel_version (0x20e) points, from 0x200, at "RELEASE (builder) #1 ...": the same kernel.
    const at = 0x200 + (vmlinuz[0x20e] | vmlinuz[0x20f] << 8);
    const version = new TextDecoder().decode(vmlinuz.subarray(at, at + 100));
    equal(version.split(" ")[0], release.trim(), `${dir}/vmlinuz's kernel_version`);
  });
}
