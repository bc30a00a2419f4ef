// The x86_64 platform object answers the machine's questions with the PC's facts, and the
// machine is built from it (src/machine/arch.ts: every thread's wiring; arch_boot.ts: the rest).
import { deepEqual, equal, ok, throws } from "../../assert.ts";
import { x86_64 } from "../../../src/arch/x86_64/platform.ts";
import { wiring } from "../../../src/machine/arch.ts";
import { platform } from "../../../src/machine/arch_boot.ts";
import { x86_64Wiring } from "../../../src/arch/x86_64/wiring.ts";
import { REQUIRED_CAPS } from "../../../src/machine/vm.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { MemoryLayoutError } from "../../../src/memory/regions.ts";
import { syntheticElf } from "../../boot/test_kernel.ts";

const MiB = 1024 * 1024;

Deno.test("x86_64 platform: the machine is built for it, with its KVM capabilities", () => {
  // On an x86-64 host (an arm64 one builds its own machine: tests/arch/arm64/platform_test.ts).
  const native = Deno.build.arch === "x86_64";
  equal(platform === x86_64, native);
  equal(wiring === x86_64Wiring, native);
  for (const [key, value] of Object.entries(x86_64Wiring)) {
    equal((x86_64 as unknown as Record<string, unknown>)[key], value, `the platform's ${key}`);
  }
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

Deno.test("x86_64 platform: a thread's wiring loads none of the boot protocol's modules", async () => {
  // Every vCPU and the I/O Worker load the wiring's module graph again (seconds under an
  // emulated CPU): the bzImage loader, ACPI and CPUID belong to the main thread only.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../../../src/machine/vcpu_thread.ts", import.meta.url).href],
  }).output();
  const graph: string[] = JSON.parse(new TextDecoder().decode(out.stdout)).modules.map(
    (m: { specifier: string }) => m.specifier,
  );
  ok(graph.some((m) => m.endsWith("/src/arch/x86_64/wiring.ts")), "the thread has the wiring");
  for (
    const heavy of ["/boot/linux.ts", "/acpi/aml.ts", "/x86_64/cpuid.ts", "/x86_64/platform.ts"]
  ) {
    ok(!graph.some((m) => m.endsWith(heavy)), `a vCPU thread loads ${heavy}`);
  }
});
