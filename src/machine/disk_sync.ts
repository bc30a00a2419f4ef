/**
 * The writable disk images, opened once more on the main thread only to flush them when the
 * VM ends. fdatasync through any descriptor of a file writes back all of that file's dirty
 * pages, whichever descriptor (here, the I/O Worker's) wrote them; opening them at start keeps
 * the right files even if their paths are renamed or replaced while the VM runs.
 *
 * @module
 */
import { cString, errno, errnoName, libc, O_CLOEXEC, O_RDONLY, strerror } from "../../ffi/libc.ts";

export class DiskSync {
  readonly #disks: { path: string; fd: number }[] = [];

  /** Opens each path read-only (fdatasync needs no write access); throws naming the first that fails. */
  constructor(paths: string[]) {
    for (const path of paths) {
      const fd = libc.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
      if (fd === -1) {
        const e = errno();
        this.close();
        throw new Error(`disk ${path}: cannot open it to flush: ${strerror(e)}`);
      }
      this.#disks.push({ path, fd });
    }
  }

  get count(): number {
    return this.#disks.length;
  }

  /** fdatasync every disk; returns what failed, one phrase per disk (empty when all went well). */
  flush(): string[] {
    const failed: string[] = [];
    for (const d of this.#disks) {
      if (libc.fdatasync(d.fd) === -1) {
        const e = errno();
        failed.push(`disk ${d.path} could not be flushed: ${errnoName(e)} (${strerror(e)})`);
      }
    }
    return failed;
  }

  close(): void {
    for (const d of this.#disks.splice(0)) libc.close(d.fd);
  }
}
