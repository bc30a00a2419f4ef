// The kernels people use, described by ACPI (src/acpi/): Debian's generic, cloud and realtime
// kernels (the cloud one has no MP-table parser, so without ACPI it sees one CPU) boot to the
// shell with every vCPU online, list the tables, use ECAM, report no firmware errors, and
// `poweroff` ends the VM with status 0.
//
// Each boot costs 20-90 s in the sandbox, so the default run covers every kernel with every
// vCPU count (1, 3, 8) and every pair of vCPU count and RAM (256 MiB, 3500 MiB) in 9 boots, a
// Latin square over the 18 combinations; DENOVMM_ACPI_MATRIX=full boots all 18. One test file
// per kernel (acpi_test.ts, acpi_cloud_test.ts, acpi_rt_test.ts), each a few minutes: the KVM
// suite resumes after a death of the sandbox's kernel file by file (scripts/kvm_suite.sh).
import { deepEqual, equal, ok } from "../assert.ts";
import { assertMemTotal, GUEST_DIR, REPO, runDenovmm } from "./guest_runner.ts";

const MiB = 1024 * 1024;
const KERNELS = ["amd64", "cloud-amd64", "rt-amd64"] as const;
const CPUS = [1, 3, 8];
const RAM_MIB = [256, 3500];
const INITRD = `${GUEST_DIR}/initramfs.cpio.gz`;
/** The ECAM region as dmesg prints it, escaped for a RegExp. */
const ECAM_RANGE = String.raw`\[mem 0xfeb00000-0xfebfffff\]`;

/** What Linux prints when firmware tables are wrong (ACPICA's and the kernel's own prefixes). */
const FIRMWARE_ERRORS =
  /ACPI BIOS (Error|Warning)|ACPI Error|ACPI Warning|\[Firmware Bug\]|FW BUG|\[Firmware Warn\]/i;

function kernelPath(flavour: string): string {
  return `${REPO}.cache/kernels/${flavour}/vmlinuz`;
}

/** The commands each boot runs; every answer is on a line of its own, tagged. */
const PROBE = [
  "echo online=$(cat /sys/devices/system/cpu/online)",
  "echo nproc=$(nproc)",
  "echo tables=$(ls /sys/firmware/acpi/tables | grep -v -e data -e dynamic | tr '\\n' ,)",
  "grep MemTotal /proc/meminfo",
  "dmesg | grep -E 'ACPI|Firmware|FW BUG|MMCONFIG|ECAM' | sed 's/^/dmesg: /'",
  // Extended config space (past 256 bytes) exists only through ECAM.
  "echo hostbridge-config=$(wc -c </sys/bus/pci/devices/0000:00:00.0/config)",
  "echo uname=$(uname -r)",
  "poweroff",
].join("\n") + "\n";

type Kernel = typeof KERNELS[number];

interface Boot {
  kernel: Kernel;
  cpus: number;
  ramMiB: number;
}

function matrix(kernel: Kernel): Boot[] {
  const k = KERNELS.indexOf(kernel);
  const all: Boot[] = [];
  CPUS.forEach((cpus, c) =>
    RAM_MIB.forEach((ramMiB, m) => {
      // The square: kernel k with vCPU count c gets RAM (k + c) mod 2.
      if (Deno.env.get("DENOVMM_ACPI_MATRIX") === "full" || (k + c) % 2 === m) {
        all.push({ kernel, cpus, ramMiB });
      }
    })
  );
  return all;
}

/** Registers the matrix's boots of one kernel. */
export function acpiBootTests(kernel: Kernel): void {
  for (const b of matrix(kernel)) {
    Deno.test(`acpi: ${b.kernel} with -c ${b.cpus} -m ${b.ramMiB}M: all CPUs online, the tables, ECAM, no firmware errors, poweroff ends the VM with 0`, async () => {
      const release = Deno.readTextFileSync(`${REPO}.cache/kernels/${b.kernel}/release`).trim();
      const r = await runDenovmm({
        args: [
          "run",
          "-k",
          kernelPath(b.kernel),
          "-i",
          INITRD,
          "-c",
          String(b.cpus),
          "-m",
          `${b.ramMiB}M`,
          "--debug", // says how the VM ended
        ],
        input: PROBE,
        timeoutMs: 300_000,
      });
      const out = r.stdout;
      const report = `${out}\n${r.stderr}`;
      equal(r.status, 0, `poweroff ends the VM with status 0:\n${report}`);
      ok(out.includes(`uname=${release}`), `the guest runs ${release}:\n${report}`);
      const online = b.cpus === 1 ? "0" : `0-${b.cpus - 1}`;
      ok(new RegExp(`^online=${online}\\r?$`, "m").test(out), `CPUs ${online} online:\n${report}`);
      ok(new RegExp(`^nproc=${b.cpus}\\r?$`, "m").test(out), `nproc ${b.cpus}`);
      ok(/^tables=APIC,DSDT,FACP,MCFG,\r?$/m.test(out), `the tables:\n${report}`);
      assertMemTotal(out, b.ramMiB * MiB);
      ok(/dmesg: .*ACPI: Using ACPI \(MADT\) for SMP/.test(out), `CPUs from the MADT:\n${report}`);
      // Linux 6.1 says MMCONFIG; 6.9 and later (Debian 13's 6.12) say ECAM.
      const ecamInUse = new RegExp(
        String.raw`dmesg: .*PCI: (MMCONFIG for domain 0000 \[bus 00-00\] at ${ECAM_RANGE}|` +
          String.raw`ECAM ${ECAM_RANGE} \(base 0xfeb00000\) for domain 0000 \[bus 00-00\])`,
      );
      ok(ecamInUse.test(out), `ECAM in use:\n${report}`);
      ok(
        new RegExp(`dmesg: .*(MMCONFIG at|ECAM) ${ECAM_RANGE} reserved`).test(out),
        `ECAM reserved:\n${report}`,
      );
      ok(
        /^hostbridge-config=4096\r?$/m.test(out),
        `extended config space through ECAM:\n${report}`,
      );
      ok(r.stderr.includes("ACPI power off: the VM ends, status 0"), `ACPI S5:\n${r.stderr}`);
      const errors = out.split("\n").filter((l) =>
        l.startsWith("dmesg:") && FIRMWARE_ERRORS.test(l)
      );
      deepEqual(errors, [], "firmware error lines in dmesg");
      // What the guest reported, for the record (the note lists it per kernel and count).
      const said = (tag: string) => new RegExp(`^${tag}=(.*?)\r?$`, "m").exec(out)?.[1];
      console.log(
        `  ${b.kernel} -c ${b.cpus} -m ${b.ramMiB}M: online ${said("online")}, ` +
          `tables ${said("tables")?.replace(/,$/, "")}, ${/MemTotal:\s+\d+ kB/.exec(out)?.[0]}, ` +
          `host bridge config ${said("hostbridge-config")} bytes, firmware errors ${errors.length}`,
      );
    });
  }
}
