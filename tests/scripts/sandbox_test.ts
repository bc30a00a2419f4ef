import { equal, match } from "../assert.ts";

const repo = new URL("../..", import.meta.url).pathname;

/** Runs `bash args...` in the repository with `input` on stdin (none if absent). */
async function run(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  const child = new Deno.Command("bash", {
    args,
    cwd: repo,
    env: opts.env,
    stdin: opts.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.input));
    await writer.close();
  }
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, stdout, stderr, context: `stdout: ${stdout}\nstderr: ${stderr}` };
}

// Boots the real sandbox (QEMU TCG) even where /dev/kvm exists: sandbox.sh never
// looks for a host KVM. Needs scripts/setup.sh to have run (qemu, .cache/sandbox).
Deno.test("sandbox: piped stdin reaches the command, which sees EOF, /dev/kvm and returns its status", async () => {
  const { code, stdout, context } = await run([
    "scripts/sandbox.sh",
    "--",
    "sh",
    "-c",
    'read a; read b; echo "got:$a:$b"; test -c /dev/kvm && echo kvm-ok; exit 7',
  ], { input: "one\ntwo\n" });
  match(stdout, /got:one:two\n/, context);
  match(stdout, /kvm-ok\n/, context);
  equal(code, 7, context);
});

Deno.test("sandbox: a command past --timeout is stopped with 124, its threads listed", async () => {
  const { code, stdout, context } = await run([
    "scripts/sandbox.sh",
    "--timeout",
    "3",
    "--",
    "sleep",
    "600",
  ]);
  equal(code, 124, context);
  match(stdout, /the command ran past 3 s/, context);
  // The stuck command, with where it sleeps in the kernel and its system call (nanosleep).
  match(stdout, /\d+\/\d+ sleep S \S+ \[230 /, context);
  match(stdout, /sysrq: Show Blocked State/, context);
});

/** Kills the sandbox init's heartbeat loop (a subshell of /init, so named init); fails if none. */
const KILL_HEARTBEAT = "n=0; for p in /proc/[0-9]*; do pid=${p#/proc/}; " +
  '[ "$pid" != 1 ] && [ "$(cat $p/comm 2>/dev/null)" = init ] && kill $pid && n=$((n + 1)); ' +
  "done; [ $n -gt 0 ]";

Deno.test("sandbox: a kernel that stops its heartbeat gets an NMI, then is stopped with 125", async () => {
  // Killing init's heartbeat loop looks, from the host, like a kernel that stopped.
  const { code, stdout, stderr, context } = await run(
    // By hand, not with pkill: procps may be missing (a minimal image) and Debian 13's
    // busybox-static has no pkill. PID 1 is left alone (it would ignore the signal anyway); if
    // nothing was killed, the command ends at once instead of sleeping.
    ["scripts/sandbox.sh", "--", "sh", "-c", KILL_HEARTBEAT + " && sleep 600"],
    { env: { DENOVMM_SANDBOX_STALE_S: "10" } },
  );
  equal(code, 125, context);
  match(stderr, /no heartbeat from the VM for \d+ s; sending it an NMI/, context);
  match(stdout, /NMI received/, context); // the sandbox's kernel got it
  match(stderr, /the VM's kernel stopped/, context);
});

Deno.test("with-kvm: a sandbox whose kernel dies runs the command once more, on the same input", async () => {
  const marker = `${repo}/.cache/with-kvm-retry-${Deno.pid}`;
  const script = `read l; echo "got:$l"; if [ ! -e ${marker} ]; then touch ${marker}; sync; ` +
    `echo c > /proc/sysrq-trigger; fi; echo second-run; exit 3`;
  try {
    const { code, stdout, stderr, context } = await run(
      ["scripts/with-kvm.sh", "sh", "-c", script],
      { input: "the-input\n", env: { DENOVMM_SANDBOX: "1" } },
    );
    equal(code, 3, context); // the second run's own status
    equal(stdout.match(/^got:the-input\r?$/gm)?.length, 2, context);
    match(stdout, /^second-run\r?$/m, context);
    match(
      stderr,
      /the sandbox's kernel died \(not a result of the command\); running it once more/,
    );
  } finally {
    await Deno.remove(marker).catch(() => {});
  }
});
