// The arm64 platform object answers the machine's questions with the arm64 machine's facts; on
// an arm64 host the machine is built from it (src/machine/arch.ts, arch_boot.ts).
import { equal, ok } from "../../assert.ts";
import { arm64 } from "../../../src/arch/arm64/platform.ts";
import { arm64Wiring } from "../../../src/arch/arm64/wiring.ts";
import { x86_64 } from "../../../src/arch/x86_64/platform.ts";
import { wiring } from "../../../src/machine/arch.ts";
import { platform } from "../../../src/machine/arch_boot.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { syntheticArm64Image } from "./boot/test_image.ts";

const MiB = 1024 * 1024;

Deno.test("arm64 platform: the wiring plus the boot side; the host's architecture chooses", () => {
  for (const [key, value] of Object.entries(arm64Wiring)) {
    equal((arm64 as unknown as Record<string, unknown>)[key], value, `the platform's ${key}`);
  }
  const native = Deno.build.arch === "aarch64";
  equal(platform, native ? arm64 : x86_64);
  equal(wiring.name, native ? "arm64" : "x86_64");
  // KVM answers KVM_CAP_MSI_DEVID per VM (EINVAL on /dev/kvm): it is not asked up front.
  ok(!arm64.requiredCaps.includes("MSI_DEVID"));
  ok(arm64.requiredCaps.includes("ARM_PSCI_0_2"));
  equal(arm64.baseCmdline.split(" ")[0], "console=ttyS0");
});

Deno.test("arm64 platform: an Image parsed, placed and loaded with its device tree", () => {
  const layout = arm64.memoryLayout(64 * MiB);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  const placed = arm64.placeKernel(arm64.parseKernel(syntheticArm64Image()), layout);
  const entry = arm64.loadKernel(mem, layout, placed, {
    cmdline: arm64.baseCmdline,
    cpus: 2,
    pciIntx: [{ slot: 1, pin: 1, gsi: arm64.intxGsi(1) }],
    mmio64: arm64.pciMmio64Window(layout, 40),
    copiesMade: false,
  });
  equal(entry.pc, 0x8000_0000);
  // The DTB's magic (0xd00dfeed, big-endian) where x0 points.
  const magic = mem.slice(entry.x0, 4);
  equal(new DataView(magic.buffer, magic.byteOffset, 4).getUint32(0), 0xd00dfeed);
});

Deno.test("arm64 platform: a thread's wiring loads none of the boot side's modules", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../../../src/machine/vcpu_thread.ts", import.meta.url).href],
  }).output();
  const graph: string[] = JSON.parse(new TextDecoder().decode(out.stdout)).modules.map(
    (m: { specifier: string }) => m.specifier,
  );
  ok(graph.some((m) => m.endsWith("/src/arch/arm64/wiring.ts")), "the thread has the wiring");
  for (const heavy of ["/arm64/device_tree.ts", "/arm64/fdt.ts", "/arm64/boot/linux.ts"]) {
    ok(!graph.some((m) => m.endsWith(heavy)), `a vCPU thread loads ${heavy}`);
  }
});
