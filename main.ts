/**
 * denovmm's entry: parse the command line, run the VM, and turn every failure into one line
 * on stderr with exit status 2 (usage) or 1 (runtime). The terminal is restored on every path.
 * SIGTERM, SIGINT and SIGHUP exit with 128 + the signal's number (src/machine/signals.ts).
 */
import { parseCommandLine, USAGE, UsageError, VERSION } from "./src/cli/cli.ts";
import { findDefaultGuest } from "./src/cli/default_guest.ts";
import { exitOnSignal, listenForStopSignals } from "./src/machine/signals.ts";

async function main(argv: string[]): Promise<number> {
  const cmd = parseCommandLine(argv, findDefaultGuest);
  if (cmd.kind === "help") {
    console.log(USAGE);
    return 0;
  }
  if (cmd.kind === "version") {
    console.log(`denovmm ${VERSION}`);
    return 0;
  }
  // Loaded only for `run`, so --help and --version start fast.
  const { runMachine } = await import("./src/machine/machine.ts");
  const result = await runMachine(cmd.config);
  if (result.message) console.error(`denovmm: ${result.message}`);
  return result.status;
}

if (import.meta.main) {
  // While a VM runs, runMachine takes these signals over (it stops the VM and flushes its disks).
  listenForStopSignals((s) => exitOnSignal(s, "no guest running: exiting"));
  let status: number;
  try {
    status = await main(Deno.args);
  } catch (e) {
    const debug = Deno.args.includes("--debug");
    console.error(`denovmm: ${debug ? (e as Error).stack : (e as Error).message}`);
    status = e instanceof UsageError ? 2 : 1;
  }
  Deno.exit(status);
}
