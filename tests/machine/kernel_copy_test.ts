import { deepEqual, equal, ok, rejects } from "../assert.ts";
import { KernelCopy } from "../../src/machine/kernel_copy.ts";
import { openInputFile } from "../../src/machine/input_files.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { memoryLayout } from "../../src/arch/x86_64/memory_map.ts";

const MiB = 1024 * 1024;

function randomFile(size: number): { path: string; bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
  const path = Deno.makeTempFileSync({ prefix: "denovmm-kernel-copy-" });
  Deno.writeFileSync(path, bytes);
  return { path, bytes };
}

function ram(): GuestMemory {
  const layout = memoryLayout(32 * MiB);
  return new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
}

Deno.test("kernel copy: the pieces land in RAM from the pool's reads, and nothing else is written", async () => {
  const { path, bytes } = randomFile(3 * MiB);
  const file = openInputFile(path, "kernel");
  const mem = ram();
  const pieces = [
    { fileOffset: 0, gpa: 0x100_0000, length: 2 * MiB },
    { fileOffset: 2 * MiB + 0x800, gpa: 0x140_0000, length: 0x1_0000 },
  ];
  const copy = new KernelCopy(file, pieces, mem);
  await copy.done();
  await copy.settled();
  deepEqual(mem.read(0x100_0000, 2 * MiB), bytes.subarray(0, 2 * MiB));
  deepEqual(mem.read(0x140_0000, 0x1_0000), bytes.subarray(2 * MiB + 0x800, 2 * MiB + 0x1_0800));
  ok(mem.read(0x120_0000, 0x20_0000).every((b) => b === 0), "between the pieces: untouched");
  ok(mem.read(0x141_0000, 0x1000).every((b) => b === 0), "after the last piece: untouched");
  file.close();
});

Deno.test("kernel copy: a piece the file no longer holds is reported in one line, not left half-read", async () => {
  const { path } = randomFile(MiB);
  const file = openInputFile(path, "kernel");
  Deno.truncateSync(path, MiB / 2); // the file shrinks after it was checked
  const copy = new KernelCopy(file, [{ fileOffset: 0, gpa: 0x100_0000, length: MiB }], ram());
  await rejects(() => copy.done(), (e: Error) => {
    equal(e.message, `kernel ${path}: ends early (changed while being read?)`);
    return true;
  });
  await copy.settled();
  file.close();
});

Deno.test("kernel copy: a piece outside guest RAM is refused before any read is issued", () => {
  const { path } = randomFile(0x1000);
  const file = openInputFile(path, "kernel");
  let threw = false;
  try {
    new KernelCopy(file, [
      { fileOffset: 0, gpa: 0x100_0000, length: 0x1000 },
      { fileOffset: 0, gpa: 32 * MiB - 0x800, length: 0x1000 },
    ], ram());
  } catch (e) {
    threw = true;
    ok((e as Error).name === "GuestMemoryError", (e as Error).name);
  }
  ok(threw, "refused");
  file.close();
});
