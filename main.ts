/**
 * denovmm's entry: parse the command line, run the VM, and turn every failure into one line
 * on stderr with exit status 2 (usage) or 1 (runtime). The terminal is restored on every path.
 * SIGTERM, SIGINT and SIGHUP exit with 128 + the signal's number (src/machine/signals.ts).
 */
import { parseCommandLine, USAGE, UsageError, VERSION } from "./src/cli/cli.ts";
import { findDefaultGuest } from "./src/cli/default_guest.ts";
import { exitOnSignal, listenForStopSignals } from "./src/machine/signals.ts";

/** Whether a VM ran (see the exit below). */
let vmRan = false;

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
  vmRan = true;
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
  // After a VM ran, not from inside this module's evaluation (this top-level await): Deno writes
  // a module's V8 code cache once its evaluation has ended, and an exit before that writes none.
  // Exiting from a task of its own lets the first VM cache the bytecode of everything it
  // compiled, the machine's set-up included, for the runs after it (seconds of lazy compiling
  // under an emulated CPU otherwise). Anything else (help, a bad command line) exits at once
  // and caches nothing, so the cache, written once, is a VM's.
  if (vmRan) setTimeout(() => Deno.exit(status), 0);
  else Deno.exit(status);
}
