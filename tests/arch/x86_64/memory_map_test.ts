import { deepEqual, equal, ok, throws } from "../../assert.ts";
import {
  E820_RAM,
  E820_RESERVED,
  type E820Entry,
  memoryLayout,
  pciMmio64Window,
} from "../../../src/arch/x86_64/memory_map.ts";
import { MemoryLayoutError } from "../../../src/memory/regions.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** PCI Express ECAM for bus 0, reserved so Linux accepts the MCFG's region. */
const ECAM = { gpa: 0xfeb0_0000, size: 0x10_0000, type: E820_RESERVED };

/** The legacy part of the E820 map, the same for every machine. */
function legacyE820(): E820Entry[] {
  return [
    { gpa: 0, size: 0x9fc00, type: E820_RAM },
    { gpa: 0x9fc00, size: 0x400, type: E820_RESERVED },
    { gpa: 0xe0000, size: 0x20000, type: E820_RESERVED },
  ];
}

Deno.test("layout: 256 MiB sits below the hole in one region", () => {
  const layout = memoryLayout(256 * MiB);
  equal(layout.ramBytes, 256 * MiB);
  equal(layout.lowRamEnd, 256 * MiB);
  deepEqual(layout.regions, [{ gpa: 0, size: 256 * MiB, hostOffset: 0 }]);
  deepEqual(layout.e820(), [
    ...legacyE820(),
    { gpa: 0x100000, size: 255 * MiB, type: E820_RAM },
    ECAM,
  ]);
});

Deno.test("layout: 3500 MiB straddles the hole: 3 GiB low plus 428 MiB at 4 GiB", () => {
  const layout = memoryLayout(3500 * MiB);
  equal(layout.lowRamEnd, 3 * GiB);
  deepEqual(layout.regions, [
    { gpa: 0, size: 3 * GiB, hostOffset: 0 },
    { gpa: 4 * GiB, size: 428 * MiB, hostOffset: 3 * GiB },
  ]);
  deepEqual(layout.e820(), [
    ...legacyE820(),
    { gpa: 0x100000, size: 3 * GiB - MiB, type: E820_RAM },
    ECAM,
    { gpa: 4 * GiB, size: 428 * MiB, type: E820_RAM },
  ]);
});

Deno.test("layout: 6 GiB puts 3 GiB above 4 GiB", () => {
  const layout = memoryLayout(6 * GiB);
  deepEqual(layout.regions, [
    { gpa: 0, size: 3 * GiB, hostOffset: 0 },
    { gpa: 4 * GiB, size: 3 * GiB, hostOffset: 3 * GiB },
  ]);
  deepEqual(layout.e820().at(-1), { gpa: 4 * GiB, size: 3 * GiB, type: E820_RAM });
});

Deno.test("layout: exactly 3 GiB fills the low region and has no high region", () => {
  const layout = memoryLayout(3 * GiB);
  equal(layout.lowRamEnd, 0xC000_0000);
  deepEqual(layout.regions, [{ gpa: 0, size: 3 * GiB, hostOffset: 0 }]);
  equal(layout.e820().length, 5);
});

Deno.test("layout: E820 ranges are ordered, disjoint; in the MMIO hole only the ECAM, reserved", () => {
  for (const ram of [32 * MiB, 3 * GiB, 3500 * MiB, 64 * GiB]) {
    const e820 = memoryLayout(ram).e820();
    for (let i = 1; i < e820.length; i++) {
      const prev = e820[i - 1];
      equal(prev.gpa + prev.size <= e820[i].gpa, true, `overlap in ${ram}`);
    }
    for (const e of e820.filter((e) => e !== e820.find((x) => x.gpa === ECAM.gpa))) {
      equal(e.gpa + e.size <= 0xC000_0000 || e.gpa >= 0x1_0000_0000, true);
    }
    deepEqual(e820.find((e) => e.gpa >= 0xC000_0000 && e.gpa < 0x1_0000_0000), ECAM);
    const ramTotal = e820.filter((e) => e.type === E820_RAM).reduce((n, e) => n + e.size, 0);
    // Only the EBDA and the legacy area 0xa0000..0xfffff are held back from the guest's RAM.
    equal(ramTotal, ram - (0x100000 - 0x9fc00));
  }
});

Deno.test("layout: the 64-bit PCI window lies above RAM and the E820, below the guest's address width", () => {
  const TiB = 1024 * GiB;
  for (const ram of [32 * MiB, 3 * GiB, 3500 * MiB, 6 * GiB, 64 * GiB, 1 * TiB]) {
    const layout = memoryLayout(ram);
    const ramTop = Math.max(
      ...layout.regions.map((r) => r.gpa + r.size),
      ...layout.e820().map((e) => e.gpa + e.size),
    );
    for (const bits of [36, 39, 40, 46, 48, 52]) {
      const w = pciMmio64Window(layout, bits);
      const what = `${ram / MiB} MiB, ${bits} bits`;
      ok(w.gpa >= ramTop && w.gpa >= 4 * GiB, `${what}: starts above RAM and 4 GiB`);
      equal(w.gpa % GiB, 0, `${what}: on a 1 GiB boundary`);
      equal(w.size, Math.max(2 ** bits - w.gpa, 0), `${what}: up to 2^bits, or empty`);
    }
  }
  deepEqual(pciMmio64Window(memoryLayout(3500 * MiB), 40), { gpa: 5 * GiB, size: 1019 * GiB });
  deepEqual(pciMmio64Window(memoryLayout(256 * MiB), 36), { gpa: 4 * GiB, size: 60 * GiB });
  equal(pciMmio64Window(memoryLayout(1 * TiB), 40).size, 0, "no room left under 2^40");
  equal(pciMmio64Window(memoryLayout(256 * MiB), 57).size, 2 ** 52 - 4 * GiB, "capped at 2^52");
});

Deno.test("layout: refuses RAM below 32 MiB, above 1 TiB, or not in whole pages", () => {
  throws(() => memoryLayout(16 * MiB), MemoryLayoutError);
  throws(() => memoryLayout(32 * MiB - 4096), /out of range: use 32 MiB to 1 TiB/);
  throws(() => memoryLayout(1024 * GiB + 4096), MemoryLayoutError);
  throws(() => memoryLayout(64 * MiB + 512), /not a multiple of 4 KiB/);
  throws(() => memoryLayout(Number.NaN), MemoryLayoutError);
  memoryLayout(32 * MiB);
  memoryLayout(1024 * GiB);
});
