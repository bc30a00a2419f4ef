/**
 * The pieces every ACPI table shares (ACPI 6.5 §5.2): the 36-byte system description table
 * header with its checksum, and the Generic Address Structure that FADT fields use to name a
 * register. A table is built as its body first, then wrapped, because the header carries the
 * whole table's length and a checksum over all of it.
 *
 * @module
 */

/** sizeof(struct acpi_table_header). */
export const SDT_HEADER_SIZE = 36;
/** OEM ID (6 bytes) and OEM table ID prefix every denovmm table carries. */
export const OEM_ID = "DENOVM";
/** Creator ID and revision: the tool that made the table (iasl writes "INTL" here). */
const CREATOR_ID = "DNVM";
const CREATOR_REVISION = 1;

/** The byte that makes all bytes of `bytes` sum to 0 mod 256 (with its own slot still 0). */
export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum += b;
  return (256 - (sum & 0xff)) & 0xff;
}

/** Writes `text` as ASCII at `at`, padded with spaces to `width` bytes. */
export function ascii(bytes: Uint8Array, at: number, text: string, width = text.length): void {
  if (text.length > width || !/^[\x20-\x7e]*$/.test(text)) {
    throw new RangeError(`"${text}" is not up to ${width} printable ASCII characters`);
  }
  for (let i = 0; i < width; i++) bytes[at + i] = i < text.length ? text.charCodeAt(i) : 0x20;
}

/**
 * A whole table: header (signature, length, revision, checksum, OEM and creator fields) and
 * `body`. The OEM table ID is "DNVM" + the signature, so each table names itself in a dump.
 */
export function systemDescriptionTable(
  signature: string,
  revision: number,
  body: Uint8Array,
): Uint8Array {
  if (!/^[A-Z0-9]{4}$/.test(signature)) throw new RangeError(`bad table signature "${signature}"`);
  const bytes = new Uint8Array(SDT_HEADER_SIZE + body.length);
  const view = new DataView(bytes.buffer);
  ascii(bytes, 0, signature);
  view.setUint32(4, bytes.length, true);
  view.setUint8(8, revision);
  ascii(bytes, 10, OEM_ID, 6);
  ascii(bytes, 16, `DNVM${signature}`, 8);
  view.setUint32(24, 1, true); // OEM revision
  ascii(bytes, 28, CREATOR_ID, 4);
  view.setUint32(32, CREATOR_REVISION, true);
  bytes.set(body, SDT_HEADER_SIZE);
  bytes[9] = checksum(bytes);
  return bytes;
}

/** Generic Address Structure address spaces (§5.2.3.2). */
export const GAS_SYSTEM_IO = 1;
/** Access sizes: 1 = byte. */
export const GAS_ACCESS_BYTE = 1;
export const GAS_SIZE = 12;

/** A register the FADT points to: one byte at an I/O port. */
export function writeIoByteRegister(view: DataView, at: number, port: number): void {
  view.setUint8(at, GAS_SYSTEM_IO);
  view.setUint8(at + 1, 8); // register width in bits
  view.setUint8(at + 2, 0); // bit offset
  view.setUint8(at + 3, GAS_ACCESS_BYTE);
  view.setBigUint64(at + 4, BigInt(port), true);
}
