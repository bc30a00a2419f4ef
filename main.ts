/**
 * denovmm's entry: parse the command line, run the VM, and turn every failure into one line
 * on stderr with exit status 2 (usage) or 1 (runtime). The terminal is restored on every path.
 */
import { parseCommandLine, USAGE, UsageError, VERSION } from "./src/cli/cli.ts";
import { findDefaultGuest } from "./src/cli/default_guest.ts";

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

function exitOnSignal(signal: Deno.Signal, status: number): void {
  Deno.addSignalListener(signal, () => {
    try {
      if (Deno.stdin.isTerminal()) Deno.stdin.setRaw(false);
    } catch {
      // nothing to restore
    }
    Deno.exit(status);
  });
}

if (import.meta.main) {
  exitOnSignal("SIGINT", 130);
  exitOnSignal("SIGTERM", 143);
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
