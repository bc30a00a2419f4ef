// Hostile-guest fuzzing of the emulated MSI capability: config writes of every width at and
// around it; what the machine would route stays inside what the capability offers.
import { equal, ok } from "../assert.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import { MsiCapability, msiCapabilityBody, PCI_CAP_ID_MSI } from "../../src/pci/msi.ts";
import { fuzz, FuzzStats, ops, pick } from "./harness.ts";

const LAYOUTS = [1, 2, 4, 8, 16, 32].flatMap((vectors) => [
  { vectors, address64: true },
  { vectors, address64: false },
]);

Deno.test("fuzz msi: no access escapes; enabled vectors and messages stay what the capability allows", () => {
  const stats = new FuzzStats("MSI");
  fuzz(stats, ops(3), (list) => {
    const layout = pick(LAYOUTS, list.length);
    const cfg = new PciConfigSpace(PciConfigSpace.createState());
    const { body, writable } = msiCapabilityBody(layout);
    const at = cfg.addCapability(PCI_CAP_ID_MSI, body, writable);
    const msi = new MsiCapability(cfg, at);
    let accesses = 0;
    for (const [kind, a, b, c] of list) {
      if (kind === 0) cfg.write(at - 4 + (a % 24), pick([1, 2, 4, 3, 8], b), c);
      else if (kind === 1) cfg.write(at + 2, 2, c & 0xffff); // enable and MME games
      else ok(cfg.read(at + (a % 16), pick([1, 2, 4], b)) <= 0xffff_ffff);
      accesses++;
      const n = msi.vectors();
      ok(n >= 1 && n <= layout.vectors && (n & (n - 1)) === 0, `vectors ${n}`);
      if (msi.enabled()) {
        for (let i = 0; i < n; i++) {
          const m = msi.message(i);
          // The address as its two dwords, exact whatever the upper one holds.
          ok(m.addressLo >= 0 && m.addressLo <= 0xffff_ffff);
          ok(m.addressHi >= 0 && m.addressHi <= 0xffff_ffff);
          equal(m.addressLo % 4, 0, "dword-aligned address");
          if (!layout.address64) equal(m.addressHi, 0);
          ok(m.data >= 0 && m.data <= 0xffff);
          equal(m.data & (n - 1), i);
        }
      }
    }
    return accesses;
  });
});
