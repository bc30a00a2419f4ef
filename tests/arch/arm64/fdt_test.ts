import { deepEqual, equal, throws } from "../../assert.ts";
import { FdtError, FdtWriter, u64Cells } from "../../../src/arch/arm64/fdt.ts";
import { cells, decompile, parseDts, prop, roundTrip, strings } from "./dtc.ts";

/** Big-endian u32s as bytes, for hand-written expectations. */
function be32(...words: number[]): number[] {
  return words.flatMap((w) => [w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff]);
}

/** / { a = <1>; b@1 { c; a = "x"; }; } */
function tinyTree(): FdtWriter {
  const t = new FdtWriter();
  t.beginNode("");
  t.propU32("a", 1);
  t.beginNode("b@1");
  t.propEmpty("c");
  t.propString("a", "x");
  t.endNode();
  t.endNode();
  return t;
}

Deno.test("fdt: a tiny tree is exactly the bytes the DT spec's chapter 5 gives", () => {
  const expected = [
    // Header: magic, totalsize 0x84, off_dt_struct 0x38, off_dt_strings 0x80,
    // off_mem_rsvmap 0x28, version 17, last_comp_version 16, boot_cpuid_phys 0,
    // size_dt_strings 4, size_dt_struct 0x48.
    ...be32(0xd00dfeed, 0x84, 0x38, 0x80, 0x28, 17, 16, 0, 4, 0x48),
    // Memory reservation block: only the terminating entry.
    ...be32(0, 0, 0, 0),
    // Structure block.
    ...be32(1),
    0,
    0,
    0,
    0, // FDT_BEGIN_NODE "" (NUL, padded to 4)
    ...be32(3, 4, 0, 1), // FDT_PROP len 4, name "a" at 0, <1>
    ...be32(1),
    0x62,
    0x40,
    0x31,
    0, // FDT_BEGIN_NODE "b@1\0"
    ...be32(3, 0, 2), // FDT_PROP len 0, name "c" at 2
    ...be32(3, 2, 0),
    0x78,
    0,
    0,
    0, // FDT_PROP len 2, name "a" again at 0, "x\0" + padding
    ...be32(2), // FDT_END_NODE b@1
    ...be32(2), // FDT_END_NODE /
    ...be32(9), // FDT_END
    // Strings block: "a" once, "c".
    0x61,
    0,
    0x63,
    0,
  ];
  deepEqual([...tinyTree().finish()], expected);
});

Deno.test("fdt: reservations, boot CPU and 64-bit values land in the header and cells", () => {
  const t = new FdtWriter();
  t.reserveMemory(0x1_0000_0000, 0x2000);
  t.beginNode("");
  t.propU64s("v", [0x1_2345_6789, 2 ** 53 - 1, 0xffff_ffff_ffff_ffffn, 0]);
  t.endNode();
  const dtb = t.finish(3);
  const view = new DataView(dtb.buffer);
  equal(view.getUint32(0x1c, false), 3, "boot_cpuid_phys");
  equal(view.getUint32(0x08, false), 0x28 + 32, "struct after two reservation entries");
  deepEqual([...dtb.subarray(0x28, 0x48)], [...be32(1, 0, 0, 0x2000), ...be32(0, 0, 0, 0)]);
  const dts = decompile(dtb);
  equal(dts.includes("/memreserve/\t0x0000000100000000 0x0000000000002000;"), true, dts);
  deepEqual(cells(prop(parseDts(dts), "/", "v")), [
    0x1,
    0x2345_6789,
    0x1f_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0,
    0,
  ]);
  deepEqual(u64Cells(0x8000_0000), [0, 0x8000_0000]);
});

Deno.test("fdt: dtc reads every kind of property and writes the same tree back", () => {
  const t = new FdtWriter();
  const ph = t.allocPhandle();
  equal(ph, 1);
  equal(t.allocPhandle(), 2);
  t.beginNode("");
  t.propStrings("compatible", ["a,b", "c"]);
  t.propBytes("bytes", new Uint8Array([1, 2, 3]));
  t.propCells("cells", [0, 0xffff_ffff]);
  t.beginNode("n");
  t.propU32("phandle", ph);
  t.endNode();
  t.endNode();
  const dtb = t.finish();
  const dts = parseDts(decompile(dtb));
  deepEqual(strings(prop(dts, "/", "compatible")), ["a,b", "c"]);
  equal(prop(dts, "/", "bytes"), "[01 02 03]");
  deepEqual(cells(prop(dts, "/", "cells")), [0, 0xffff_ffff]);
  deepEqual(cells(prop(dts, "/n", "phandle")), [1]);
  // dtc may share a name's tail with a longer name in the strings block; otherwise the same.
  deepEqual(parseDts(decompile(roundTrip(dtb))), dts);
});

Deno.test("fdt: misuse is a programming error and throws FdtError", () => {
  const cases: [string, (t: FdtWriter) => void][] = [
    ["a root named", (t) => t.beginNode("x")],
    ["a property outside a node", (t) => t.propU32("a", 1)],
    ["endNode with no node", (t) => t.endNode()],
    ["finish with no root", (t) => t.finish()],
    ["finish with a node open", (t) => (t.beginNode(""), t.finish())],
    ["a bad node name", (t) => (t.beginNode(""), t.beginNode("a b"))],
    ["a node name over 31 characters", (t) => (t.beginNode(""), t.beginNode("n".repeat(32)))],
    ["a bad property name", (t) => (t.beginNode(""), t.propEmpty("a=b"))],
    ["a property twice", (t) => (t.beginNode(""), t.propEmpty("a"), t.propEmpty("a"))],
    ["a property after a child", (t) => {
      t.beginNode("");
      t.beginNode("c");
      t.endNode();
      t.propEmpty("a");
    }],
    ["two children of one name", (t) => {
      t.beginNode("");
      t.beginNode("c");
      t.endNode();
      t.beginNode("c");
    }],
    ["a second root", (t) => (t.beginNode(""), t.endNode(), t.beginNode(""))],
    ["a cell over 32 bits", (t) => (t.beginNode(""), t.propCells("a", [2 ** 32]))],
    ["a negative cell", (t) => (t.beginNode(""), t.propU32("a", -1))],
    ["an inexact 64-bit number", (t) => (t.beginNode(""), t.propU64("a", 2 ** 53))],
    ["a u64 bigint over 64 bits", (t) => (t.beginNode(""), t.propU64s("a", [1n << 64n]))],
    ["a string with NUL", (t) => (t.beginNode(""), t.propString("a", "x\0y"))],
    ["use after finish", (t) => (t.beginNode(""), t.endNode(), t.finish(), t.allocPhandle())],
  ];
  for (const [what, misuse] of cases) {
    throws(() => misuse(new FdtWriter()), FdtError, what);
  }
});
