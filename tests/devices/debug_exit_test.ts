import { deepEqual, equal } from "../assert.ts";
import { DEBUG_EXIT_PORT, DebugExit } from "../../src/devices/debug_exit.ts";

Deno.test("debug_exit: the port is 0x501", () => {
  equal(DEBUG_EXIT_PORT, 0x501);
});

Deno.test("debug_exit: writes of width 1, 2 and 4 exit with the value's low byte", () => {
  const statuses: number[] = [];
  const dev = new DebugExit((s) => statuses.push(s));
  dev.write(0, Uint8Array.of(0x2a));
  dev.write(0, Uint8Array.of(0x07, 0x01)); // 0x0107
  dev.write(0, Uint8Array.of(0xff, 0x12, 0x34, 0x56)); // 0x563412ff
  dev.write(1, Uint8Array.of(0x03));
  deepEqual(statuses, [0x2a, 0x07, 0xff, 0x03]);
});

Deno.test("debug_exit: reads return zero and do not exit", () => {
  let exits = 0;
  const dev = new DebugExit(() => exits++);
  const data = new Uint8Array(4).fill(0xaa);
  dev.read(0, data);
  deepEqual([...data], [0, 0, 0, 0]);
  equal(exits, 0);
});
