/**
 * A vmlinux's segments copied into guest RAM on Deno's blocking thread pool, while the main
 * thread goes on setting the VM up.
 *
 * Why: `new Worker` holds the main thread until the vCPU Worker's isolate exists (a third of a
 * second under the emulated sandbox), and copying the kernel's tens of MiB costs about as much.
 * Started before the Workers, the copy runs on a core that would otherwise wait. Each piece is one
 * pread(2) straight into the RAM mapping, all issued at once: a chain of awaits would stall while
 * the main thread is held.
 *
 * The pieces come from elfCopies (checked to lie in the file and in guest RAM); each one is
 * written through a view that GuestMemory bounds-checks. A piece the pool did not read whole
 * (an error, or a file that shrank) is read again on the main thread, whose reader reports why
 * in one line: errno of a pool thread cannot be read from here.
 */
import type { ElfLoadPiece } from "../boot/elf.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { libc } from "../../ffi/libc.ts";
import type { OpenInputFile } from "./input_files.ts";

export class KernelCopy {
  readonly #pieces: ElfLoadPiece[];
  readonly #file: OpenInputFile;
  readonly #memory: GuestMemory;
  readonly #reads: Promise<number | bigint>[];

  /** Issue every piece's read; `file` must stay open until {@link settled} resolves. */
  constructor(file: OpenInputFile, pieces: ElfLoadPiece[], memory: GuestMemory) {
    this.#file = file;
    this.#pieces = pieces;
    this.#memory = memory;
    // Every view first: a piece outside RAM throws before any read is in flight.
    const views = pieces.map((p) => memory.slice(p.gpa, p.length));
    this.#reads = pieces.map((p, i) =>
      libc.pread_async(
        file.fd,
        Deno.UnsafePointer.of(views[i]),
        BigInt(p.length),
        BigInt(p.fileOffset),
      )
    );
  }

  /** Wait for every read; redo short or failed ones here (throws InputFileError if still bad). */
  async done(): Promise<void> {
    const results = await Promise.all(this.#reads);
    results.forEach((n, i) => {
      const p = this.#pieces[i];
      if (Number(n) !== p.length) {
        this.#file.readInto(p.fileOffset, this.#memory.slice(p.gpa, p.length));
      }
    });
  }

  /** Resolves once no read is in flight (whatever their results), so the file may be closed. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#reads);
  }
}
