// DENOVMM_BOOT_VCPU: where vCPU 0 runs (the main thread unless `worker`); anything else is the
// user's mistake, said in one line.
import { equal, throws } from "../assert.ts";
import { bootVcpuOnWorker, MachineError } from "../../src/machine/machine.ts";

Deno.test("DENOVMM_BOOT_VCPU: unset, empty or main is the main thread; worker is a Worker", () => {
  const saved = Deno.env.get("DENOVMM_BOOT_VCPU");
  try {
    Deno.env.delete("DENOVMM_BOOT_VCPU");
    equal(bootVcpuOnWorker(), false);
    for (const [v, want] of [["", false], ["main", false], ["worker", true]] as const) {
      Deno.env.set("DENOVMM_BOOT_VCPU", v);
      equal(bootVcpuOnWorker(), want, v);
    }
    Deno.env.set("DENOVMM_BOOT_VCPU", "Worker ");
    throws(
      () => bootVcpuOnWorker(),
      (e) => e instanceof MachineError && /not 'Worker '/.test(e.message),
    );
  } finally {
    if (saved === undefined) Deno.env.delete("DENOVMM_BOOT_VCPU");
    else Deno.env.set("DENOVMM_BOOT_VCPU", saved);
  }
});
