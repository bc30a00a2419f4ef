/**
 * Where a VMM's own memory goes: runs one VM (any command whose guest prints BENCH-MARKER, as
 * the bench's /init does), and at the marker prints the process's peak and current RSS, the
 * guest RAM mapping's resident share, and the rest by kind of mapping (the executable's file
 * pages, anonymous memory, thread stacks, shared memory), largest first.
 *
 *   deno run -A scripts/bench/rss_probe.ts [--env K=V ...] -- CMD [ARGS...]
 *
 * Run where KVM is (scripts/with-kvm.sh). `--env` sets variables for the VMM only, to compare
 * settings (e.g. MALLOC_ARENA_MAX=2) in one sandbox boot.
 */
const sep = Deno.args.indexOf("--");
const env: Record<string, string> = {};
for (let i = 0; i < sep; i++) {
  if (Deno.args[i] === "--env") {
    const [k, ...v] = Deno.args[++i].split("=");
    env[k] = v.join("=");
  }
}
const cmd = Deno.args.slice(sep + 1);
const RAM_MIN = 64 * 1024 * 1024;

const child = new Deno.Command(cmd[0], {
  args: cmd.slice(1),
  env,
  stdin: "null",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
let out = "";
const decoder = new TextDecoder();
let report = "";
for await (const chunk of child.stdout) {
  out += decoder.decode(chunk, { stream: true });
  if (!report && out.includes("BENCH-MARKER")) report = probe(child.pid);
}
await child.status;
console.log(report || "no marker: " + out.slice(-500));

function probe(pid: number): string {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1]);
  const kinds = new Map<string, number>();
  let guest = 0;
  for (const block of Deno.readTextFileSync(`/proc/${pid}/smaps`).split(/\n(?=[0-9a-f]+-)/)) {
    const head = block.split("\n")[0].trim().split(/\s+/);
    const size = Number(/^Size:\s+(\d+)/m.exec(block)?.[1] ?? 0);
    const rss = Number(/^Rss:\s+(\d+)/m.exec(block)?.[1] ?? 0);
    if (size * 1024 >= RAM_MIN && rss > guest) guest = rss;
    const name = head[5] ?? "";
    const kind = name === ""
      ? "anonymous"
      : name.startsWith("[")
      ? name
      : name.startsWith("/dev/") || name.startsWith("anon_inode")
      ? name.replace(/\d+/g, "N")
      : name.split("/").pop()!;
    kinds.set(kind, (kinds.get(kind) ?? 0) + rss);
  }
  // The guest mapping is anonymous too: take it out of that line.
  kinds.set("anonymous", (kinds.get("anonymous") ?? 0) - guest);
  const lines = [
    `VmHWM ${(kib("VmHWM") / 1024).toFixed(1)} MiB, VmRSS ${
      (kib("VmRSS") / 1024).toFixed(1)
    } MiB, ` +
    `guest RAM resident ${(guest / 1024).toFixed(1)} MiB, RSS less guest ${
      ((kib("VmRSS") - guest) / 1024).toFixed(1)
    } MiB (peak less guest ${((kib("VmHWM") - guest) / 1024).toFixed(1)}), threads ${
      /Threads:\s+(\d+)/.exec(status)?.[1]
    }`,
  ];
  for (const [k, v] of [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 8)) {
    lines.push(`  ${k.padEnd(24)} ${(v / 1024).toFixed(1)} MiB`);
  }
  return lines.join("\n");
}
