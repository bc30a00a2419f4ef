/**
 * The one place that chooses the architecture the machine is built for: everything else in
 * src/machine/ asks these objects (src/arch/platform.ts) for what only that kind of computer
 * has, and imports nothing else of src/arch/. `wiring` is what every thread needs; `platform`
 * adds the boot side, for the main thread only (./arch_boot.ts), so a Worker does not load the
 * boot protocol's modules.
 *
 * @module
 */
import type { PlatformWiring } from "../arch/platform.ts";
import { arm64Wiring } from "../arch/arm64/wiring.ts";
import { x86_64Wiring } from "../arch/x86_64/wiring.ts";

/** The host's architecture is the guest's: KVM runs guests of its own kind. */
export const wiring: PlatformWiring = Deno.build.arch === "aarch64" ? arm64Wiring : x86_64Wiring;
