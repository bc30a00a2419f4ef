import { deepEqual, equal, ok } from "../assert.ts";
import { type ConsoleInput, type StdinLike, StdinPump } from "../../src/console/stdin_pump.ts";
import { CTRL_A } from "../../src/console/escape.ts";

const CTRL_D = 0x04;
const bytes = (text: string) => [...new TextEncoder().encode(text)];

/** A stdin that hands out `chunks` one read at a time (split to the reader's buffer), then EOF. */
class FakeStdin implements StdinLike {
  rawCalls: boolean[] = [];
  #chunks: Uint8Array[];
  constructor(chunks: number[][], readonly tty = false, readonly failRead = false) {
    this.#chunks = chunks.map((c) => new Uint8Array(c));
  }
  read(p: Uint8Array): Promise<number | null> {
    try {
      return Promise.resolve(this.readSync(p));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  readSync(p: Uint8Array): number | null {
    if (this.failRead) throw new Deno.errors.BadResource("stdin closed");
    const chunk = this.#chunks.shift();
    if (chunk === undefined) return null;
    const n = Math.min(chunk.length, p.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#chunks.unshift(chunk.subarray(n));
    return n;
  }
  isTerminal(): boolean {
    return this.tty;
  }
  setRaw(mode: boolean): void {
    this.rawCalls.push(mode);
  }
}

/** A console input that records what it took, at most `perPush` bytes per call. */
class FakeInput implements ConsoleInput {
  received: number[] = [];
  pushes = 0;
  constructor(readonly perPush = Infinity) {}
  push(b: Uint8Array): number {
    this.pushes++;
    // Refuse every other call outright, like a full ring the guest has not drained yet.
    if (this.perPush !== Infinity && this.pushes % 2 === 0) return 0;
    const n = Math.min(b.length, this.perPush);
    this.received.push(...b.subarray(0, n));
    return n;
  }
}

async function pump(chunks: number[][], input = new FakeInput()) {
  const stdin = new FakeStdin(chunks);
  let quits = 0;
  await new StdinPump(input, () => quits++, stdin).run();
  return { received: input.received, quits, rawCalls: stdin.rawCalls };
}

Deno.test("stdin pump: piped data reaches the console in order, then EOF is one Ctrl-D", async () => {
  const { received, quits, rawCalls } = await pump([bytes("echo a\n"), bytes("echo b\n")]);
  deepEqual(received, [...bytes("echo a\necho b\n"), CTRL_D]);
  equal(quits, 0);
  deepEqual(rawCalls, [], "a pipe is never put in raw mode");
});

Deno.test("stdin pump: EOF after a partial line sends two Ctrl-Ds", async () => {
  const { received } = await pump([bytes("echo a\nexit")]);
  deepEqual(received, [...bytes("echo a\nexit"), CTRL_D, CTRL_D]);
});

Deno.test("stdin pump: an empty pipe sends just one Ctrl-D", async () => {
  deepEqual((await pump([])).received, [CTRL_D]);
});

Deno.test("stdin pump: a pipe is not filtered for the Ctrl-A escape", async () => {
  const { received, quits } = await pump([[0x41, CTRL_A, 0x78, 0x0a]]);
  deepEqual(received, [0x41, CTRL_A, 0x78, 0x0a, CTRL_D]);
  equal(quits, 0);
});

Deno.test("stdin pump: data larger than one read arrives whole and in order", async () => {
  const big = Array.from({ length: 10_000 }, (_, i) => (i * 7) & 0xff);
  big[big.length - 1] = 0x0a;
  deepEqual((await pump([big])).received, [...big, CTRL_D]);
});

Deno.test("stdin pump: a console that takes a few bytes at a time still gets everything", async () => {
  const text = bytes("a line longer than the console takes at once\nand a partial");
  const input = new FakeInput(3);
  const { received } = await pump([text], input);
  deepEqual(received, [...text, CTRL_D, CTRL_D]);
  ok(input.pushes > text.length / 3, "the pump retried after short pushes");
});

Deno.test("stdin pump: a failing read counts as EOF", async () => {
  const input = new FakeInput();
  await new StdinPump(input, () => {}, new FakeStdin([], false, true)).run();
  deepEqual(input.received, [CTRL_D]);
});

Deno.test("stdin pump: a TTY goes raw, and restore() leaves raw mode exactly once", async () => {
  const stdin = new FakeStdin([bytes("ls\r")], true);
  const input = new FakeInput();
  const p = new StdinPump(input, () => {}, stdin);
  equal(p.isTty, true);
  await p.run();
  deepEqual(stdin.rawCalls, [true]);
  p.restore();
  p.restore();
  deepEqual(stdin.rawCalls, [true, false]);
  deepEqual(input.received, bytes("ls\r"), "a TTY's EOF is not turned into Ctrl-D");
});

Deno.test("stdin pump: restore() before run() touches no terminal mode", () => {
  const stdin = new FakeStdin([], true);
  new StdinPump(new FakeInput(), () => {}, stdin).restore();
  deepEqual(stdin.rawCalls, []);
});

Deno.test("stdin pump: after restore() a pipe's EOF sends no Ctrl-D", async () => {
  const input = new FakeInput();
  const p = new StdinPump(input, () => {}, new FakeStdin([bytes("x\n")]));
  p.restore();
  await p.run();
  deepEqual(input.received, []);
});

Deno.test("stdin pump: Ctrl-A x on a TTY calls onQuit, after the bytes before it", async () => {
  const stdin = new FakeStdin([bytes("ab"), [0x63, CTRL_A], [0x78, ...bytes("never")]], true);
  const input = new FakeInput();
  let quits = 0;
  await new StdinPump(input, () => quits++, stdin).run();
  equal(quits, 1);
  deepEqual(input.received, bytes("abc"));
});

Deno.test("stdin pump: Ctrl-A Ctrl-A on a TTY sends one Ctrl-A to the guest", async () => {
  const stdin = new FakeStdin([[0x41, CTRL_A, CTRL_A, 0x42]], true);
  const input = new FakeInput();
  await new StdinPump(input, () => {}, stdin).run();
  deepEqual(input.received, [0x41, CTRL_A, 0x42]);
});

Deno.test("stdin pump: after EOF, Ctrl-D repeats only while the guest has read everything", async () => {
  let queued = 0;
  const received: number[] = [];
  const input: ConsoleInput = {
    push(b) {
      received.push(...b);
      queued += b.length;
      return b.length;
    },
    pending: () => queued,
  };
  const p = new StdinPump(input, () => {}, new FakeStdin([bytes("ls\n")]), 10);
  await p.run();
  deepEqual(received, [...bytes("ls\n"), CTRL_D]);
  await new Promise((r) => setTimeout(r, 50));
  equal(received.length, 4, "nothing repeats while the guest has not read its input");
  queued = 0; // the guest drains the ring
  await new Promise((r) => setTimeout(r, 35));
  p.restore();
  ok(received.length >= 5, "Ctrl-D sent again once the queue is empty");
  ok(received.slice(3).every((b) => b === CTRL_D));
  const after = received.length;
  await new Promise((r) => setTimeout(r, 30));
  equal(received.length, after, "restore() stops the repeats");
});

Deno.test("stdin pump: tick() pushes the rest of a refused push at once and asks for a turn", async () => {
  let room = 0;
  const received: number[] = [];
  const input: ConsoleInput = {
    push(b) {
      const n = Math.min(b.length, room);
      room -= n;
      received.push(...b.subarray(0, n));
      return n;
    },
  };
  const p = new StdinPump(input, () => {}, new FakeStdin([bytes("hello\n")]));
  const done = p.run();
  await new Promise((r) => setTimeout(r, 20));
  equal(received.length, 0, "the guest's input has no room");
  equal(p.tick(), false, "nothing went in: no turn needed");
  room = 100;
  // No await between the room and the tick: the pump's own timers cannot have run.
  equal(p.tick(), true, "the push is complete: the next read needs a turn");
  deepEqual(received, bytes("hello\n"));
  equal(p.tick(), false, "nothing left to push");
  await done;
  deepEqual(received, [...bytes("hello\n"), CTRL_D]);
});

Deno.test("stdin pump: tick() repeats the EOF when due, without the pump's timer", async () => {
  let queued = 0;
  const received: number[] = [];
  const input: ConsoleInput = {
    push(b) {
      received.push(...b);
      queued += b.length;
      return b.length;
    },
    pending: () => queued,
  };
  // A repeat period no timer reaches within the test: only tick() can send it.
  const p = new StdinPump(input, () => {}, new FakeStdin([]), 60_000);
  await p.run();
  deepEqual(received, [CTRL_D]);
  queued = 0;
  const now = performance.now();
  equal(p.tick(now + 1000), false);
  equal(received.length, 1, "not due yet");
  equal(p.tick(now + 60_000), false, "a repeat needs no turn");
  deepEqual(received, [CTRL_D, CTRL_D]);
  queued = 0;
  p.tick(now + 61_000);
  equal(received.length, 2, "the next one is a period later");
  p.tick(now + 120_001);
  equal(received.length, 3);
  p.restore();
  p.tick(now + 200_000);
  equal(received.length, 3, "restore() stops tick()'s repeats too");
});

Deno.test("stdin pump: between ticks, stdin is read only once tick() saw it readable, and that tick asks for a turn", async () => {
  const input = new FakeInput();
  const stdin = new FakeStdin([bytes("echo a\n"), bytes("echo b\n")]);
  let readable = false;
  let reads = 0;
  const p = new StdinPump(input, () => {}, stdin);
  p.readBetweenTicks(() => {
    reads++;
    return readable;
  });
  const done = p.run();
  const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
  await turn();
  deepEqual(input.received, [], "no read before stdin is readable");
  equal(p.tick(), false, "nothing readable: no turn");
  readable = true;
  equal(p.tick(), true, "readable: the tick asks for a turn");
  equal(p.tick(), false, "asked once");
  await turn();
  await done;
  // What is there is read without waiting for further ticks, EOF included.
  deepEqual(input.received, [...bytes("echo a\necho b\n"), CTRL_D]);
  ok(reads >= 3, `readable() asked ${reads} times`);
});

Deno.test("stdin pump: restore() ends a pump that waits for a tick to see stdin readable", async () => {
  const input = new FakeInput();
  const p = new StdinPump(input, () => {}, new FakeStdin([bytes("never\n")]));
  p.readBetweenTicks(() => false);
  const done = p.run();
  await new Promise((resolve) => setTimeout(resolve, 0));
  p.restore();
  await done;
  deepEqual(input.received, [], "nothing read, and no EOF sent after restore");
});

Deno.test("stdin pump: between ticks, a read that would wait is tried again at the next tick, not taken for EOF", async () => {
  const input = new FakeInput();
  const stdin = new FakeStdin([bytes("late\n")]);
  let refusals = 1;
  const readSync = stdin.readSync.bind(stdin);
  stdin.readSync = (p) => {
    if (refusals-- > 0) throw new Deno.errors.WouldBlock("no data after all");
    return readSync(p);
  };
  const p = new StdinPump(input, () => {}, stdin);
  p.readBetweenTicks(() => true);
  const done = p.run();
  const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
  await turn();
  deepEqual(input.received, [], "the refused read ends nothing");
  equal(p.tick(), true, "the next tick asks for a turn");
  await turn();
  await done;
  deepEqual(input.received, [...bytes("late\n"), CTRL_D]);
});
