// Hostile-guest fuzzing of the ACPI sleep and reset registers: accesses of every width and value
// at all three ports, against a model of when the VM must end (S5 with SLP_EN at the sleep
// control register, RESET_VALUE at the reset register), and never otherwise.
import { deepEqual, ok } from "../assert.ts";
import {
  AcpiPm,
  RESET_OFFSET,
  RESET_VALUE,
  SLEEP_CONTROL_OFFSET,
  SLP_TYP_S5,
} from "../../src/devices/acpi_pm.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const WIDTHS = [1, 1, 1, 2, 4];
const SLP_EN = 0x20;

Deno.test("fuzz acpi_pm: the VM ends exactly when the guest asks for S5 or a reset", () => {
  const stats = new FuzzStats("ACPI sleep/reset registers");
  fuzz(stats, ops(3), (list) => {
    const ends: string[] = [];
    const want: string[] = [];
    const pm = new AcpiPm((why) => ends.push(why));
    let accesses = 0;
    for (const [kind, a, b, c] of list) {
      const offset = a % 3;
      if (kind === 2) {
        const d = new Uint8Array(pick(WIDTHS, b)).fill(0xaa);
        pm.read(offset, d);
        ok(d.every((x) => x === 0), "the registers read 0");
      } else {
        // Kind 1 aims at the values that matter; kind 0 writes anything.
        const value = kind === 1 ? pick([(SLP_TYP_S5 << 2) | SLP_EN, RESET_VALUE, c], b) : c;
        const d = leBytes(pick(WIDTHS, b), value);
        pm.write(offset, d);
        const v = d[0];
        if (offset === SLEEP_CONTROL_OFFSET && (v & SLP_EN) && ((v >> 2) & 7) === SLP_TYP_S5) {
          want.push("ACPI power off");
          stats.count("power-offs");
        } else if (offset === RESET_OFFSET && v === RESET_VALUE) {
          want.push("ACPI reset");
          stats.count("resets");
        }
      }
      accesses++;
      deepEqual(ends, want);
    }
    return accesses;
  });
});
