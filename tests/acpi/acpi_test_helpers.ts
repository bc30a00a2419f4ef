/**
 * What the ACPI tests (aml_test.ts, tables_test.ts, ../arch/x86_64/acpi/tables_test.ts) share:
 * reading fields out of table bytes, hex for readable byte diffs, RangeError checks, and running
 * ACPICA's iasl with a check that it ran clean.
 * @module
 */
import { deepEqual, equal, match, ok, throws } from "../assert.ts";

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function text(bytes: Uint8Array, at: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + length));
}

export function sum(bytes: Uint8Array): number {
  return bytes.reduce((s, b) => s + b, 0) & 0xff;
}

/** Hex with a space between bytes: a mismatch shows up as a readable string diff. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

export function rangeError(fn: () => unknown, message?: RegExp): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof RangeError, `expected a RangeError, got ${e}`);
    if (message) match(e.message, message);
    return true;
  });
}

export async function iasl(cwd: string, ...args: string[]): Promise<{ code: number; log: string }> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("iasl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error("iasl not found: run `bash scripts/setup.sh` (it installs acpica-tools)", {
      cause: e,
    });
  }
  const decoder = new TextDecoder();
  return { code: out.code, log: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** Exit 0, and no line about an error or a warning bar iasl's summary when it counts none. */
export function assertClean(what: string, r: { code: number; log: string }): void {
  equal(r.code, 0, `${what} exited ${r.code}:\n${r.log}`);
  const complaints = r.log.split("\n").filter((l) =>
    /error|warning/i.test(l) && !/\b0 Errors, 0 Warnings\b/.test(l)
  );
  deepEqual(complaints, [], `${what} complained:\n${r.log}`);
}
