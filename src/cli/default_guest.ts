/**
 * Where the default guest (built by scripts/setup.sh into .cache/guest) lives: $DENOVMM_GUEST_DIR,
 * else next to the sources (running from a checkout), else next to the compiled binary.
 */
import type { DefaultGuest } from "./cli.ts";
import { UsageError } from "./cli.ts";

/**
 * Where setup puts each architecture's default guest, under .cache/, and its kernels in order
 * of preference. On a PC the uncompressed vmlinux (setup extracts it) boots seconds sooner than
 * the bzImage, which spends them decompressing itself in the guest; arm64 kernels do not
 * decompress themselves, so setup writes the raw Image.
 */
const GUESTS: Record<string, { dir: string; kernels: string[] }> = {
  x86_64: { dir: "guest", kernels: ["vmlinux", "vmlinuz"] },
  aarch64: { dir: "arm64/guest", kernels: ["Image"] },
};

export function findDefaultGuest(arch: string = Deno.build.arch): DefaultGuest {
  const guest = GUESTS[arch] ?? GUESTS.x86_64;
  const candidates: string[] = [];
  const env = Deno.env.get("DENOVMM_GUEST_DIR");
  if (env) candidates.push(env);
  const here = new URL(`../../.cache/${guest.dir}`, import.meta.url);
  if (here.protocol === "file:") candidates.push(decodeURIComponent(here.pathname));
  const exe = Deno.execPath();
  candidates.push(exe.slice(0, exe.lastIndexOf("/") + 1) + `.cache/${guest.dir}`);
  for (const dir of candidates) {
    for (const kernel of guest.kernels) {
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
