import { equal } from "../../../assert.ts";
import { I8042 } from "../../../../src/arch/x86_64/devices/i8042.ts";

const DATA = 0, STATUS_COMMAND = 4;

function controller() {
  let resets = 0;
  const dev = new I8042(() => resets++);
  const rd = (offset: number) => {
    const d = new Uint8Array(1);
    dev.read(offset, d);
    return d[0];
  };
  const wr = (offset: number, value: number) => dev.write(offset, Uint8Array.of(value));
  return { rd, wr, resets: () => resets };
}

Deno.test("i8042: status reads no data and an empty input buffer when idle", () => {
  const { rd } = controller();
  equal(rd(STATUS_COMMAND) & 0x03, 0);
});

Deno.test("i8042: self-test 0xAA queues 0x55, reading it clears OBF", () => {
  const { rd, wr } = controller();
  wr(STATUS_COMMAND, 0xaa);
  equal(rd(STATUS_COMMAND) & 0x03, 0x01, "OBF set, IBF clear");
  equal(rd(DATA), 0x55);
  equal(rd(STATUS_COMMAND) & 0x01, 0);
});

Deno.test("i8042: interface tests 0xAB and 0xA9 reply 0x00", () => {
  const { rd, wr } = controller();
  for (const cmd of [0xab, 0xa9]) {
    wr(STATUS_COMMAND, cmd);
    equal(rd(STATUS_COMMAND) & 0x01, 0x01);
    equal(rd(DATA), 0x00);
  }
});

Deno.test("i8042: port enable/disable commands queue no reply", () => {
  const { rd, wr } = controller();
  for (const cmd of [0xa7, 0xa8, 0xad, 0xae]) wr(STATUS_COMMAND, cmd);
  equal(rd(STATUS_COMMAND) & 0x01, 0);
});

Deno.test("i8042: 0x60 then a data write sets the command byte that 0x20 reads back", () => {
  const { rd, wr } = controller();
  wr(STATUS_COMMAND, 0x60);
  wr(DATA, 0x34);
  wr(STATUS_COMMAND, 0x20);
  equal(rd(STATUS_COMMAND) & 0x01, 0x01);
  equal(rd(DATA), 0x34);
});

Deno.test("i8042: 0xFE pulses reset", () => {
  const { wr, resets } = controller();
  wr(STATUS_COMMAND, 0xfe);
  equal(resets(), 1);
  wr(STATUS_COMMAND, 0xff); // pulses no line
  equal(resets(), 1);
});

Deno.test("i8042: output port written through 0xD1 resets only when bit 0 is clear", () => {
  const { wr, resets } = controller();
  wr(STATUS_COMMAND, 0xd1);
  wr(DATA, 0xdf);
  equal(resets(), 0);
  wr(STATUS_COMMAND, 0xd1);
  wr(DATA, 0xfe);
  equal(resets(), 1);
  wr(DATA, 0xfe); // a plain keyboard byte now
  equal(resets(), 1);
});

Deno.test("i8042: offsets 1-3 read 0xff and ignore writes", () => {
  const { rd, wr, resets } = controller();
  for (const offset of [1, 2, 3]) {
    wr(offset, 0xfe);
    equal(rd(offset), 0xff);
  }
  equal(resets(), 0);
});
