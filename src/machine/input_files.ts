/** Reading the files the user names (kernel, initrd), with one clear line when one is unfit. */
import { type FileSource, isElf } from "../boot/elf.ts";
import { cString, errno, libc, O_CLOEXEC, O_RDONLY, strerror } from "../../ffi/libc.ts";

export class InputFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputFileError";
  }
}

/** An open input file read on demand (FileSource); `close` once the guest is loaded. */
export interface OpenInputFile extends FileSource {
  /** The open descriptor: reads at an offset (pread) may also run on another thread. */
  readonly fd: number;
  close(): void;
}

/** Open `path` for reads on demand, after the checks every input file gets. */
export function openInputFile(path: string, what: string): OpenInputFile {
  const size = checkInputFile(path, what);
  // libc's open, not Deno's: reads at an offset need the descriptor itself (see kernel_copy.ts).
  const fd = libc.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new InputFileError(`${what} ${path}: cannot read: ${strerror(errno())}`);
  let open = true;
  return {
    fd,
    length: size,
    readInto(offset: number, into: Uint8Array): void {
      for (let done = 0; done < into.length;) {
        const rest = into.subarray(done);
        const n = Number(libc.pread(fd, rest, BigInt(rest.length), BigInt(offset + done)));
        if (n < 0) {
          throw new InputFileError(`${what} ${path}: cannot read: ${strerror(errno())}`);
        }
        if (n === 0) {
          throw new InputFileError(`${what} ${path}: ends early (changed while being read?)`);
        }
        done += n;
      }
    },
    close: () => {
      if (open) libc.close(fd);
      open = false;
    },
  };
}

/** How much of a kernel to read up front: the ELF and program headers, with room to spare. */
const KERNEL_HEAD_BYTES = 64 * 1024;

/**
 * A kernel for loadLinux: a vmlinux (ELF) as its head plus the open file, whose segments are
 * then read straight into guest RAM; a bzImage (a few MiB, parsed whole) read into memory.
 */
export function openKernelFile(
  path: string,
): { kernel: Uint8Array | { head: Uint8Array; source: OpenInputFile }; close(): void } {
  const file = openInputFile(path, "kernel");
  try {
    const head = new Uint8Array(Math.min(KERNEL_HEAD_BYTES, file.length));
    file.readInto(0, head);
    if (isElf(head)) return { kernel: { head, source: file }, close: file.close };
    const whole = new Uint8Array(file.length);
    file.readInto(0, whole);
    file.close();
    return { kernel: whole, close: () => {} };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The checks every input file gets; returns its size. */
function checkInputFile(path: string, what: string): number {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputFileError(`${what} ${path}: no such file`);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new InputFileError(`${what} ${path}: permission denied`);
    }
    throw new InputFileError(`${what} ${path}: ${(e as Error).message}`);
  }
  if (info.isDirectory) throw new InputFileError(`${what} ${path}: is a directory, not a file`);
  if (info.size === 0) throw new InputFileError(`${what} ${path}: file is empty`);
  return info.size;
}
