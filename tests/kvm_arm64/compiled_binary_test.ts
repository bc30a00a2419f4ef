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
  const home = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "denovmm-home-" });
  try {
    const r = await runDenovmm({
      binary,
      args: ["run", "-m", "256M"],
      input: "uname -m -r\nexit 5\n",
      clearEnv: true,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home },
      // The first run unpacks the payload (the arm64 Deno) under the emulated CPU.
      timeoutMs: 300_000,
    });
    equal(r.status, 5, r.stdout + r.stderr);
    ok(r.stdout.includes(`${kernelRelease()} aarch64`), r.stdout);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
