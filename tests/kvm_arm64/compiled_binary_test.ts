// The arm64 executable (`bash scripts/compile.sh --target aarch64`, which scripts/test.sh runs
// before this suite) boots the default arm64 guest with no Deno on PATH and no Deno cache.
import { equal, ok } from "../assert.ts";
import { kernelRelease, REPO, runDenovmm } from "../kvm/guest_runner.ts";

Deno.test("arm64 compiled binary: boots the default guest without Deno installed", async () => {
  const binary = `${REPO}denovmm-aarch64`;
  const info = await Deno.stat(binary).catch(() => undefined);
  ok(
    info?.isFile,
    `${binary} missing: scripts/test.sh builds it first (compile.sh --target aarch64)`,
  );
  // scripts/test.sh unpacks the payload natively into a fresh home first (the one step that is
  // slow under the emulated CPU, and only on a first run); without it, a fresh home here.
  const given = Deno.env.get("DENOVMM_TEST_BINARY_HOME");
  const home = given ?? await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "denovmm-home-" });
  try {
    const r = await runDenovmm({
      binary,
      args: ["run", "-m", "256M"],
      input: "uname -m -r\nexit 5\n",
      clearEnv: true,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home },
      timeoutMs: 300_000,
    });
    equal(r.status, 5, r.stdout + r.stderr);
    ok(r.stdout.includes(`${kernelRelease()} aarch64`), r.stdout);
  } finally {
    if (given === undefined) await Deno.remove(home, { recursive: true });
  }
});
