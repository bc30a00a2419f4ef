/**
 * The main thread's side of the architecture chosen in ./arch.ts: the same platform, with the
 * VM's creation, the boot protocol and the vCPU model (src/arch/platform.ts `Platform`).
 *
 * @module
 */
import { x86_64 } from "../arch/x86_64/platform.ts";

export const platform = x86_64;
