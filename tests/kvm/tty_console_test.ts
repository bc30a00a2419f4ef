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
  env: Record<string, string> = {},
): Promise<{ output: string; before: string; after: string }> {
  const tmp = await Deno.makeTempDir({ prefix: "denovmm-tty-" });
  const inner = `stty -g > ${tmp}/before; ` +
    `sh -c 'echo "denovmm-pid=$$"; exec "$0" run -A "$1" run' '${Deno.execPath()}' '${REPO}main.ts'; ` +
    `echo "denovmm-status=$?"; stty -g > ${tmp}/after`;
  const child = new Deno.Command("script", {
    args: ["-q", "-e", "-c", inner, "/dev/null"],
    cwd: REPO,
    env,
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

// Keys typed while the guest idles reach it at the next tick of vCPU 0's slices (20 ms), which
// look at stdin themselves (StdinPump.readBetweenTicks): a read waiting on Deno's blocking pool
// wakes the event loop where the slices' probe cannot see it, and each line then waited for the
// slice's clock (a second). Counted, not timed: each line served so ends a slice for work
// (DENOVMM_STATS's sliceIdle or sliceWoken), where lines left to the clock end none.
Deno.test("tty console: each typed line ends an idle guest's slice at the tick that sees it", async () => {
  const LINES = 8;
  const trips: number[] = [];
  const r = await ptySession(async ({ waitFor, type }) => {
    await waitFor("denovmm guest ready");
    // The shell's prompt settles before the first line.
    await type("echo settled-$((2*2))\r");
    await waitFor("settled-4");
    for (let i = 1; i <= LINES; i++) {
      const t = performance.now();
      await type(`echo line-$((${i}*3))\r`);
      await waitFor(`line-${i * 3}\r`);
      trips.push(Math.round(performance.now() - t));
    }
    await type("\x01x");
  }, { DENOVMM_STATS: "1" });
  ok(/denovmm-status=0\b/.test(r.output), `Ctrl-A x exits 0:\n${r.output}`);
  const stat = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(r.output)?.[1] ?? NaN);
  const forWork = stat("sliceIdle") + stat("sliceWoken");
  ok(
    forWork >= LINES,
    `${forWork} slices ended for work (sliceClock ${stat("sliceClock")}) for ${LINES} lines; ` +
      `round trips ${trips.join(", ")} ms`,
  );
  console.log(`round trips ${trips.join(", ")} ms; slices for work ${forWork}`);
});
