import { equal, ok } from "../assert.ts";
import { arm64Image, imagePageSize, isArm64Image } from "../../scripts/lib/arm64_image.ts";
import { busyboxApplets } from "../../scripts/lib/busybox.ts";

const repo = new URL("../..", import.meta.url).pathname;
const hint = "run scripts/setup.sh";

async function read(path: string): Promise<Uint8Array> {
  return await Deno.readFile(`${repo}${path}`).catch((e) => {
    throw new Error(`${path}: ${hint}`, { cause: e });
  });
}

/** A fake arm64 Image header: magic at 0x38, the page size in flags bits 1-2 (booting.rst). */
function fakeImage(pageCode: number, size = 4096): Uint8Array<ArrayBuffer> {
  const image = new Uint8Array(size);
  const view = new DataView(image.buffer);
  view.setUint32(0x38, 0x644d5241, true);
  view.setBigUint64(0x18, BigInt(pageCode << 1), true);
  image.fill(0x5a, 0x40);
  return image;
}

async function gzip(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// What scripts/setup.sh (build_arm64.ts) leaves for the arm64 sandbox and guest. Fails until
// setup ran.
Deno.test("arm64 cache: the guest is a raw 4 KiB-page Image, the sandbox's kernel a 16 KiB one", async () => {
  for (const [dir, pages] of [["guest", 4096], ["sandbox", 16384]] as const) {
    const image = await read(`.cache/arm64/${dir}/Image`);
    ok(isArm64Image(image), `.cache/arm64/${dir}/Image: no ARM\\x64 magic at 0x38`);
    equal(imagePageSize(image), pages, `.cache/arm64/${dir}/Image's page size`);
    const initrd = await read(`.cache/arm64/${dir}/initramfs.cpio.gz`);
    equal(initrd[0] << 8 | initrd[1], 0x1f8b, `.cache/arm64/${dir}/initramfs.cpio.gz is gzip`);
  }
});

Deno.test("arm64 cache: Deno's arm64 build and the chroot's loader and busybox are aarch64 ELFs", async () => {
  for (
    const path of [
      ".tools/arm64/deno",
      ".cache/arm64/root/usr/lib/aarch64-linux-gnu/libc.so.6",
      ".cache/arm64/root/usr/lib/aarch64-linux-gnu/libgcc_s.so.1",
      ".cache/arm64/root/lib/ld-linux-aarch64.so.1",
      ".cache/arm64/root/bin/sh",
    ]
  ) {
    const elf = await read(path);
    equal(new DataView(elf.buffer).getUint32(0), 0x7f454c46, `${path}: ELF magic`);
    equal(new DataView(elf.buffer).getUint16(18, true), 183, `${path}: e_machine EM_AARCH64`);
  }
  equal((await Deno.readTextFile(`${repo}.tools/arm64/deno.version`)).trim(), Deno.version.deno);
});

Deno.test("arm64 image: a gzip'd Image and an EFI zboot one unpack to the raw Image", async () => {
  const image = fakeImage(2);
  equal(imagePageSize(image), 16384);
  equal(await arm64Image(image, "raw"), image);
  const gz = await gzip(image);
  equal((await arm64Image(gz, "gzip")).join(), image.join());
  // zboot: "MZ", "zimg" at 4, payload offset and size at 8 and 12, compressor name at 0x18.
  const zboot = new Uint8Array(0x100 + gz.length);
  const view = new DataView(zboot.buffer);
  zboot.set([0x4d, 0x5a], 0);
  zboot.set(new TextEncoder().encode("zimg"), 4);
  view.setUint32(8, 0x100, true);
  view.setUint32(12, gz.length, true);
  zboot.set(new TextEncoder().encode("gzip"), 0x18);
  zboot.set(gz, 0x100);
  equal((await arm64Image(zboot, "zboot")).join(), image.join());
});

Deno.test("busybox applets: read from the binary, as --list prints them", async () => {
  const list = await new Deno.Command("/bin/busybox", { args: ["--list"] }).output();
  const expected = new TextDecoder().decode(list.stdout).trim().split("\n").sort();
  equal(
    busyboxApplets(await Deno.readFile("/bin/busybox"), "/bin/busybox").join(),
    expected.join(),
  );
});
