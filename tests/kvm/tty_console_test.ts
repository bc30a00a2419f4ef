// The console on a real terminal (a pty from script(1)): raw mode, keys reach the guest's
// shell, Ctrl-A x quits a running guest, and the terminal's settings are restored after.
import { equal, ok } from "../assert.ts";
import { REPO } from "./guest_runner.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface PtyControl {
  waitFor(text: string): Promise<void>;
  type(text: string): Promise<void>;
  output(): string;
}

/**
 * denovmm on the pty of script(1): the shell there records the terminal settings before and
 * after, prints denovmm's pid (it execs into it) and its exit status.
 */
async function ptySession(
  drive: (s: PtyControl) => Promise<void>,
): Promise<{ output: string; before: string; after: string }> {
  const tmp = await Deno.makeTempDir({ prefix: "denovmm-tty-" });
  const inner = `stty -g > ${tmp}/before; ` +
    `sh -c 'echo "denovmm-pid=$$"; exec "$0" run -A "$1" run' '${Deno.execPath()}' '${REPO}main.ts'; ` +
    `echo "denovmm-status=$?"; stty -g > ${tmp}/after`;
  const child = new Deno.Command("script", {
    args: ["-q", "-e", "-c", inner, "/dev/null"],
    cwd: REPO,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
  const writer = child.stdin.getWriter();
  let output = "";
  const reader = child.stdout.getReader();
  const waitFor = async (needle: string) => {
    while (!output.includes(needle)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`output ended before "${needle}":\n${output}`);
      output += decoder.decode(value);
    }
  };
  try {
    await drive({ waitFor, type: (t) => writer.write(encoder.encode(t)), output: () => output });
    await waitFor("denovmm-status=");
    await writer.close();
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      output += decoder.decode(value);
    }
    await child.status;
    return {
      output,
      before: await Deno.readTextFile(`${tmp}/before`),
      after: await Deno.readTextFile(`${tmp}/after`),
    };
  } finally {
    clearTimeout(timer);
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("tty console: typed commands run, Ctrl-A x quits, the terminal is restored", async () => {
  const r = await ptySession(async ({ waitFor, type }) => {
    await waitFor("denovmm guest ready");
    await type("echo tty-$((6*7))\r");
    await waitFor("tty-42");
    await type("\x01x");
  });
  ok(/denovmm-status=0\b/.test(r.output), `Ctrl-A x exits 0:\n${r.output}`);
  equal(r.after, r.before, "terminal settings restored");
});

Deno.test("tty console: SIGTERM ends denovmm with 143 and restores the terminal", async () => {
  const r = await ptySession(async ({ waitFor, output }) => {
    await waitFor("denovmm guest ready");
    const pid = Number(/denovmm-pid=(\d+)/.exec(output())?.[1]);
    ok(pid > 0, output());
    Deno.kill(pid, "SIGTERM");
  });
  ok(/denovmm-status=143\b/.test(r.output), `SIGTERM exits 143:\n${r.output}`);
  equal(r.after, r.before, "terminal settings restored");
});
