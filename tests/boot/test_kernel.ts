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

/**
 * The uncompressed kernel scripts/build_guest.ts extracts next to the bzImage
 * ($DENOVMM_TEST_VMLINUX, else .cache/guest/vmlinux). Read on demand: it is 66 MB. Under
 * CI=true a missing file fails the run instead of skipping, as for the bzImage.
 */
export const testVmlinuxPath = Deno.env.get("DENOVMM_TEST_VMLINUX") ??
  new URL("../../.cache/guest/vmlinux", import.meta.url).pathname;

function vmlinuxPresent(): boolean {
  try {
    Deno.statSync(testVmlinuxPath);
    return true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    if (Deno.env.get("CI") === "true") {
      throw new Error(`boot tests need ${testVmlinuxPath} (run scripts/setup.sh)`, { cause: e });
    }
    console.warn(`skipping vmlinux tests: no ${testVmlinuxPath} (run scripts/setup.sh)`);
    return false;
  }
}

/** Whether {@link readTestVmlinux} has a file to read (tests set `ignore` when not). */
export const hasTestVmlinux: boolean = vmlinuxPresent();

export function readTestVmlinux(): Uint8Array {
  return Deno.readFileSync(testVmlinuxPath);
}

/** One program header of {@link syntheticElf}; the file bytes are i & 0xff from its offset. */
export interface SyntheticSegment {
  type?: number;
  flags?: number;
  offset: number | bigint;
  paddr: number | bigint;
  filesz: number | bigint;
  memsz: number | bigint;
}

/** Header fields of {@link syntheticElf}; unset ones take a vmlinux's values. */
export interface SyntheticElfOptions {
  segments?: SyntheticSegment[];
  entry?: number | bigint;
  machine?: number;
  type?: number;
  phentsize?: number;
  /** e_phnum, when it should differ from segments.length. */
  phnum?: number;
  /** Total file length, when it should differ from what the segments need. */
  length?: number;
}

/** A vmlinux-like pair: text (R+X) at 16 MiB, and data (RW) at 18 MiB with a .bss tail. */
export const SYNTHETIC_ELF_SEGMENTS: readonly SyntheticSegment[] = Object.freeze([
  { flags: 0x5, offset: 0x1000, paddr: 0x100_0000, filesz: 0x1000, memsz: 0x1000 },
  { flags: 0x6, offset: 0x2000, paddr: 0x120_0000, filesz: 0x800, memsz: 0x3000 },
  { type: 4, flags: 0x4, offset: 0x2000, paddr: 0x120_0000, filesz: 0x10, memsz: 0x10 }, // PT_NOTE
]);

/**
 * A minimal ELF64 x86-64 executable from the gABI's Elf64_Ehdr and Elf64_Phdr layouts, with
 * program headers right after the ELF header and segment bytes that tests can recognise.
 */
export function syntheticElf(options: SyntheticElfOptions = {}): Uint8Array {
  const segments = options.segments ?? SYNTHETIC_ELF_SEGMENTS;
  const phentsize = options.phentsize ?? 56;
  const phnum = options.phnum ?? segments.length;
  const needed = segments.reduce((n, s) => {
    const end = Number(s.offset) + Number(s.filesz);
    return end <= 0x10_0000 ? Math.max(n, end) : n; // absurd sizes are for the parser to refuse
  }, 64 + segments.length * phentsize);
  const file = new Uint8Array(options.length ?? needed);
  const view = new DataView(file.buffer);
  file.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT
  view.setUint16(16, options.type ?? 2, true); // e_type ET_EXEC
  view.setUint16(18, options.machine ?? 62, true); // e_machine EM_X86_64
  view.setUint32(20, 1, true); // e_version
  view.setBigUint64(24, BigInt(options.entry ?? 0x100_0000), true); // e_entry
  view.setBigUint64(32, 64n, true); // e_phoff
  view.setUint16(52, 64, true); // e_ehsize
  view.setUint16(54, phentsize, true); // e_phentsize
  view.setUint16(56, phnum, true); // e_phnum
  segments.forEach((s, i) => {
    const at = 64 + i * phentsize;
    if (at + 56 > file.length) return;
    view.setUint32(at, s.type ?? 1, true); // p_type, PT_LOAD by default
    view.setUint32(at + 4, s.flags ?? 0x4, true); // p_flags
    view.setBigUint64(at + 8, BigInt(s.offset), true); // p_offset
    view.setBigUint64(at + 16, BigInt(s.paddr) | 0xffff_ffff_8000_0000n, true); // p_vaddr
    view.setBigUint64(at + 24, BigInt(s.paddr), true); // p_paddr
    view.setBigUint64(at + 32, BigInt(s.filesz), true); // p_filesz
    view.setBigUint64(at + 40, BigInt(s.memsz), true); // p_memsz
    view.setBigUint64(at + 48, 0x20_0000n, true); // p_align
    const start = Number(s.offset);
    const end = Math.min(start + Number(s.filesz), file.length);
    for (let j = start; j < end; j++) file[j] = (j - start) & 0xff;
  });
  return file;
}
