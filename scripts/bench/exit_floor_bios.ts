/**
 * exit_floor.c's guest as a 64 KiB firmware image for QEMU (`-bios`), so that QEMU runs the same
 * N writes to the unclaimed port 0x4f0, then one to 0x501 (its isa-debug-exit ends QEMU): the
 * reset vector (offset 0xfff0, CS base 0xffff0000) jumps to the loop at offset 0.
 *
 *   deno run -W scripts/bench/exit_floor_bios.ts N OUT
 *
 * @module
 */

/** The image: the loop at offset 0, a near jump to it at the reset vector. */
export function exitFloorBios(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 1 || n >= 2 ** 32) throw new RangeError(`bad count ${n}`);
  const image = new Uint8Array(64 * 1024).fill(0xf4); // hlt everywhere else
  const code = [
    0x66,
    0xb9,
    n & 0xff,
    (n >>> 8) & 0xff,
    (n >>> 16) & 0xff,
    n >>> 24, // mov ecx, n
    0xba,
    0xf0,
    0x04, // mov dx, 0x4f0
    0xee, // out dx, al
    0x66,
    0x49, // dec ecx
    0x75,
    0xfb, // jnz out
    0xba,
    0x01,
    0x05, // mov dx, 0x501
    0xee, // out dx, al: QEMU's isa-debug-exit ends the VM
    0xf4, // hlt
  ];
  image.set(code, 0);
  // jmp near 0x0000 from 0xfff0: rel16 = 0 - (0xfff0 + 3) mod 2^16 = 0x000d.
  image.set([0xe9, 0x0d, 0x00], 0xfff0);
  return image;
}

if (import.meta.main) {
  const [n, out] = [Number(Deno.args[0]), Deno.args[1]];
  if (!out) {
    console.error("usage: exit_floor_bios.ts N OUT");
    Deno.exit(2);
  }
  Deno.writeFileSync(out, exitFloorBios(n));
}
