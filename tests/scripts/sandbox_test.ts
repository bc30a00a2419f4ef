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
