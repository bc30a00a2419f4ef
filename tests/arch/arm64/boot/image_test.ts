import { equal, match, ok } from "../../../assert.ts";
import {
  Arm64ImageError,
  LEGACY_TEXT_OFFSET,
  parseArm64Image,
} from "../../../../src/arch/arm64/boot/image.ts";
import { syntheticArm64Image, testArm64Image, testArm64ImagePath } from "./test_image.ts";

/** The one-line message parsing `file` fails with. */
function refusal(file: Uint8Array, fileBytes?: number): string {
  try {
    parseArm64Image(file, fileBytes);
  } catch (e) {
    ok(e instanceof Arm64ImageError, `${e}`);
    ok(!e.message.includes("\n"), "one line");
    return e.message;
  }
  throw new Error("parsed");
}

Deno.test("arm64 image: a modern header's fields", () => {
  const file = syntheticArm64Image({ textOffset: 0n, imageSize: 0x2a0_0000n, flags: 0b1010n });
  const image = parseArm64Image(file);
  equal(image.textOffset, 0);
  equal(image.imageSize, 0x2a0_0000);
  equal(image.pageSizeKiB, 4);
  equal(image.placementAnywhere, true);
  equal(image.fileBytes, file.length);
});

Deno.test("arm64 image: page sizes, placement and a pre-3.17 kernel's zero image_size", () => {
  equal(parseArm64Image(syntheticArm64Image({ flags: 0b0100n })).pageSizeKiB, 16);
  equal(parseArm64Image(syntheticArm64Image({ flags: 0b0110n })).pageSizeKiB, 64);
  equal(parseArm64Image(syntheticArm64Image({ flags: 0n })).pageSizeKiB, undefined);
  equal(parseArm64Image(syntheticArm64Image({ flags: 0n })).placementAnywhere, false);
  // booting.rst: image_size 0 means text_offset is 0x80000 whatever the field says.
  const old = parseArm64Image(syntheticArm64Image({ imageSize: 0n, textOffset: 0x8_0000_0000n }));
  equal(old.imageSize, 0);
  equal(old.textOffset, LEGACY_TEXT_OFFSET);
  const v4 = parseArm64Image(syntheticArm64Image({ textOffset: 0x8_0000n }));
  equal(v4.textOffset, 0x8_0000);
});

Deno.test("arm64 image: the header read from the head of a longer file", () => {
  const file = syntheticArm64Image();
  const image = parseArm64Image(file.subarray(0, 64), 40 * 1024 * 1024);
  equal(image.fileBytes, 40 * 1024 * 1024);
});

Deno.test("arm64 image: bad files get one line naming the problem", () => {
  match(refusal(new Uint8Array(63)), /63 bytes, shorter than its 64-byte header/);
  match(refusal(syntheticArm64Image(), 10), /10 bytes/);
  match(refusal(syntheticArm64Image({ magic: 0x1234 })), /no "ARM\\x64" magic at 0x38/);
  match(refusal(syntheticArm64Image({ flags: 0b1011n })), /big-endian/);
  match(refusal(syntheticArm64Image({ imageSize: 1n << 60n })), /image_size .* too large/);

  const gz = new Uint8Array(1000);
  gz.set([0x1f, 0x8b, 0x08]);
  match(refusal(gz), /gzip-compressed; decompress it first/);
  match(refusal(gz.subarray(0, 10)), /gzip-compressed/, "even shorter than a header");
  const xz = new Uint8Array(1000);
  xz.set([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  match(refusal(xz), /xz-compressed/);

  // An EFI zboot file: "MZ", "zimg" at 4, the algorithm at 0x18 and, as in the real thing,
  // the arm64 magic at 0x38.
  const zboot = syntheticArm64Image();
  zboot.set([0x4d, 0x5a, 0, 0], 0);
  zboot.set(new TextEncoder().encode("zimg"), 4);
  zboot.set(new TextEncoder().encode("zstd\0"), 0x18);
  match(refusal(zboot), /EFI zboot \(zstd\)-compressed; decompress it first/);
});

Deno.test("arm64 image: an Image whose first instruction looks like gzip's magic is an Image", () => {
  const file = syntheticArm64Image();
  file.set([0x1f, 0x8b], 0);
  equal(parseArm64Image(file).textOffset, 0);
});

Deno.test({
  name: "arm64 image: the real guest kernel's header",
  ignore: testArm64Image === undefined,
  fn() {
    const image = parseArm64Image(testArm64Image!);
    equal(image.textOffset, 0, `${testArm64ImagePath}: TEXT_OFFSET is 0 since v5.8`);
    ok(image.imageSize >= image.fileBytes, "image_size covers the file and bss");
    ok(image.pageSizeKiB !== undefined);
  },
});
