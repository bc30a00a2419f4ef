/**
 * Runs denovmm as a user would (a subprocess with piped stdin) and collects what it printed.
 * The default guest comes from .cache/guest, or .cache/arm64/guest on arm64 (scripts/setup.sh); a
 * missing one fails the test.
 */
const repo = new URL("../..", import.meta.url).pathname;
export const REPO = repo;
/** The default guest of the architecture this runs on (KVM runs guests of its own kind). */
export const GUEST_DIR = Deno.build.arch === "aarch64"
  ? `${repo}.cache/arm64/guest`
  : `${repo}.cache/guest`;

export interface GuestRun {
  status: number;
  stdout: string;
  stderr: string;
}

export interface BootOptions {
  /** Arguments after `denovmm` (e.g. ["run", "-m", "256M"]). */
  args: string[];
  /** Bytes for the guest's console; stdin is closed after them (EOF). */
  input?: string;
  /** The program to run instead of `deno run -A main.ts` (the compiled binary). */
  binary?: string;
  env?: Record<string, string>;
  clearEnv?: boolean;
  timeoutMs?: number;
  /** A command prefix, e.g. ["ip", "netns", "exec", NS]. */
  wrap?: string[];
  /** Send `input` only once this text has appeared on stdout (as a person would type). */
  inputAfter?: string;
}

const decoder = new TextDecoder();

export async function runDenovmm(opts: BootOptions): Promise<GuestRun> {
  let [cmd, args] = opts.binary
    ? [opts.binary, opts.args]
    : [Deno.execPath(), ["run", "-A", `${repo}main.ts`, ...opts.args]];
  if (opts.wrap) [cmd, args] = [opts.wrap[0], [...opts.wrap.slice(1), cmd, ...args]];
  const child = new Deno.Command(cmd, {
    args,
    cwd: repo,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
    clearEnv: opts.clearEnv,
  }).spawn();
  let threads = "";
  const timer = setTimeout(() => {
    // A hung run says where each of denovmm's threads was: in KVM_RUN (the guest is stuck), in
    // a write (the console pipe), or running (spinning in user space).
    threads = threadStates(child.pid);
    child.kill("SIGKILL");
  }, opts.timeoutMs ?? 180_000);
  try {
    const w = child.stdin.getWriter();
    const send = async () => {
      await w.write(new TextEncoder().encode(opts.input ?? ""));
      await w.close();
    };
    if (opts.inputAfter === undefined) {
      await send();
      const out = await child.output();
      return {
        status: out.code,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr) + threads,
      };
    }
    const errText = new Response(child.stderr).text();
    let stdout = "";
    let sent = false;
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      if (!sent && stdout.includes(opts.inputAfter)) {
        sent = true;
        await send();
      }
    }
    if (!sent) await send().catch(() => {});
    return { status: (await child.status).code, stdout, stderr: (await errText) + threads };
  } finally {
    clearTimeout(timer);
  }
}

/** Each thread of `pid`: name, state and the system call it is in (syscall 16 = ioctl). */
export function threadStates(pid: number): string {
  const lines = [`\n--- timed out; threads of ${pid}:`];
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const at = `/proc/${pid}/task/${t.name}`;
      const read = (f: string) => {
        try {
          return Deno.readTextFileSync(`${at}/${f}`).trim();
        } catch {
          return "?";
        }
      };
      const state = read("stat").replace(/^.*\) /, "").split(" ")[0];
      lines.push(`${t.name} ${read("comm")} state ${state} syscall ${read("syscall")}`);
    }
  } catch (e) {
    lines.push(`(cannot read: ${(e as Error).message})`);
  }
  return lines.join("\n") + "\n";
}

export function kernelRelease(): string {
  return Deno.readTextFileSync(`${GUEST_DIR}/kernel-release`).trim();
}

/** The value of a /proc/meminfo line (kB) in the guest's output. */
export function memTotalKiB(stdout: string): number {
  const m = /MemTotal:\s+(\d+) kB/.exec(stdout);
  if (!m) throw new Error(`no MemTotal in guest output:\n${stdout}`);
  return Number(m[1]);
}

/** MemTotal is RAM less what the kernel keeps for itself: within 25% below -m, never above. */
export function assertMemTotal(stdout: string, ramBytes: number): void {
  const kib = memTotalKiB(stdout);
  const mib = ramBytes / (1024 * 1024);
  if (kib * 1024 > ramBytes) throw new Error(`MemTotal ${kib} kB exceeds -m (${mib} MiB)`);
  if (kib * 1024 <= ramBytes * 0.75) {
    throw new Error(`MemTotal ${kib} kB is far below -m (${mib} MiB)`);
  }
}

/**
 * Run denovmm from source with `args` and expect what bad input gets: exit status 1, one line on
 * stderr that starts "denovmm: " and matches `pattern`, no stack trace, and no guest output.
 */
export async function failsWithOneLine(args: string[], pattern: RegExp): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: repo,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(out.stderr);
  const what = `denovmm ${args.join(" ")}: stderr ${JSON.stringify(stderr)}`;
  if (out.code !== 1) throw new Error(`exit status ${out.code}, not 1: ${what}`);
  if (stderr.includes("    at ")) throw new Error(`stack trace: ${what}`);
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1 || !lines[0].startsWith("denovmm: ") || !pattern.test(lines[0])) {
    throw new Error(`expected one line "denovmm: ..." matching ${pattern}: ${what}`);
  }
  if (out.stdout.length !== 0) throw new Error(`the guest ran: ${what}`);
}

/** SHA-256 of `bytes`, in hex. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A disk image of `size` random bytes in `dir`, for the guest to checksum. */
export async function randomImage(
  dir: string,
  name: string,
  size: number,
): Promise<[string, Uint8Array<ArrayBuffer>]> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return [path, bytes];
}
