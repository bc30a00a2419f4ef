// The ACPI machine with Debian's generic kernel (./acpi_cases.ts), reboot through the i8042 and
// the FADT, and the MP table with acpi=off.
import { equal, ok } from "../assert.ts";
import { acpiBootTests } from "./acpi_cases.ts";
import { runDenovmm } from "./guest_runner.ts";

acpiBootTests("amd64");

Deno.test("acpi: reboot resets through the i8042 as before (status 0); reboot=a takes the FADT's reset register", async () => {
  for (const params of ["quiet", "quiet reboot=a"]) {
    const r = await runDenovmm({
      args: ["run", "-p", params, "--debug"],
      input: "echo rebooting\nreboot\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    ok(r.stdout.includes("rebooting"));
    const how = params.includes("reboot=a") ? "ACPI reset" : "i8042 reset";
    ok(r.stderr.includes(`${how}: the VM ends, status 0`), `${params}: ${how}\n${r.stderr}`);
  }
});

Deno.test("acpi: with -p acpi=off the MP table describes the machine: -c 3 still has 3 CPUs", async () => {
  const r = await runDenovmm({
    args: ["run", "-c", "3", "-p", "quiet acpi=off"],
    input: "echo online=$(cat /sys/devices/system/cpu/online)\n" +
      "echo acpi-tables=$(ls /sys/firmware/acpi/tables 2>/dev/null | wc -l)\nexit 5\n",
  });
  equal(r.status, 5, r.stdout + r.stderr);
  ok(/^online=0-2\r?$/m.test(r.stdout), r.stdout);
  ok(/^acpi-tables=0\r?$/m.test(r.stdout), "no ACPI with acpi=off");
});
