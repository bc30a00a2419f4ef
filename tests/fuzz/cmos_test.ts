// Hostile-guest fuzzing of the CMOS RTC: index writes with the NMI bit, data reads and writes
// at every index and width, against a model of its 128 bytes and BCD clock.
import { equal, ok } from "../assert.ts";
import { CmosRtc } from "../../src/arch/x86_64/devices/cmos_rtc.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const WIDTHS = [1, 1, 1, 2, 4];
const CLOCK = new Set([0, 2, 4, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x32]);
const isBcd = (v: number) => (v & 0xf) <= 9 && v >> 4 <= 9;

Deno.test("fuzz cmos: no access escapes, RAM bytes read back, the clock reads BCD", () => {
  const stats = new FuzzStats("CMOS RTC");
  fuzz(stats, ops(4), (list) => {
    const clock = new Date(Date.UTC(2026, 11, 31, 23, 59, 59));
    const rtc = new CmosRtc(() => clock);
    const ram = new Uint8Array(128);
    let index = 0;
    let accesses = 0;
    for (const [kind, a, b, c] of list) {
      if (kind === 0 || kind === 1) {
        const offset = kind === 0 ? a % 3 : a % 2;
        const data = leBytes(pick(WIDTHS, b), c);
        rtc.write(offset, data);
        if (offset === 0) index = data[0] & 0x7f;
        else if (offset === 1 && !CLOCK.has(index)) ram[index] = data[0];
      } else {
        const offset = kind === 2 ? 1 : a % 3;
        const d = new Uint8Array(pick(WIDTHS, b));
        rtc.read(offset, d);
        if (offset === 0) equal(d[0], index);
        else if (offset === 1 && !CLOCK.has(index)) equal(d[0], ram[index], `RAM ${index}`);
        else if (offset === 1 && index <= 9) ok(isBcd(d[0]), `clock ${index} BCD`);
        for (let i = 1; i < d.length; i++) equal(d[i], 0xff, "bytes past the port");
      }
      accesses++;
    }
    return accesses;
  });
});
