import { equal, ok } from "../assert.ts";
import { mmapAnonymous } from "../../ffi/libc.ts";

const MiB = 1024 * 1024;

Deno.test("guest RAM mapping: 2 MiB aligned (for huge pages), zeroed, writable, no slack left", () => {
  const size = 40 * MiB;
  const { hva, buffer } = mmapAnonymous(size);
  equal(hva % BigInt(2 * MiB), 0n, `0x${hva.toString(16)} is 2 MiB aligned`);
  equal(buffer.byteLength, size);
  const bytes = new Uint8Array(buffer);
  ok(bytes[0] === 0 && bytes[size - 1] === 0);
  bytes[size - 1] = 7;
  equal(bytes[size - 1], 7);
  // The mapping is exactly the RAM: the extra 2 MiB taken to align it were given back.
  const start = hva.toString(16);
  const line = Deno.readTextFileSync("/proc/self/maps").split("\n").find((l) =>
    l.startsWith(`${start}-`)
  );
  ok(line, `a mapping starts at ${start}`);
  const [from, to] = line!.split(" ")[0].split("-").map((x) => BigInt(`0x${x}`));
  equal(Number(to - from), size);
  ok(line!.split(" ")[1].startsWith("rw-p"), `private: ${line}`);
});
