import { deepEqual, equal, ok, throws } from "../../../assert.ts";
import {
  BootImageError,
  bzImagePayload,
  parseBzImage,
} from "../../../../src/arch/x86_64/boot/bzimage.ts";
import { syntheticBzImage, testKernel, testKernelPath } from "../../../boot/test_kernel.ts";

function kernelBytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

Deno.test({
  name: "bzimage: the real guest kernel parses with a 64-bit entry and a sane header",
  ignore: testKernel === undefined,
  fn() {
    const kernel = testKernel!;
    const image = parseBzImage(kernel);
    ok(image.version >= 0x020c, `protocol 0x${image.version.toString(16)}`);
    ok(image.xloadflags & 0x1, "XLF_KERNEL_64");
    ok(image.relocatable);
    equal(image.kernelAlignment, 0x20_0000);
    equal(image.prefAddress, 0x100_0000);
    equal(image.cmdlineSize, 2047);
    ok(image.initSize > image.protectedMode.length, "init_size covers decompression");
    ok(image.initrdAddrMax >= 0x37ff_ffff);
    equal(image.setupSects, kernel[0x1f1]);
    // The header copy spans 0x1f1 up to 0x202 + the jump's displacement.
    equal(image.setupHeader.length, 0x202 + kernel[0x201] - 0x1f1);
    deepEqual(image.setupHeader.subarray(0x202 - 0x1f1, 0x206 - 0x1f1), kernelBytes("HdrS"));
    const start = (image.setupSects + 1) * 512;
    const syssize = new DataView(kernel.buffer).getUint32(0x1f4, true);
    equal(image.protectedMode.length, syssize * 16);
    equal(image.protectedMode[0], kernel[start]);
    ok(start + image.protectedMode.length <= kernel.length, testKernelPath);
    // The payload is syssize*16 bytes, not the rest of the file (which may hold a signature).
    equal(image.protectedMode.byteOffset - kernel.byteOffset, start);
  },
});

Deno.test({
  name: "bzimage: a truncated copy of the real kernel says how many bytes it needs",
  ignore: testKernel === undefined,
  fn() {
    const kernel = testKernel!;
    // Signed images carry a signature after the payload; only setup + syssize*16 is needed.
    const image = parseBzImage(kernel);
    const needed = (image.setupSects + 1) * 512 + image.protectedMode.length;
    parseBzImage(kernel.subarray(0, needed));
    const cut = kernel.subarray(0, needed - 1000);
    throws(
      () => parseBzImage(cut),
      (e: Error) =>
        e instanceof BootImageError &&
        e.message === `bzImage truncated: needs ${needed} bytes, file has ${cut.length}`,
    );
  },
});

Deno.test("bzimage: a synthetic image yields its fields and payload", () => {
  const image = parseBzImage(syntheticBzImage({ initSize: 0x200_0000, cmdlineSize: 255 }));
  equal(image.version, 0x020f);
  equal(image.setupSects, 4);
  equal(image.initSize, 0x200_0000);
  equal(image.cmdlineSize, 255);
  equal(image.initrdAddrMax, 0x7fff_ffff);
  equal(image.protectedMode.length, 4096);
  equal(image.protectedMode[0x201], 0x01);
  equal(image.setupHeader.length, 0x26c - 0x1f1);
});

Deno.test("bzimage: setup_sects 0 means 4", () => {
  const image = parseBzImage(syntheticBzImage({ setupSects: 0 }));
  equal(image.setupSects, 4);
  equal(image.protectedMode[7], 7);
});

Deno.test("bzimage: random bytes are not a bzImage", () => {
  const junk = new Uint8Array(64 * 1024);
  crypto.getRandomValues(junk);
  junk.set([0, 0, 0, 0], 0x202); // make sure chance did not spell HdrS
  throws(() => parseBzImage(junk), /^BootImageError: not a bzImage \(no HdrS signature\)$/);
  throws(() => parseBzImage(new Uint8Array(100)), BootImageError);
  throws(() => parseBzImage(new Uint8Array(0)), /no HdrS signature/);
});

