// The console on a real terminal (a pty from script(1)): raw mode, keys reach the guest's
// shell, Ctrl-A x quits a running guest, and the terminal's settings are restored after.
import { equal, ok } from "../assert.ts";
import { REPO } from "./guest_runner.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("tty console: typed commands run, Ctrl-A x quits, the terminal is restored", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "denovmm-tty-" });
  const inner = `stty -g > ${tmp}/before; ` +
    `'${Deno.execPath()}' run -A '${REPO}main.ts' run; echo "denovmm-status=$?"; ` +
    `stty -g > ${tmp}/after`;
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
    await waitFor("denovmm guest ready");
    await writer.write(encoder.encode("echo tty-$((6*7))\r"));
    await waitFor("tty-42");
    await writer.write(encoder.encode("\x01x"));
    await waitFor("denovmm-status=");
    await writer.close();
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      output += decoder.decode(value);
    }
    await child.status;
    ok(/denovmm-status=0\b/.test(output), `Ctrl-A x exits 0:\n${output}`);
    equal(
      await Deno.readTextFile(`${tmp}/after`),
      await Deno.readTextFile(`${tmp}/before`),
      "terminal settings restored",
    );
  } finally {
    clearTimeout(timer);
    await Deno.remove(tmp, { recursive: true });
  }
});
