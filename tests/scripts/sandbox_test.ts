import { equal, match } from "../assert.ts";

const repo = new URL("../..", import.meta.url).pathname;

// Boots the real sandbox (QEMU TCG) even where /dev/kvm exists: sandbox.sh never
// looks for a host KVM. Needs scripts/setup.sh to have run (qemu, .cache/sandbox).
Deno.test("sandbox: piped stdin reaches the command, which sees EOF, /dev/kvm and returns its status", async () => {
  const child = new Deno.Command("bash", {
    args: [
      "scripts/sandbox.sh",
      "--",
      "sh",
      "-c",
      'read a; read b; echo "got:$a:$b"; test -c /dev/kvm && echo kvm-ok; exit 7',
    ],
    cwd: repo,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("one\ntwo\n"));
  await writer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const context = `stdout: ${stdout}\nstderr: ${stderr}`;
  match(stdout, /got:one:two\n/, context);
  match(stdout, /kvm-ok\n/, context);
  equal(out.code, 7, context);
});

Deno.test("sandbox: a command past --timeout is stopped with 124, its threads listed", async () => {
  const out = await new Deno.Command("bash", {
    args: ["scripts/sandbox.sh", "--timeout", "3", "--", "sleep", "600"],
    cwd: repo,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const context = `stdout: ${stdout}\nstderr: ${new TextDecoder().decode(out.stderr)}`;
  equal(out.code, 124, context);
  match(stdout, /the command ran past 3 s/, context);
  // The stuck command, with where it sleeps in the kernel and its system call (nanosleep).
  match(stdout, /\d+\/\d+ sleep S \S+ \[230 /, context);
  match(stdout, /sysrq: Show Blocked State/, context);
});

Deno.test("sandbox: a kernel that stops its heartbeat gets an NMI, then is stopped with 125", async () => {
  // Killing init's heartbeat loop looks, from the host, like a kernel that stopped.
  const out = await new Deno.Command("bash", {
    args: ["scripts/sandbox.sh", "--", "sh", "-c", "pkill -x init; sleep 600"],
    cwd: repo,
    env: { DENOVMM_SANDBOX_STALE_S: "10" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const context = `stdout: ${stdout}\nstderr: ${stderr}`;
  equal(out.code, 125, context);
  match(stderr, /no heartbeat from the VM for \d+ s; sending it an NMI/, context);
  match(stdout, /NMI received/, context); // the sandbox's kernel got it
  match(stderr, /the VM's kernel stopped/, context);
});

Deno.test("with-kvm: a sandbox whose kernel dies runs the command once more, on the same input", async () => {
  const marker = `${repo}/.cache/with-kvm-retry-${Deno.pid}`;
  const script = `read l; echo "got:$l"; if [ ! -e ${marker} ]; then touch ${marker}; sync; ` +
    `echo c > /proc/sysrq-trigger; fi; echo second-run; exit 3`;
  try {
    const child = new Deno.Command("bash", {
      args: ["scripts/with-kvm.sh", "sh", "-c", script],
      cwd: repo,
      env: { DENOVMM_SANDBOX: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("the-input\n"));
    await w.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    const context = `stdout: ${stdout}\nstderr: ${stderr}`;
    equal(out.code, 3, context); // the second run's own status
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