Deno.test("bzimage: a header without the 0xAA55 boot flag is refused", () => {
  const file = syntheticBzImage();
  file[0x1fe] = 0;
  throws(() => parseBzImage(file), /no 0xAA55 boot flag/);
});

Deno.test("bzimage: protocol older than 2.12 is refused with both versions named", () => {
  throws(
    () => parseBzImage(syntheticBzImage({ version: 0x020a })),
    /^BootImageError: boot protocol 2\.10 too old \(need 2\.12\)$/,
  );
  parseBzImage(syntheticBzImage({ version: 0x020c }));
});

Deno.test("bzimage: a kernel without XLF_KERNEL_64 is refused", () => {
  throws(
    () => parseBzImage(syntheticBzImage({ xloadflags: 0x2 })),
    /^BootImageError: kernel has no 64-bit entry point$/,
  );
});

Deno.test("bzimage: a file shorter than setup + syssize*16 is truncated", () => {
  const file = syntheticBzImage();
  throws(
    () => parseBzImage(file.subarray(0, file.length - 16)),
    new RegExp(
      `^BootImageError: bzImage truncated: needs ${file.length} bytes, file has ` +
        `${file.length - 16}$`,
    ),
  );
  throws(() => parseBzImage(file.subarray(0, 0x210)), /bzImage truncated: needs/);
});

Deno.test({
  name: "bzimage: the real kernel's payload is an xz or zstd stream followed by vmlinux's size",
  ignore: testKernel === undefined,
  fn() {
    const payload = bzImagePayload(testKernel!);
    const head = [...payload.subarray(0, 6)];
    // Debian 12's kernel is xz-compressed, Debian 13's zstd.
    const xz = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00].every((b, i) => head[i] === b);
    const zstd = [0x28, 0xb5, 0x2f, 0xfd].every((b, i) => head[i] === b);
    ok(xz || zstd, `payload starts ${head.map((b) => b.toString(16)).join(" ")}`);
    // scripts/Makefile.lib size_append: the last 4 bytes are the uncompressed size; an xz
    // stream before them ends with xz's footer magic "YZ".
    if (xz) deepEqual([...payload.subarray(payload.length - 6, payload.length - 4)], [0x59, 0x5a]);
    const size = new DataView(payload.buffer, payload.byteOffset + payload.length - 4, 4)
      .getUint32(0, true);
    ok(size > payload.length, `vmlinux ${size} bytes from ${payload.length}`);
  },
});

Deno.test("bzimage: the payload is payload_length bytes at payload_offset into the kernel", () => {
  const file = syntheticBzImage(); // protected-mode code at 5 * 512, byte i there is i & 0xff
  const view = new DataView(file.buffer);
  view.setUint32(0x248, 0x100, true);
  view.setUint32(0x24c, 0x20, true);
  const payload = bzImagePayload(file);
  equal(payload.length, 0x20);
  equal(payload.byteOffset, 5 * 512 + 0x100);
  equal(payload[1], 0x01);
});

Deno.test("bzimage: a payload outside the protected-mode kernel, or empty, is refused", () => {
  const file = syntheticBzImage({ payloadSize: 4096 });
  const view = new DataView(file.buffer);
  view.setUint32(0x248, 0xf00, true);
  view.setUint32(0x24c, 0x101, true);
  throws(
    () => bzImagePayload(file),
    /^BootImageError: bzImage payload \(offset 0xf00, 257 bytes\) is not inside its 4096-byte/,
  );
  view.setUint32(0x248, 0xffff_ffff, true);
  view.setUint32(0x24c, 0xffff_ffff, true);
  throws(() => bzImagePayload(file), /not inside/);
  view.setUint32(0x248, 0, true);
  view.setUint32(0x24c, 0, true);
  throws(() => bzImagePayload(file), /0 bytes/);
});
