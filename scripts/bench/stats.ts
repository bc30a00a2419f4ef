/**
 * The bench table's arithmetic (scripts/bench.ts): medians, spans and per-round ratios, where
 * a run that gave no number (NaN) is left out rather than counted.
 */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Three significant-ish digits; "-" for no number. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return "-";
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** "median [min-max]" of the finite numbers, "-" when there are none. */
export function span(all: number[]): string {
  const xs = all.filter(Number.isFinite);
  return xs.length ? `${fmt(median(xs))} [${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}]` : "-";
}

/** denovmm/QEMU round by round (A next to its B), rounds where either failed left out. */
export function roundRatios(denovmm: number[], qemu: number[]): number[] {
  return denovmm.map((d, i) => d / qemu[i]).filter(Number.isFinite);
}

/**
 * Which of several peers' samples has the lowest median (the fastest configuration, for times):
 * its name and samples. Peers with no finite sample are passed over.
 */
export function fastest(peers: Record<string, number[]>): { name: string; samples: number[] } {
  let best: { name: string; samples: number[] } | undefined;
  let bestMedian = Infinity;
  for (const [name, samples] of Object.entries(peers)) {
    const xs = samples.filter(Number.isFinite);
    if (xs.length === 0) continue;
    const m = median(xs);
    if (m < bestMedian) best = { name, samples }, bestMedian = m;
  }
  return best ?? { name: "-", samples: [] };
}

/** b - a round by round (what one more vCPU adds, say); NaN where either run gave none. */
export function roundDiffs(a: number[], b: number[]): number[] {
  return b.map((x, i) => x - a[i]);
}

/**
 * The steady state of a run timed in chunks (the guest's `bench_chunks`): the median chunk of the
 * second half. The first chunks of a JIT-compiled VMM's run pay for its optimizing compiles
 * (under the sandbox's emulated CPU, seconds of one CPU); a peer without a JIT has none. NaN
 * for fewer than two chunks.
 */
export function steadyState(chunks: number[]): number {
  if (chunks.length < 2) return NaN;
  return median(chunks.slice(chunks.length >> 1));
}

/** `BENCH key_chunks_us=a,b,...` lines of a guest's output, by key ("pio", "mmio"). */
export function chunkLines(out: string): Record<string, number[]> {
  const chunks: Record<string, number[]> = {};
  for (const m of out.matchAll(/^BENCH ([a-z]+)_chunks_us=([\d.,]+)$/gm)) {
    chunks[m[1]] = m[2].split(",").map(Number);
  }
  return chunks;
}
