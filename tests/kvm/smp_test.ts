// SMP: each vCPU on its own Worker; the MP table tells Linux about all of them, and the APs
// come up through INIT/SIPI in the in-kernel LAPIC.
import { equal, ok } from "../assert.ts";
import { runDenovmm } from "./guest_runner.ts";

Deno.test("smp: -c 4 brings 4 CPUs online and a 4-way parallel job finishes", async () => {
  const job = "x=0; while [ $x -lt 3000 ]; do x=$((x+1)); done; echo job-$i-done";
  const r = await runDenovmm({
    args: ["run", "-c", "4"],
    input: `cat /sys/devices/system/cpu/online\nnproc\n` +
      `for i in 1 2 3 4; do ( ${job} ) & done; wait; echo all-jobs-done\nexit 0\n`,
  });
  equal(r.status, 0, r.stdout + r.stderr);
  ok(/^0-3\r?$/m.test(r.stdout), `online CPUs:\n${r.stdout}`);
  ok(/^4\r?$/m.test(r.stdout), "nproc is 4");
  for (let i = 1; i <= 4; i++) ok(r.stdout.includes(`job-${i}-done`), `job ${i}`);
  ok(r.stdout.includes("all-jobs-done"));
});
