/**
 * The main thread's side of the architecture chosen in ./arch.ts: the same platform, with the
 * VM's creation, the boot protocol and the vCPU model (src/arch/platform.ts `Platform`).
 *
 * @module
 */
import type { Platform } from "../arch/platform.ts";
import { arm64 } from "../arch/arm64/platform.ts";
import { x86_64 } from "../arch/x86_64/platform.ts";

/** The host's architecture is the guest's, as in ./arch.ts. */
export const platform: Platform = Deno.build.arch === "aarch64" ? arm64 : x86_64;
