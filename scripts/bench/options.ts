/**
 * `deno task bench`'s arguments (scripts/bench.ts, scripts/bench.sh): pure, so that every error
 * is testable (tests/scripts/bench_test.ts).
 *
 *   [--arch x86_64|arm64] [--rounds N] [--only FIGURES] [--out PATH] [--prepare-only|--prepared]
 *
 * --prepare-only and --prepared split a run in two (scripts/bench.sh): the host builds what the
 * sandbox cannot (the executable, whose bundler may need the npm registry; on arm64 the guest
 * program, with a cross compiler, and the executable, with bash), then the sandbox measures
 * without building anything.
 */
import { parseArgs } from "../../src/cli/parse_args.ts";

export type BenchArch = "x86_64" | "arm64";

/** The figures each architecture's bench has (README "Benchmarks"). */
export const FIGURES: Record<BenchArch, readonly string[]> = {
  x86_64: ["boot", "exits", "disk", "startup"],
  arm64: ["boot", "exits"],
};

export interface BenchOptions {
  arch: BenchArch;
  rounds: number;
  only: Set<string>;
  out: string;
  /** Build the guest program, the initramfs and the executable, then stop (host side). */
  prepareOnly: boolean;
  /** Everything is built already (the arm64 sandbox, which has no compiler and no bash). */
  prepared: boolean;
}

export class BenchUsageError extends Error {}

/** x86_64 (also amd64, x86) or arm64 (also aarch64), as with-kvm.sh and sandbox.sh spell it. */
export function benchArch(name: string): BenchArch {
  switch (name) {
    case "x86_64":
    case "amd64":
    case "x86":
      return "x86_64";
    case "arm64":
    case "aarch64":
      return "arm64";
  }
  throw new BenchUsageError(`--arch ${name}: expected x86_64 or arm64`);
}

/** `outDir`: where the results go by default (results.json, or results-arm64.json). */
export function parseBenchArgs(args: string[], outDir: string): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        arch: { type: "string", default: "x86_64" },
        rounds: { type: "string", default: "5" },
        only: { type: "string" },
        out: { type: "string" },
        "prepare-only": { type: "boolean", default: false },
        prepared: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    throw new BenchUsageError((e as Error).message.split("\n")[0]);
  }
  const arch = benchArch(values.arch!);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new BenchUsageError(`--rounds ${values.rounds}: expected a positive integer`);
  }
  const figures = FIGURES[arch];
  const only = new Set((values.only ?? figures.join(",")).split(",").filter((s) => s !== ""));
  for (const f of only) {
    if (!figures.includes(f)) {
      throw new BenchUsageError(`--only ${f}: the ${arch} bench has ${figures.join(", ")}`);
    }
  }
  if (values["prepare-only"] && values.prepared) {
    throw new BenchUsageError("--prepare-only and --prepared exclude each other");
  }
  const file = arch === "x86_64" ? "results.json" : `results-${arch}.json`;
  return {
    arch,
    rounds,
    only,
    out: values.out ?? `${outDir}/${file}`,
    prepareOnly: values["prepare-only"]!,
    prepared: values.prepared!,
  };
}
