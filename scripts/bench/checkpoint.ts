/**
 * What a bench run has measured so far, section by section (boot, exits, ...), kept on disk so
 * that when the sandbox's kernel dies under a run (the TCG fault with two CPUs, README "The KVM
 * sandbox") and scripts/with-kvm.sh starts the same run again, the second try measures only
 * what the first did not finish. A section is kept whole or not at all, so each of its rows
 * still pairs denovmm with a peer measured in the same sandbox boot.
 *
 * The run's id (DENOVMM_BENCH_RUN, set by scripts/bench.sh and passed into the sandbox) tells a
 * retry of this run from a later run, whose sections are all measured again.
 */

/** What one finished section left: its rows, in the order they were made, and its failures. */
export interface SectionResult<R> {
  rows: R[];
  failures: string[];
}

interface Saved<R> {
  run: string;
  sections: Record<string, SectionResult<R>>;
}

export class Checkpoint<R> {
  readonly #path: string;
  readonly #run: string;
  #saved: Saved<R>;

  /** No `run` (no id): nothing is read or written, every section runs. */
  constructor(path: string, run: string | undefined) {
    this.#path = path;
    this.#run = run ?? "";
    this.#saved = { run: this.#run, sections: {} };
    if (!run) return;
    try {
      const old = JSON.parse(Deno.readTextFileSync(path)) as Saved<R>;
      if (old?.run === run && old.sections && typeof old.sections === "object") this.#saved = old;
    } catch {
      // None yet, or unreadable: this run starts from nothing.
    }
  }

  /** The section as this run's earlier try finished it, if it did. */
  restore(name: string): SectionResult<R> | undefined {
    return this.#run ? this.#saved.sections[name] : undefined;
  }

  /** Records a finished section (written at once: the kernel may die in the next one). */
  save(name: string, result: SectionResult<R>): void {
    if (!this.#run) return;
    this.#saved.sections[name] = result;
    Deno.writeTextFileSync(this.#path, JSON.stringify(this.#saved));
  }

  /** The run is over and reported: a later retry has nothing to resume. */
  clear(): void {
    if (!this.#run) return;
    try {
      Deno.removeSync(this.#path);
    } catch {
      // Never written (no section finished).
    }
  }
}
