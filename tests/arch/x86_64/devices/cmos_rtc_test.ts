import { deepEqual, equal } from "../../../assert.ts";
import { CmosRtc } from "../../../../src/arch/x86_64/devices/cmos_rtc.ts";

const INDEX = 0, DATA = 1;

function rtc(now?: () => Date) {
  const dev = new CmosRtc(now);
  const reg = (index: number) => {
    dev.write(INDEX, Uint8Array.of(index));
    const d = new Uint8Array(1);
    dev.read(DATA, d);
    return d[0];
  };
  const set = (index: number, value: number) => {
    dev.write(INDEX, Uint8Array.of(index));
    dev.write(DATA, Uint8Array.of(value));
  };
  return { dev, reg, set };
}

Deno.test("cmos_rtc: a fixed UTC time reads back as BCD 24-hour fields", () => {
  // Friday 2024-12-27 21:58:09 UTC.
  const { reg } = rtc(() => new Date(Date.UTC(2024, 11, 27, 21, 58, 9)));
  deepEqual(
    [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map(reg),
    [0x09, 0x58, 0x21, 0x06, 0x27, 0x12, 0x24, 0x20],
  );
});

Deno.test("cmos_rtc: status registers say BCD, 24-hour, no update in progress, valid", () => {
  const { reg } = rtc();
  equal(reg(0x0a), 0x26);
  equal(reg(0x0a) & 0x80, 0, "UIP clear");
  equal(reg(0x0b), 0x02);
  equal(reg(0x0c), 0x00);
  equal(reg(0x0d), 0x80);
});

Deno.test("cmos_rtc: the guest cannot set the clock or status registers", () => {
  const { reg, set } = rtc(() => new Date(Date.UTC(2001, 0, 1, 0, 0, 0)));
  set(0x00, 0x45);
  set(0x0b, 0x06); // binary mode would change how every field must be encoded
  equal(reg(0x00), 0x00);
  equal(reg(0x0b), 0x02);
});

Deno.test("cmos_rtc: RAM bytes hold what the guest writes", () => {
  const { reg, set } = rtc();
  set(0x0f, 0x0a); // shutdown status byte
  set(0x40, 0x5a);
  set(0x7f, 0xa5);
  set(0x01, 0x30); // seconds alarm is plain storage
  deepEqual([reg(0x0f), reg(0x40), reg(0x7f), reg(0x01)], [0x0a, 0x5a, 0xa5, 0x30]);
});

Deno.test("cmos_rtc: bit 7 of the index (NMI mask) does not select a register", () => {
  const { dev, reg, set } = rtc(() => new Date(Date.UTC(2030, 5, 15, 8, 7, 6)));
  set(0x40, 0x77);
  dev.write(INDEX, Uint8Array.of(0x80 | 0x40));
  const d = new Uint8Array(1);
  dev.read(DATA, d);
  equal(d[0], 0x77);
  equal(reg(0x80 | 0x04), 0x08, "0x84 reads hours");
});
