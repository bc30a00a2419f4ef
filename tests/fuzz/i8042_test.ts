// Hostile-guest fuzzing of the i8042: every command byte, data bytes in every pending state,
// accesses of every width at all five ports, against a model of when the VM must reset.
import { equal, ok } from "../assert.ts";
import { I8042 } from "../../src/arch/x86_64/devices/i8042.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const WIDTHS = [1, 1, 1, 2, 4];
const COMMANDS = [0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xd1, 0xfe, 0xff, 0xf0];

Deno.test("fuzz i8042: no access escapes and the VM resets exactly when the guest pulses reset", () => {
  const stats = new FuzzStats("i8042");
  fuzz(stats, ops(4), (list) => {
    let resets = 0;
    const kbd = new I8042(() => resets++);
    let pending = 0; // 1: command byte, 2: output port
    let want = 0;
    let accesses = 0;
    const write = (offset: number, data: Uint8Array) => {
      kbd.write(offset, data);
      accesses++;
      const v = data[0];
      if (offset === 0) {
        if (pending === 2 && (v & 1) === 0) want++;
        pending = 0;
      } else if (offset === 4) {
        pending = v === 0x60 ? 1 : v === 0xd1 ? 2 : 0;
        if ((v & 0xf0) === 0xf0 && (v & 1) === 0) want++;
      }
    };
    for (const [kind, a, b, c] of list) {
      const offset = a % 6;
      if (kind === 0) write(offset, leBytes(pick(WIDTHS, b), c));
      else if (kind === 1) write(4, Uint8Array.of(pick(COMMANDS, c)));
      else if (kind === 2) write(b % 2 ? 0 : 4, Uint8Array.of(c & 0xff));
      else {
        const d = new Uint8Array(pick(WIDTHS, b));
        kbd.read(offset, d);
        accesses++;
        ok(d.every((x) => x >= 0 && x <= 0xff));
      }
      equal(resets, want, "resets");
    }
    return accesses;
  });
});
