/**
 * arm64 kernel Images for the loader's tests: synthetic ones with chosen header fields, and the
 * real guest's ($DENOVMM_TEST_ARM64_IMAGE, else .cache/arm64/guest/Image), which tests skip,
 * saying why, while no arm64 guest has been built.
 */

/** Header fields of {@link syntheticArm64Image}; unset ones take a v6 kernel's values. */
export interface SyntheticArm64Options {
  textOffset?: bigint;
  imageSize?: bigint;
  /** Default 0b1010: little-endian, 4 KiB pages, base anywhere. */
  flags?: bigint;
  magic?: number;
  /** File length (default 64 KiB); the body's bytes are i & 0xff, the header aside. */
  length?: number;
}

export function syntheticArm64Image(options: SyntheticArm64Options = {}): Uint8Array {
  const length = options.length ?? 64 * 1024;
  const file = new Uint8Array(length).map((_, i) => i & 0xff);
  const view = new DataView(file.buffer);
  view.setUint32(0, 0x1400_4000, true); // code0: b +0x10000
  view.setUint32(4, 0, true);
  view.setBigUint64(8, options.textOffset ?? 0n, true);
  view.setBigUint64(16, options.imageSize ?? BigInt(length + 3 * 1024 * 1024), true);
  view.setBigUint64(24, options.flags ?? 0b1010n, true);
  for (let o = 32; o < 56; o++) file[o] = 0;
  view.setUint32(56, options.magic ?? 0x644d_5241, true);
  view.setUint32(60, 0, true);
  return file;
}

export const testArm64ImagePath = Deno.env.get("DENOVMM_TEST_ARM64_IMAGE") ??
  new URL("../../../../.cache/arm64/guest/Image", import.meta.url).pathname;

function load(): Uint8Array | undefined {
  try {
    return Deno.readFileSync(testArm64ImagePath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    console.warn(
      `skipping real arm64 Image tests: no ${testArm64ImagePath} ` +
        `(set DENOVMM_TEST_ARM64_IMAGE to an uncompressed arm64 Image)`,
    );
    return undefined;
  }
}

/** The real Image's bytes, or undefined when there is none (tests then set `ignore`). */
export const testArm64Image: Uint8Array | undefined = load();
