/**
 * What the build scripts (build_guest.ts, build_arm64.ts) share: running a tool, checking a
 * path, hashing inputs for a stamp, undoing a compressor.
 */

/** Runs a command and returns its stdout; throws with its stderr on failure. */
export async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The hex SHA-256 of the parts, concatenated. */
export async function sha256(...parts: Uint8Array[]): Promise<string> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Runs `tool -dc` over `input` (xz, zstd or gzip) and returns what it writes. `what` names the
 * input in errors.
 */
export async function decompress(
  tool: string,
  input: Uint8Array,
  what: string,
  args: string[] = [],
): Promise<Uint8Array<ArrayBuffer>> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(tool, {
      args: ["-dc", ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const pkg = { xz: "xz-utils", zstd: "zstd", gzip: "gzip" }[tool] ?? tool;
    throw new Error(`${tool} not found: install ${pkg} (scripts/setup.sh does)`, { cause: e });
  }
  const feeding = (async () => {
    const w = child.stdin.getWriter();
    await w.write(input);
    await w.close();
  })();
  const [out] = await Promise.all([child.output(), feeding]);
  if (!out.success) {
    throw new Error(
      `${tool} -dc failed on ${what}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return out.stdout;
}

/** Writes `data` to `path` through a temporary file, so a run cut short leaves no half file. */
export async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  await Deno.writeFile(`${path}.tmp`, data);
  await Deno.rename(`${path}.tmp`, path);
}
