/**
 * A minimal writer for the cpio "newc" format that the Linux kernel unpacks as
 * an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst),
 * gzip'd through the web-standard CompressionStream.
 */

/** One file in the archive. `mode` includes the type bits (0o100000 file, 0o40000 dir, …). */
export interface CpioEntry {
  path: string;
  mode: number;
  /** File contents, or a symlink's target. */
  data?: Uint8Array<ArrayBuffer>;
  /** Device number [major, minor] for character and block devices. */
  rdev?: [number, number];
}

const encoder = new TextEncoder();

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/** Pads to the next multiple of 4, as newc requires after the name and the data. */
function pad4(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array((4 - (n % 4)) % 4);
}

function* records(entries: CpioEntry[]): Generator<Uint8Array<ArrayBuffer>> {
  let ino = 1;
  for (const e of [...entries, { path: "TRAILER!!!", mode: 0 }] as CpioEntry[]) {
    const name = encoder.encode(e.path + "\0");
    const data = e.data ?? new Uint8Array();
    const fields = [
      ino++, // c_ino: unique, so the kernel does not treat entries as hard links
      e.mode, // c_mode
      0, // c_uid: root
      0, // c_gid
      1, // c_nlink
      0, // c_mtime: fixed, so the same inputs give the same bytes
      data.length, // c_filesize
      0, // c_devmajor
      0, // c_devminor
      e.rdev?.[0] ?? 0, // c_rdevmajor
      e.rdev?.[1] ?? 0, // c_rdevminor
      name.length, // c_namesize, with the NUL
      0, // c_check: only for the "070702" crc variant
    ];
    const header = encoder.encode("070701" + fields.map(hex8).join(""));
    yield header;
    yield name;
    yield pad4(header.length + name.length);
    yield data;
    yield pad4(data.length);
  }
}

/** Writes `entries` as a gzip'd newc archive to `path`. */
export async function writeCpioGz(path: string, entries: CpioEntry[]): Promise<void> {
  const source = ReadableStream.from(records(entries));
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  await source.pipeThrough(new CompressionStream("gzip")).pipeTo(file.writable);
}
