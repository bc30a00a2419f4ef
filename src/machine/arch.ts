/**
 * The one place that chooses the architecture the machine is built for: everything else in
 * src/machine/ asks this platform object (src/arch/platform.ts) for what only that kind of
 * computer has, and imports nothing else of src/arch/.
 *
 * @module
 */
import { x86_64 } from "../arch/x86_64/platform.ts";

export const platform = x86_64;
