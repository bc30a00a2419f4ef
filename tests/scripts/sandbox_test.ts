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
