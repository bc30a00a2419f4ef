/**
 * scripts/with-kvm.sh's choice between the host's KVM and the sandbox, without booting either
 * (`--where`). The sandbox's own behaviour is in sandbox_cases.ts.
 */
import { equal, ok } from "../assert.ts";
import { run } from "./sandbox_cases.ts";

const hostArch = Deno.build.arch === "aarch64" ? "arm64" : "x86_64";

async function where(env: Record<string, string>, arch = hostArch) {
  const { code, stdout, context } = await run(["scripts/with-kvm.sh", "--arch", arch, "--where"], {
    env: { DENOVMM_SANDBOX: "", ...env },
  });
  equal(code, 0, context);
  return stdout.trim();
}

Deno.test("with-kvm: a missing device node means the sandbox, and the check creates no file", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const kvm = `${dir}/kvm`;
    equal(await where({ DENOVMM_KVM_DEVICE: kvm }), `sandbox: no ${kvm} here`);
    // bash's `<>` opens with O_CREAT: the old check left a regular file where /dev/kvm was not.
    ok(!existsSync(kvm), `${kvm} was created`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("with-kvm: a regular file in the device's place is not a KVM", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const kvm = `${dir}/kvm`;
    Deno.writeFileSync(kvm, new Uint8Array());
    equal(await where({ DENOVMM_KVM_DEVICE: kvm }), `sandbox: no ${kvm} here`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("with-kvm: DENOVMM_SANDBOX and --arch decide before any device is looked at", async () => {
  const other = hostArch === "x86_64" ? "arm64" : "x86_64";
  equal(await where({}, other), `sandbox: this host is ${hostArch}, not ${other}`);
  equal(await where({ DENOVMM_SANDBOX: "0", DENOVMM_KVM_DEVICE: "/nonexistent" }), "host");
  // A character device that opens read-write passes the node's checks; what is left to decide
  // it is the CPU's virtualisation (x86-64), or nothing (arm64).
  const nullDev = await where({ DENOVMM_KVM_DEVICE: "/dev/null" });
  ok(
    nullDev === "host" || nullDev === "sandbox: /dev/null here has no hardware virtualisation " +
          "behind it (no vmx/svm)",
    nullDev,
  );
  const forced = await where({ DENOVMM_SANDBOX: "1", DENOVMM_KVM_DEVICE: "/dev/null" });
  ok(forced === "sandbox: DENOVMM_SANDBOX=1" || forced.startsWith("sandbox: /dev/null"), forced);
});

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
