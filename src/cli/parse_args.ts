// The one place the CLI's option parser comes from: swapping to @std/cli later is one line.
export { parseArgs } from "node:util";
