import { deepEqual, equal, ok, throws } from "../assert.ts";
import { openInputFile, openKernelFile } from "../../src/machine/input_files.ts";
import { syntheticElf } from "../boot/test_kernel.ts";

function temp(bytes: Uint8Array): string {
  const path = Deno.makeTempFileSync({ prefix: "denovmm-input-" });
  Deno.writeFileSync(path, bytes);
  return path;
}

Deno.test("input files: a vmlinux comes as its head and a reader; a bzImage whole", () => {
  const elf = syntheticElf();
  const path = temp(elf);
  const { kernel, close } = openKernelFile(path);
  ok(!(kernel instanceof Uint8Array));
  equal(kernel.source.length, elf.length);
  deepEqual(kernel.head, elf.subarray(0, Math.min(elf.length, 64 * 1024)));
  const part = new Uint8Array(0x100);
  kernel.source.readInto(0x1000, part);
  deepEqual(part, elf.subarray(0x1000, 0x1100));
  close();
  close(); // closing twice is harmless
  const other = temp(new Uint8Array(1000).fill(7));
  const whole = openKernelFile(other);
  ok(whole.kernel instanceof Uint8Array && whole.kernel.length === 1000);
  whole.close();
});

Deno.test("input files: missing, empty, directory and short files get one line each", () => {
  throws(
    () => openInputFile("/nonexistent/x", "initrd"),
    /^InputFileError: initrd \/nonexistent\/x: no such file$/,
  );
  throws(() => openInputFile(temp(new Uint8Array()), "initrd"), /file is empty/);
  throws(() => openKernelFile(Deno.makeTempDirSync()), /is a directory, not a file/);
  const path = temp(new Uint8Array(10));
  const f = openInputFile(path, "initrd");
  Deno.truncateSync(path, 4); // the file shrinks under us
  let error = "";
  try {
    f.readInto(0, new Uint8Array(10));
  } catch (e) {
    error = (e as Error).message;
  }
  equal(error, `initrd ${path}: ends early (changed while being read?)`);
  f.close();
});
