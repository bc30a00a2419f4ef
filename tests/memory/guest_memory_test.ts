import { deepEqual, equal, ok, throws } from "../assert.ts";
import { GuestMemory, GuestMemoryError } from "../../src/memory/guest_memory.ts";
import { memoryLayout } from "../../src/arch/x86_64/memory_map.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function memory(ramBytes: number): GuestMemory {
  const layout = memoryLayout(ramBytes);
  return new GuestMemory(new ArrayBuffer(ramBytes), layout);
}

Deno.test("guest memory: little-endian accessors read back what they wrote", () => {
  const mem = memory(32 * MiB);
  mem.writeU8(0x10, 0xab);
  mem.writeU16(0x20, 0xbeef);
  mem.writeU32(0x30, 0xdead_beef);
  mem.writeU64(0x40, 0x0123_4567_89ab_cdefn);
  equal(mem.readU8(0x10), 0xab);
  equal(mem.readU16(0x20), 0xbeef);
  equal(mem.readU32(0x30), 0xdead_beef);
  equal(mem.readU64(0x40), 0x0123_4567_89ab_cdefn);
  deepEqual([...mem.read(0x30, 4)], [0xef, 0xbe, 0xad, 0xde]);
});

Deno.test("guest memory: slice is a zero-copy view, read is a copy", () => {
  const mem = memory(32 * MiB);
  const view = mem.slice(0x1000, 4);
  view[0] = 7;
  equal(mem.readU8(0x1000), 7);
  const copy = mem.read(0x1000, 4);
  mem.writeU8(0x1000, 9);
  equal(copy[0], 7);
  mem.write(0x2000, new Uint8Array([1, 2, 3]));
  deepEqual([...mem.slice(0x2000, 3)], [1, 2, 3]);
});

Deno.test("guest memory: the last byte of RAM is reachable, one past it is not", () => {
  const mem = memory(32 * MiB);
  mem.writeU8(32 * MiB - 1, 1);
  mem.writeU32(32 * MiB - 4, 1);
  throws(() => mem.readU8(32 * MiB), GuestMemoryError);
  throws(() => mem.readU32(32 * MiB - 2), /4 bytes at 0x1fffffe is outside guest RAM/);
  throws(() => mem.slice(32 * MiB - 8, 9), GuestMemoryError);
});

Deno.test("guest memory: accesses crossing low RAM's end or inside the hole are refused", () => {
  const mem = memory(3500 * MiB);
  mem.writeU32(3 * GiB - 4, 0x1234_5678);
  equal(mem.readU32(3 * GiB - 4), 0x1234_5678);
  throws(() => mem.readU32(3 * GiB - 2), /at 0xbffffffe is outside guest RAM/);
  throws(() => mem.readU8(3 * GiB), /0xc0000000/);
  throws(() => mem.writeU32(0xfec0_0000, 0), GuestMemoryError); // the IOAPIC, in the hole
  throws(() => mem.readU8(4 * GiB - 1), GuestMemoryError);
});

Deno.test("guest memory: a slice spanning the hole is refused though the host bytes are adjacent", () => {
  const mem = memory(3500 * MiB);
  throws(() => mem.slice(3 * GiB - 4096, 8192), GuestMemoryError);
  throws(() => mem.slice(3 * GiB - 4096, GiB + 8192), GuestMemoryError);
});

Deno.test("guest memory: high RAM maps to host offset 3 GiB and ends at 4 GiB + ram - 3 GiB", () => {
  const mem = memory(3500 * MiB);
  mem.writeU32(4 * GiB, 0xcafe_f00d);
  // The host mapping is contiguous: high RAM starts right after low RAM in it.
  equal(mem.readU32(4 * GiB), 0xcafe_f00d);
  const highEnd = 4 * GiB + 428 * MiB;
  mem.writeU8(highEnd - 1, 1);
  throws(() => mem.readU8(highEnd), /0x11ac00000 is outside guest RAM/);
  throws(() => mem.readU64(highEnd - 4), GuestMemoryError);
  equal(mem.slice(4 * GiB, 4).byteOffset, 3 * GiB);
});

Deno.test("guest memory: negative, fractional, NaN and overflowing addresses or lengths are refused", () => {
  const mem = memory(32 * MiB);
  throws(() => mem.readU8(-1), /invalid guest address -1/);
  throws(() => mem.readU8(0.5), GuestMemoryError);
  throws(() => mem.readU8(Number.NaN), GuestMemoryError);
  throws(() => mem.readU8(Infinity), GuestMemoryError);
  throws(() => mem.readU8(2 ** 53), GuestMemoryError);
  throws(() => mem.slice(0, -1), /invalid length -1/);
  throws(() => mem.slice(0, 1.5), GuestMemoryError);
  throws(() => mem.slice(Number.MAX_SAFE_INTEGER, 1), GuestMemoryError);
  throws(() => mem.slice(16, Number.MAX_SAFE_INTEGER), GuestMemoryError);
});

Deno.test("guest memory: values that do not fit the access width are refused", () => {
  const mem = memory(32 * MiB);
  throws(() => mem.writeU8(0, 256), RangeError);
  throws(() => mem.writeU16(0, -1), RangeError);
  throws(() => mem.writeU32(0, 2 ** 32), RangeError);
  throws(() => mem.writeU64(0, 1n << 64n), RangeError);
  equal(mem.readU32(0), 0);
});

Deno.test("guest memory: the host buffer must be exactly the layout's RAM size", () => {
  const layout = memoryLayout(32 * MiB);
  throws(() => new GuestMemory(new ArrayBuffer(16 * MiB), layout), GuestMemoryError);
  ok(new GuestMemory(new ArrayBuffer(32 * MiB), layout));
});
