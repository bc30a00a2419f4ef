/**
 * The real guest kernel for boot tests: $DENOVMM_TEST_KERNEL, else .cache/guest/vmlinuz (what
 * scripts/setup.sh builds). Under CI=true a missing kernel fails the run instead of skipping, so
 * CI can never pass by not testing the real image.
 */

const path = Deno.env.get("DENOVMM_TEST_KERNEL") ??
  new URL("../../.cache/guest/vmlinuz", import.meta.url).pathname;

function load(): Uint8Array | undefined {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    if (Deno.env.get("CI") === "true") {
      throw new Error(`boot tests need a kernel at ${path} (run scripts/setup.sh)`, { cause: e });
    }
    console.warn(`skipping real-kernel tests: no kernel at ${path} (run scripts/setup.sh)`);
    return undefined;
  }
}

/** The kernel's bytes, or undefined when absent outside CI (tests then set `ignore`). */
export const testKernel: Uint8Array | undefined = load();
export const testKernelPath = path;

/** Header fields of {@link syntheticBzImage}; unset ones take a modern kernel's values. */
export interface SyntheticImageOptions {
  version?: number;
  xloadflags?: number;
  setupSects?: number;
  payloadSize?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
}

/**
 * A minimal bzImage built from boot.rst's field table: enough header for the loader, and a
 * payload whose byte i is i & 0xff so tests can see where it landed.
 */
export function syntheticBzImage(options: SyntheticImageOptions = {}): Uint8Array {
  const setupSects = options.setupSects ?? 4;
  const payloadSize = options.payloadSize ?? 4096;
  const setupSize = ((setupSects || 4) + 1) * 512;
  const file = new Uint8Array(setupSize + payloadSize);
  const view = new DataView(file.buffer);
  file[0x1f1] = setupSects;
  view.setUint32(0x1f4, payloadSize / 16, true); // syssize
  view.setUint16(0x1fe, 0xaa55, true); // boot_flag
  file[0x200] = 0xeb; // jmp short
  file[0x201] = 0x6a; // header ends at 0x26c
  file.set(new TextEncoder().encode("HdrS"), 0x202);
  view.setUint16(0x206, options.version ?? 0x020f, true);
  file[0x211] = 0x01; // loadflags: LOADED_HIGH
  view.setUint32(0x22c, options.initrdAddrMax ?? 0x7fff_ffff, true);
  view.setUint32(0x230, 0x20_0000, true); // kernel_alignment
  file[0x234] = 1; // relocatable_kernel
  view.setUint16(0x236, options.xloadflags ?? 0x3, true);
  view.setUint32(0x238, options.cmdlineSize ?? 2047, true);
  view.setBigUint64(0x258, 0x100_0000n, true); // pref_address
  view.setUint32(0x260, options.initSize ?? 0x100_0000, true);
  for (let i = 0; i < payloadSize; i++) file[setupSize + i] = i & 0xff;
  return file;
}
