import { equal, ok } from "../assert.ts";
import { handleRngRequest, RNG_MAX_BYTES_PER_REQUEST } from "../../src/virtio/rng.ts";
import { FakeDriver, MiB, ram } from "./fake_driver.ts";

function nonZero(bytes: Uint8Array): number {
  return bytes.reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);
}

Deno.test("rng: fills every writable buffer and returns the bytes written", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  d.publish(d.addChain([{ len: 64, write: true }, { len: 100_000, write: true }]));
  const chain = q.pop()!;
  equal(handleRngRequest(d.mem, chain), 100_064);
  const a = d.mem.read(chain.writable[0].gpa, 64);
  const b = d.mem.read(chain.writable[1].gpa, 100_000);
  ok(nonZero(a) > 32, "first buffer looks unfilled");
  // Past the 64 KiB getRandomValues limit, the tail is filled too.
  ok(nonZero(b.subarray(90_000)) > 9_000, "tail of the large buffer looks unfilled");
});

Deno.test("rng: a readable-only chain gets 0 bytes", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  d.publish(d.addChain([{ len: 64 }]));
  equal(handleRngRequest(d.mem, q.pop()!), 0);
});

Deno.test("rng: a request is capped, leaving the rest of a huge buffer alone", () => {
  const d = new FakeDriver(ram(), 8);
  const q = d.queue();
  d.publish(d.addChain([{ len: 4 * MiB, write: true }]));
  const chain = q.pop()!;
  equal(handleRngRequest(d.mem, chain), RNG_MAX_BYTES_PER_REQUEST);
  const gpa = chain.writable[0].gpa;
  equal(nonZero(d.mem.slice(gpa + RNG_MAX_BYTES_PER_REQUEST, 3 * MiB)), 0);
});
