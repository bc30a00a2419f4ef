import { deepEqual, equal, throws } from "../../../assert.ts";
import { BootParamsError, buildBootParams } from "../../../../src/arch/x86_64/boot/boot_params.ts";
import { parseBzImage } from "../../../../src/arch/x86_64/boot/bzimage.ts";
import { memoryLayout } from "../../../../src/arch/x86_64/memory_map.ts";
import { syntheticBzImage } from "../../../boot/test_kernel.ts";

const MiB = 1024 * 1024;
const image = parseBzImage(syntheticBzImage());

function zeroPage(ramBytes = 256 * MiB, initrd?: { gpa: number; size: number }): DataView {
  const bytes = buildBootParams({
    setupHeader: image.setupHeader,
    cmdlineGpa: 0x20000,
    initrd,
    e820: memoryLayout(ramBytes).e820(),
  });
  equal(bytes.length, 4096);
  return new DataView(bytes.buffer);
}

Deno.test("boot_params: the kernel's setup header is copied to 0x1f1", () => {
  const zp = zeroPage();
  equal(zp.getUint8(0x1f1), 4); // setup_sects
  equal(zp.getUint32(0x202, true), 0x5372_6448); // "HdrS"
  equal(zp.getUint16(0x206, true), 0x020f); // version
  equal(zp.getUint32(0x230, true), 0x20_0000); // kernel_alignment
  equal(zp.getUint32(0x260, true), 0x100_0000); // init_size
  equal(zp.getUint8(0x1f0), 0); // nothing before the header
  equal(zp.getUint8(0x26c), 0); // nothing after it
});

Deno.test("boot_params: loader fields: type_of_loader, heap, vid_mode, command line", () => {
  const zp = zeroPage();
  equal(zp.getUint8(0x210), 0xff); // type_of_loader: undefined
  equal(zp.getUint8(0x211), 0x81); // loadflags: LOADED_HIGH kept, CAN_USE_HEAP added
  equal(zp.getUint16(0x224, true), 0xfe00); // heap_end_ptr
  equal(zp.getUint16(0x1fa, true), 0xffff); // vid_mode
  equal(zp.getUint32(0x228, true), 0x20000); // cmd_line_ptr
  equal(zp.getUint32(0x0c8, true), 0); // ext_cmd_line_ptr
});

Deno.test("boot_params: ramdisk fields carry the initrd, with the high halves in ext_*", () => {
  let zp = zeroPage(256 * MiB, { gpa: 0xf00_0000, size: 10 * MiB });
  equal(zp.getUint32(0x218, true), 0xf00_0000); // ramdisk_image
  equal(zp.getUint32(0x21c, true), 10 * MiB); // ramdisk_size
  equal(zp.getUint32(0x0c0, true), 0); // ext_ramdisk_image
  equal(zp.getUint32(0x0c4, true), 0); // ext_ramdisk_size
  zp = zeroPage(256 * MiB, { gpa: 0x1_2345_6000, size: 0x1_0000_1000 });
  equal(zp.getUint32(0x218, true), 0x2345_6000);
  equal(zp.getUint32(0x0c0, true), 1);
  equal(zp.getUint32(0x21c, true), 0x1000);
  equal(zp.getUint32(0x0c4, true), 1);
  zp = zeroPage();
  equal(zp.getUint32(0x218, true), 0);
  equal(zp.getUint32(0x21c, true), 0);
});

Deno.test("boot_params: E820 entries are 20-byte packed records at 0x2d0", () => {
  const layout = memoryLayout(3500 * MiB);
  const zp = zeroPage(3500 * MiB);
  const expected = layout.e820();
  equal(zp.getUint8(0x1e8), expected.length);
  const read = expected.map((_, i) => {
    const at = 0x2d0 + 20 * i;
    return {
      gpa: Number(zp.getBigUint64(at, true)),
      size: Number(zp.getBigUint64(at + 8, true)),
      type: zp.getUint32(at + 16, true),
    };
  });
  deepEqual(read, expected);
  deepEqual(read.at(-1), { gpa: 0x1_0000_0000, size: 428 * MiB, type: 1 });
  equal(zp.getUint32(0x2d0 + 20 * expected.length, true), 0);
});

Deno.test("boot_params: more than 128 E820 entries are refused", () => {
  const e820 = Array.from(
    { length: 129 },
    (_, i) => ({ gpa: i * 0x1000, size: 0x1000, type: 1 as const }),
  );
  throws(
    () => buildBootParams({ setupHeader: image.setupHeader, cmdlineGpa: 0x20000, e820 }),
    BootParamsError,
  );
});

Deno.test("boot_params: without a setup header (vmlinux) the kernel's own fields are written", () => {
  const bytes = buildBootParams({
    cmdlineGpa: 0x20000,
    initrd: { gpa: 0x0f00_0000, size: 0x10_0000 },
    e820: memoryLayout(256 * MiB).e820(),
  });
  const zp = new DataView(bytes.buffer);
  equal(zp.getUint16(0x1fe, true), 0xaa55); // boot_flag
  equal(zp.getUint32(0x202, true), 0x5372_6448); // "HdrS"
  equal(zp.getUint16(0x206, true), 0x020f); // version
  equal(zp.getUint8(0x210), 0xff); // type_of_loader
  equal(zp.getUint8(0x211), 0x81); // loadflags: LOADED_HIGH | CAN_USE_HEAP
  equal(zp.getUint32(0x228, true), 0x20000); // cmd_line_ptr
  equal(zp.getUint32(0x218, true), 0x0f00_0000); // ramdisk_image
  equal(zp.getUint32(0x21c, true), 0x10_0000); // ramdisk_size
  equal(zp.getUint32(0x230, true), 0x100_0000); // kernel_alignment
  equal(zp.getUint32(0x238, true), 2047); // cmdline_size
  equal(zp.getUint8(0x1e8), memoryLayout(256 * MiB).e820().length); // e820_entries
  // Nothing a bzImage alone would say: no setup_sects, syssize, init_size or xloadflags.
  equal(zp.getUint8(0x1f1), 0);
  equal(zp.getUint32(0x1f4, true), 0);
  equal(zp.getUint32(0x260, true), 0);
  equal(zp.getUint16(0x236, true), 0);
});
