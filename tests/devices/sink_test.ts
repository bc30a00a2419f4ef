import { deepEqual, doesNotThrow } from "../assert.ts";
import { PortSink } from "../../src/devices/sink.ts";

Deno.test("sink: writes are accepted and every read is zero", () => {
  const dev = new PortSink();
  doesNotThrow(() => dev.write(0, Uint8Array.of(0x80)));
  for (const width of [1, 2, 4]) {
    const data = new Uint8Array(width).fill(0xff);
    dev.read(0, data);
    deepEqual([...data], new Array(width).fill(0));
  }
});
