/**
 * Where the default guest (built by scripts/setup.sh into .cache/guest) lives: $DENOVMM_GUEST_DIR,
 * else next to the sources (running from a checkout), else next to the compiled binary.
 */
import type { DefaultGuest } from "./cli.ts";
import { UsageError } from "./cli.ts";

export function findDefaultGuest(): DefaultGuest {
  const candidates: string[] = [];
  const env = Deno.env.get("DENOVMM_GUEST_DIR");
  if (env) candidates.push(env);
  const here = new URL("../../.cache/guest", import.meta.url);
  if (here.protocol === "file:") candidates.push(decodeURIComponent(here.pathname));
  const exe = Deno.execPath();
  candidates.push(exe.slice(0, exe.lastIndexOf("/") + 1) + ".cache/guest");
  for (const dir of candidates) {
    // The uncompressed vmlinux (setup extracts it) boots seconds sooner than the bzImage,
    // which spends them decompressing itself in the guest.
    for (const kernel of ["vmlinux", "vmlinuz"]) {
      try {
        Deno.statSync(`${dir}/${kernel}`);
        return { kernel: `${dir}/${kernel}`, initrd: `${dir}/initramfs.cpio.gz` };
      } catch {
        // try the next kernel, then the next place
      }
    }
  }
  throw new UsageError(
    "no kernel given and no default guest found: run scripts/setup.sh, or pass -k/--kernel",
  );
}
