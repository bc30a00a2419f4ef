/**
 * The sandbox's guarantees (scripts/sandbox.sh, scripts/with-kvm.sh), for either architecture:
 * sandbox_test.ts runs them on the x86-64 sandbox, sandbox_arm64_test.ts on the arm64 one.
 */
import { deepEqual, equal, match, ok } from "../assert.ts";

const repo = new URL("../..", import.meta.url).pathname;

/** Runs `bash args...` in the repository with `input` on stdin (none if absent). */
export async function run(
  args: string[],
  opts: { input?: string; env?: Record<string, string> } = {},
) {
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

/** What differs between the two sandboxes, as the tests see it. */
interface Arch {
  name: "x86_64" | "arm64";
  /** clock_nanosleep's system call number, as /proc/PID/syscall shows it for `sleep`. */
  nanosleep: number;
  /** Whether a stopped kernel gets an NMI (QEMU's arm virt machine has none). */
  nmi: boolean;
  /**
   * Whether to run the cases whose code is the same for both (--timeout's stop, with-kvm's
   * second run): each boots a sandbox, and CI's 30 minutes have no room for booting the slower
   * arm64 one to test the same lines of shell twice.
   */
  sharedCases: boolean;
}

export const X86_64: Arch = { name: "x86_64", nanosleep: 230, nmi: true, sharedCases: true };
export const ARM64: Arch = { name: "arm64", nanosleep: 115, nmi: false, sharedCases: false };

/** Kills the sandbox init's heartbeat loop (a subshell of /init, so named init); fails if none. */
const KILL_HEARTBEAT = "n=0; for p in /proc/[0-9]*; do pid=${p#/proc/}; " +
  '[ "$pid" != 1 ] && [ "$(cat $p/comm 2>/dev/null)" = init ] && kill $pid && n=$((n + 1)); ' +
  "done; [ $n -gt 0 ]";

/** Prints IRQ 1's count from /proc/interrupts every 2 s, for good (`irq1=N`). */
const IRQ1_EVERY_2_S =
  "while sleep 2; do set -- $(grep -m1 '^ *1:' /proc/interrupts); echo \"irq1=$2\"; done";

/**
 * Registers the sandbox's tests for `arch`. Each boots the real sandbox (QEMU TCG) even where
 * /dev/kvm exists: sandbox.sh never looks for a host KVM. Needs scripts/setup.sh to have run.
 */
export function sandboxTests(arch: Arch): void {
  const sandbox = ["scripts/sandbox.sh", "--arch", arch.name];
  const tag = arch.name === "x86_64" ? "sandbox" : `sandbox (${arch.name})`;

  Deno.test(`${tag}: piped stdin reaches the command, which sees EOF, /dev/kvm and returns its status`, async () => {
    const { code, stdout, context } = await run([
      ...sandbox,
      "--",
      "sh",
      "-c",
      'read a; read b; echo "got:$a:$b"; test -c /dev/kvm && echo kvm-ok; exit 7',
    ], { input: "one\ntwo\n" });
    match(stdout, /got:one:two\n/, context);
    match(stdout, /kvm-ok\n/, context);
    equal(code, 7, context);
  });

  Deno.test({
    name: `${tag}: a command past --timeout is stopped with 124, its threads listed`,
    ignore: !arch.sharedCases,
  }, async () => {
    const { code, stdout, context } = await run([
      ...sandbox,
      "--timeout",
      "3",
      "--",
      "sleep",
      "600",
    ]);
    equal(code, 124, context);
    match(stdout, /the command ran past 3 s/, context);
    // The stuck command, with where it sleeps in the kernel and its system call (nanosleep).
    match(stdout, new RegExp(`\\d+/\\d+ sleep S \\S+ \\[${arch.nanosleep} `), context);
    match(stdout, /sysrq: Show Blocked State/, context);
  });

  Deno.test(`${tag}: a kernel that stops its heartbeat ${arch.nmi ? "gets an NMI, then is" : "is"} stopped with 125`, async () => {
    // Killing init's heartbeat loop looks, from the host, like a kernel that stopped.
    const { code, stdout, stderr, context } = await run(
      // By hand, not with pkill: procps may be missing (a minimal image) and Debian 13's
      // busybox-static has no pkill. PID 1 is left alone (it would ignore the signal anyway); if
      // nothing was killed, the command ends at once instead of sleeping.
      // Meanwhile it prints IRQ 1's count (the i8042's on x86) every 2 s, for the key press.
      [...sandbox, "--", "sh", "-c", KILL_HEARTBEAT + " && " + IRQ1_EVERY_2_S],
      { env: { DENOVMM_SANDBOX_STALE_S: "10" } },
    );
    equal(code, 125, context);
    if (arch.nmi) {
      match(stderr, /no heartbeat from the VM for \d+ s; sending it an NMI/, context);
      match(stdout, /NMI received/, context); // the sandbox's kernel got it
      // And the key press: IRQ 1's count went up while the command ran.
      const irq1 = [...stdout.matchAll(/^irq1=(\d+)\r?$/gm)].map((m) => Number(m[1]));
      ok(irq1.length > 1 && irq1[irq1.length - 1] > irq1[0], `IRQ 1 counts ${irq1}\n${context}`);
    } else {
      match(stderr, /no heartbeat from the VM for \d+ s \(arm64: no NMI to send\)/, context);
    }
    match(stderr, /the VM's kernel stopped/, context);
    // QEMU's view of the CPU and (x86) its local APIC, printed before the VM is stopped.
    match(stderr, /QEMU's monitor on the stopped VM:\n/, context);
    match(stderr, arch.nmi ? /RIP=[0-9a-f]{16}[\s\S]*LVT0/ : /PC=[0-9a-f]{16}/, context);
  });

  Deno.test({
    name: `${
      arch.name === "x86_64" ? "with-kvm" : "with-kvm (arm64)"
    }: a sandbox whose kernel dies runs the command once more, on the same input`,
    ignore: !arch.sharedCases,
  }, async () => {
    const marker = `${repo}/.cache/with-kvm-retry-${arch.name}-${Deno.pid}`;
    const script = `read l; echo "got:$l"; if [ ! -e ${marker} ]; then touch ${marker}; sync; ` +
      `echo c > /proc/sysrq-trigger; fi; echo second-run; exit 3`;
    try {
      const { code, stdout, stderr, context } = await run(
        ["scripts/with-kvm.sh", "sh", "-c", script],
        { input: "the-input\n", env: { DENOVMM_SANDBOX: "1", DENOVMM_ARCH: arch.name } },
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

  const suiteTag = arch.name === "x86_64" ? "kvm suite" : "kvm suite (arm64)";
  /** A suite of test files (name → body) in the work share, as a suite's must be; in tests/,
   * since Deno runs nothing in .cache/. Runs `kvm_suite.sh` on it, then removes it. */
  async function fixtureSuite(files: Record<string, string>) {
    const dir = `tests/scripts/.fixture-kvm-suite-${Deno.pid}`;
    await Deno.mkdir(`${repo}/${dir}`, { recursive: true });
    try {
      for (const [name, body] of Object.entries(files)) {
        await Deno.writeTextFile(
          `${repo}/${dir}/${name}_test.ts`,
          `Deno.test("${name}", () => {${body}});\n`,
        );
      }
      const result = await run(["scripts/kvm_suite.sh", dir], {
        env: { DENOVMM_SANDBOX: "1", DENOVMM_ARCH: arch.name },
      });
      const runs = (name: string) =>
        result.stdout.match(new RegExp(`running 1 test from .*/${name}_test`, "g"))?.length ?? 0;
      return { ...result, dir, runs };
    } finally {
      await Deno.remove(`${repo}/${dir}`, { recursive: true }).catch(() => {});
    }
  }
  const CRASH = `Deno.writeTextFileSync("/proc/sysrq-trigger", "c");`;

  Deno.test({
    name:
      `${suiteTag}: after the sandbox's kernel dies, the next sandbox runs only the files without a status`,
    ignore: !arch.sharedCases,
  }, async () => {
    // a kills the sandbox's kernel the first time it runs, b passes, c fails.
    const marker = `${repo}/.cache/kvm-suite-died-${Deno.pid}`;
    try {
      const { code, stdout, stderr, context, dir, runs } = await fixtureSuite({
        a: `try { Deno.statSync("${marker}"); } catch { Deno.writeTextFileSync("${marker}", ""); ${CRASH} }`,
        b: "",
        c: `throw new Error("c fails");`,
      });
      equal(code, 1, context); // c's failure, after a second sandbox
      match(
        stderr,
        /kvm suite: the sandbox's kernel died \(not a result of the tests; death 1\); 0 of 3 files done, going on in a new sandbox/,
        context,
      );
      deepEqual([runs("a"), runs("b"), runs("c")], [2, 1, 1], context);
      match(stdout, new RegExp(`kvm suite: 3 files, 2 passed, failed: ${dir}/c_test.ts`), context);
    } finally {
      await Deno.remove(marker).catch(() => {});
    }
  });

  Deno.test({
    name:
      `${suiteTag}: a file that kills the sandbox's kernel every time ends the suite with 125 after three deaths in a row`,
    ignore: !arch.sharedCases,
  }, async () => {
    // b comes after a, which never lets it run.
    const { code, stderr, context, runs } = await fixtureSuite({ a: CRASH, b: "" });
    equal(code, 125, context);
    deepEqual([runs("a"), runs("b")], [3, 0], context);
    match(
      stderr,
      /kvm suite: the sandbox's kernel died 3 times, the last 3 with no file finished; giving up/,
      context,
    );
  });
}
