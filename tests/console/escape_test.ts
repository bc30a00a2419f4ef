import { deepEqual, equal } from "../assert.ts";
import { CTRL_A, EscapeFilter } from "../../src/console/escape.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
/** The filter's result with the bytes as a plain array, for deepEqual. */
function run(filter: EscapeFilter, input: Uint8Array | number[]) {
  const r = filter.filter(input instanceof Uint8Array ? input : new Uint8Array(input));
  return { bytes: [...r.bytes], action: r.action };
}

Deno.test("escape: bytes without Ctrl-A pass through unchanged", () => {
  const input = new Uint8Array(256).map((_, i) => i === CTRL_A ? 0 : i);
  deepEqual(run(new EscapeFilter(), input), { bytes: [...input], action: undefined });
});

Deno.test("escape: an empty chunk gives nothing", () => {
  deepEqual(run(new EscapeFilter(), []), { bytes: [], action: undefined });
});

Deno.test("escape: Ctrl-A x quits, keeping the bytes before it and dropping those after", () => {
  deepEqual(run(new EscapeFilter(), [...bytes("ls\r"), CTRL_A, 0x78, ...bytes("more")]), {
    bytes: [...bytes("ls\r")],
    action: "quit",
  });
});

Deno.test("escape: Ctrl-A Ctrl-A and Ctrl-A a each send one Ctrl-A", () => {
  deepEqual(run(new EscapeFilter(), [0x41, CTRL_A, CTRL_A, 0x42]), {
    bytes: [0x41, CTRL_A, 0x42],
    action: undefined,
  });
  deepEqual(run(new EscapeFilter(), [CTRL_A, 0x61, CTRL_A, 0x61]), {
    bytes: [CTRL_A, CTRL_A],
    action: undefined,
  });
});

Deno.test("escape: a Ctrl-A sent as data does not start another escape", () => {
  // Ctrl-A Ctrl-A then x: the x is a plain x, not a quit.
  deepEqual(run(new EscapeFilter(), [CTRL_A, CTRL_A, 0x78]), {
    bytes: [CTRL_A, 0x78],
    action: undefined,
  });
});

Deno.test("escape: Ctrl-A h asks for help with the bytes before it", () => {
  deepEqual(run(new EscapeFilter(), [0x41, CTRL_A, 0x68]), { bytes: [0x41], action: "help" });
});

Deno.test("escape: Ctrl-A then any other key drops both", () => {
  for (const key of [0x62, 0x58, /* X */ 0x0d, 0x00, 0xff]) {
    deepEqual(run(new EscapeFilter(), [0x31, CTRL_A, key, 0x32]), {
      bytes: [0x31, 0x32],
      action: undefined,
    }, `key 0x${key.toString(16)}`);
  }
});

Deno.test("escape: Ctrl-A at the end of one chunk and x at the start of the next quits", () => {
  const filter = new EscapeFilter();
  deepEqual(run(filter, [0x41, CTRL_A]), { bytes: [0x41], action: undefined });
  deepEqual(run(filter, [0x78, 0x42]), { bytes: [], action: "quit" });
});

Deno.test("escape: a split Ctrl-A Ctrl-A still sends one Ctrl-A, and the filter then resets", () => {
  const filter = new EscapeFilter();
  deepEqual(run(filter, [CTRL_A]), { bytes: [], action: undefined });
  deepEqual(run(filter, [CTRL_A, 0x78]), { bytes: [CTRL_A, 0x78], action: undefined });
});

Deno.test("escape: the filter keeps working after help", () => {
  const filter = new EscapeFilter();
  equal(run(filter, [CTRL_A, 0x68]).action, "help");
  deepEqual(run(filter, [0x41, CTRL_A, 0x78]), { bytes: [0x41], action: "quit" });
});
