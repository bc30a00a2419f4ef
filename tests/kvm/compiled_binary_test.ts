// The single executable from `deno task compile` boots the default guest with no Deno on
// PATH and no Deno cache: what a user who copies just the file gets.
import { equal, ok } from "../assert.ts";
import { kernelRelease, REPO, runDenovmm } from "./guest_runner.ts";

Deno.test("compiled binary: boots the default guest without Deno installed", async () => {
  const binary = `${REPO}denovmm`;
  const info = await Deno.stat(binary).catch(() => undefined);
  ok(info?.isFile, `${binary} missing: deno task test builds it first (deno task compile)`);
  const home = await Deno.makeTempDir({ prefix: "denovmm-home-" });
  try {
    const r = await runDenovmm({
      binary,
      args: ["run", "-m", "256M"],
      input: "uname -r\nexit 5\n",
      clearEnv: true,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home },
    });
    equal(r.status, 5, r.stdout + r.stderr);
    ok(r.stdout.includes(kernelRelease()), r.stdout);
    // A self-extracting executable unpacks its modules under the home's cache: each must be
    // Latin-1 throughout, or V8 holds its source as two bytes a character (scripts/compile.sh).
    const cache = `${home}/.cache/denovmm`;
    const unpacked = await Array.fromAsync(Deno.readDir(cache)).catch(() => [] as Deno.DirEntry[]);
    for (const dir of unpacked) {
      for (const name of ["main.js", "vcpu_thread.js", "io_thread.js"]) {
        const text = await Deno.readTextFile(`${cache}/${dir.name}/${name}`);
        const wide = [...text].findIndex((c) => c.codePointAt(0)! > 0xff);
        equal(wide, -1, `${name}: a character beyond Latin-1 at ${wide}`);
      }
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
