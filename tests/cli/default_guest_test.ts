import { deepEqual } from "../assert.ts";
import { findDefaultGuest } from "../../src/cli/default_guest.ts";

function withGuestDir(files: string[], body: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-guest-" });
  for (const f of files) Deno.writeFileSync(`${dir}/${f}`, new Uint8Array(1));
  const before = Deno.env.get("DENOVMM_GUEST_DIR");
  Deno.env.set("DENOVMM_GUEST_DIR", dir);
  try {
    body(dir);
  } finally {
    if (before === undefined) Deno.env.delete("DENOVMM_GUEST_DIR");
    else Deno.env.set("DENOVMM_GUEST_DIR", before);
  }
}

Deno.test("default guest: the vmlinux when setup extracted one, else the bzImage", () => {
  withGuestDir(["vmlinux", "vmlinuz", "initramfs.cpio.gz"], (dir) => {
    deepEqual(findDefaultGuest(), {
      kernel: `${dir}/vmlinux`,
      initrd: `${dir}/initramfs.cpio.gz`,
    });
  });
  withGuestDir(["vmlinuz", "initramfs.cpio.gz"], (dir) => {
    deepEqual(findDefaultGuest(), {
      kernel: `${dir}/vmlinuz`,
      initrd: `${dir}/initramfs.cpio.gz`,
    });
  });
});
