// The x86_64 platform object answers the machine's questions with the PC's facts, and the
// machine is built from it (src/machine/arch.ts).
import { deepEqual, equal, ok, throws } from "../../assert.ts";
import { x86_64 } from "../../../src/arch/x86_64/platform.ts";
import { platform } from "../../../src/machine/arch.ts";
import { REQUIRED_CAPS } from "../../../src/machine/vm.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { MemoryLayoutError } from "../../../src/memory/regions.ts";
import { syntheticElf } from "../../boot/test_kernel.ts";

const MiB = 1024 * 1024;

Deno.test("x86_64 platform: the machine is built for it, with its KVM capabilities", () => {
  equal(platform, x86_64);
  for (const cap of ["IRQCHIP", "USER_MEMORY", "SET_TSS_ADDR", "PIT2"] as const) {
    ok(REQUIRED_CAPS.includes(cap), cap);
  }
});

Deno.test("x86_64 platform: memory map, windows and INTx are the PC's", () => {
  const layout = x86_64.memoryLayout(3500 * MiB);
  deepEqual(layout.regions.map((r) => r.gpa), [0, 0x1_0000_0000]);
  throws(() => x86_64.memoryLayout(16 * MiB), MemoryLayoutError);
  deepEqual(x86_64.pciMmio64Window(layout, 40), {
    gpa: 0x1_4000_0000,
    size: 2 ** 40 - 0x1_4000_0000,
  });
  equal(x86_64.pciEcam.gpa, 0xfeb0_0000);
  equal(x86_64.intxGsi(2, 1), 17);
  equal(x86_64.firstMsiGsi, 24);
});

Deno.test("x86_64 platform: a kernel parsed once, placed once, loaded with the tables it needs", () => {
  const layout = x86_64.memoryLayout(64 * MiB);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  const placed = x86_64.placeKernel(x86_64.parseKernel(syntheticElf()), layout);
  ok(placed.copies !== undefined && placed.copies.length > 0, "a vmlinux's copies are planned");
  const entry = x86_64.loadKernel(mem, layout, placed, {
    cmdline: "console=ttyS0",
    cpus: 2,
    pciIntx: [{ slot: 1, pin: 1, gsi: 16 }],
    mmio64: { gpa: 0, size: 0 },
    copiesMade: false,
  });
  equal(entry.regs.rip, 0x100_0000);
  equal(entry.regs.rsi, 0x7000, "the zero page");
  const rsdp = mem.readU32(0x7000 + 0x70);
  equal(new TextDecoder().decode(mem.slice(rsdp, 8)), "RSD PTR ", "the zero page names the RSDP");
  equal(new TextDecoder().decode(mem.slice(0xf_0000, 4)), "_MP_", "the MP table");
});
