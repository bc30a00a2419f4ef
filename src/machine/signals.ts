/**
 * SIGTERM, SIGINT and SIGHUP end denovmm cleanly, as kvmtool and Firecracker users expect.
 * While a VM runs, the signal goes to it (runMachine stops the vCPUs and flushes every writable
 * disk, then exits); before and after that, the terminal is restored and denovmm exits at once.
 * Either way the exit status is 128 + the signal's number, what a shell shows for a process the
 * signal killed: 129 (SIGHUP), 130 (SIGINT), 143 (SIGTERM).
 *
 * No FFI here: main.ts listens from its start, before the machine's modules are loaded.
 *
 * @module
 */

export type StopSignal = "SIGHUP" | "SIGINT" | "SIGTERM";

const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

export const STOP_SIGNALS = Object.keys(SIGNAL_NUMBERS) as StopSignal[];

/** The exit status for a stop signal: 128 + its number. */
export function signalStatus(signal: StopSignal): number {
  return 128 + SIGNAL_NUMBERS[signal];
}

let route: ((signal: StopSignal) => void) | undefined;

/** Listen for the stop signals for the life of the process; `fallback` runs when no VM does. */
export function listenForStopSignals(fallback: (signal: StopSignal) => void): void {
  for (const s of STOP_SIGNALS) Deno.addSignalListener(s, () => (route ?? fallback)(s));
}

/** Send the stop signals to `handler` until the returned function is called. */
export function routeStopSignals(handler: (signal: StopSignal) => void): () => void {
  route = handler;
  return () => {
    if (route === handler) route = undefined;
  };
}

/** Put the terminal back in cooked mode (it is raw while a VM has it); a no-op otherwise. */
export function restoreTerminal(): void {
  try {
    if (Deno.stdin.isTerminal()) Deno.stdin.setRaw(false);
  } catch {
    // nothing to restore
  }
}

/** One line on stderr, the terminal restored, and the exit with the signal's status. */
export function exitOnSignal(signal: StopSignal, why: string): never {
  restoreTerminal();
  console.error(`denovmm: ${signal}: ${why}`);
  Deno.exit(signalStatus(signal));
}
