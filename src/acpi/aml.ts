/**
 * ACPI Machine Language encoder (ACPI 6.x chapter 20, resource descriptors from §6.4): just
 * enough AML for a VMM's DSDT, built from pure functions that return byte arrays and compose.
 *
 * Covered: name paths, integers, strings, EISA IDs, Name, Scope, Device, Method, Return,
 * Package, Buffer, and the resource descriptors a PC's `_CRS` uses (IO, IRQNoFlags,
 * WordBusNumber, WordIO, DWordMemory, QWordMemory, Memory32Fixed, the End Tag). Not covered:
 * expressions, operation regions, fields, locals and arguments: a VMM's tables describe
 * fixed hardware, so every method returns a constant.
 *
 * Every function checks its arguments and throws RangeError for a value the encoding cannot
 * hold, so a mistake fails at build time instead of as a guest that ignores the table.
 *
 * @example
 * ```ts
 * const dsdtBody = scope(
 *   "\\_SB_",
 *   device(
 *     "PCI0",
 *     name("_HID", eisaId("PNP0A08")),
 *     name("_CRS", resourceTemplate(wordBusNumber(0, 0xff), io(0xcf8, 0xcf8, 1, 8))),
 *     method("_STA", 0, false, returnOp(integer(0x0f))),
 *   ),
 * );
 * ```
 */

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82;
const ROOT_CHAR = 0x5c;
const PARENT_PREFIX_CHAR = 0x5e;
const RETURN_OP = 0xa4;
const NULL_NAME = 0x00;

/** The largest length a 4-byte PkgLength holds: 4 + 8 + 8 + 8 bits. */
const PKG_LENGTH_MAX = 2 ** 28 - 1;

/** The bytes of `parts` one after the other: how a TermList is a sequence of terms. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A zeroed array of `size` bytes whose little-endian fields `fill` writes through a DataView. */
function fields(size: number, fill: (v: DataView) => void): Uint8Array {
  const out = new Uint8Array(size);
  fill(new DataView(out.buffer));
  return out;
}

/**
 * Two 32-bit halves: DataView's only 64-bit setter takes a BigInt, and every value here is a
 * number already checked to be a safe integer.
 */
function setUint64(v: DataView, off: number, value: number): void {
  v.setUint32(off, value % 2 ** 32, true);
  v.setUint32(off + 4, Math.floor(value / 2 ** 32), true);
}

function checkUint(what: string, v: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${what} must be an integer in [0, 0x${max.toString(16)}], got ${v}`);
  }
}

function checkRange(what: string, min: number, max: number, limit: number): void {
  checkUint(`${what} minimum`, min, limit);
  checkUint(`${what} maximum`, max, limit);
  if (min > max) {
    throw new RangeError(
      `${what} minimum 0x${min.toString(16)} is above its maximum 0x${max.toString(16)}`,
    );
  }
}

const NAME_SEG = /^[A-Z_][A-Z0-9_]{0,3}$/;

function nameSeg(seg: string, path: string): Uint8Array {
  if (!NAME_SEG.test(seg)) {
    throw new RangeError(
      `invalid name segment "${seg}" in "${path}": 1 to 4 of A-Z 0-9 _, not starting with a digit`,
    );
  }
  return new TextEncoder().encode(seg.padEnd(4, "_"));
}

/**
 * A NameString (§20.2.2): `\` anchors at the root, each `^` climbs one scope, `.` separates
 * segments. A prefix alone (`"\\"`, `"^"`) names that scope itself (NullName).
 */
export function nameString(path: string): Uint8Array {
  const prefix = path.startsWith("\\") ? "\\" : /^\^*/.exec(path)![0];
  const rest = path.slice(prefix.length);
  const prefixBytes = new Uint8Array(prefix.length).fill(
    prefix === "\\" ? ROOT_CHAR : PARENT_PREFIX_CHAR,
  );
  if (rest === "") {
    if (prefix === "") throw new RangeError("empty name path");
    return concat(prefixBytes, Uint8Array.of(NULL_NAME));
  }
  const segs = rest.split(".").map((s) => nameSeg(s, path));
  if (segs.length > 255) {
    throw new RangeError(`name path "${path}" has ${segs.length} segments, at most 255`);
  }
  const head = segs.length === 1
    ? []
    : segs.length === 2
    ? [DUAL_NAME_PREFIX]
    : [MULTI_NAME_PREFIX, segs.length];
  return concat(prefixBytes, Uint8Array.from(head), ...segs);
}

/**
 * PkgLength (§20.2.4) for `contentLength` bytes after it. The length it encodes counts its own
 * bytes, so the encoding's size depends on the total: 6 bits in one byte, else 4 bits in the
 * lead byte (whose top two bits count the bytes that follow) plus 8 per following byte.
 */
export function pkgLength(contentLength: number): Uint8Array {
  checkUint("package content length", contentLength, PKG_LENGTH_MAX - 4);
  if (contentLength + 1 <= 0x3f) return Uint8Array.of(contentLength + 1);
  const extra = contentLength + 2 <= 0xfff ? 1 : contentLength + 3 <= 0xfffff ? 2 : 3;
  const total = contentLength + 1 + extra;
  // Little-endian from the lead byte on: the low nibble beside the byte count, then the rest.
  const lead = (extra << 6) | (total & 0x0f);
  return fields(4, (d) => d.setUint32(0, lead + (total >>> 4) * 0x100, true)).slice(0, 1 + extra);
}

/** Sizes the PkgLength before joining the parts, so an oversized package fails unallocated. */
function withPkgLength(opcode: number[], ...body: Uint8Array[]): Uint8Array {
  const length = pkgLength(body.reduce((n, p) => n + p.length, 0));
  return concat(Uint8Array.from(opcode), length, ...body);
}

/**
 * An Integer in its shortest form (§20.2.3). OnesOp is never used: it means 2^32-1 or 2^64-1
 * depending on the table revision, a trap a constant should not carry.
 */
export function integer(v: number): Uint8Array {
  checkUint("integer", v, Number.MAX_SAFE_INTEGER);
  if (v === 0) return Uint8Array.of(ZERO_OP);
  if (v === 1) return Uint8Array.of(ONE_OP);
  if (v <= 0xff) return Uint8Array.of(BYTE_PREFIX, v);
  if (v <= 0xffff) return fields(3, (d) => (d.setUint8(0, WORD_PREFIX), d.setUint16(1, v, true)));
  if (v <= 0xffffffff) {
    return fields(5, (d) => (d.setUint8(0, DWORD_PREFIX), d.setUint32(1, v, true)));
  }
  return fields(9, (d) => (d.setUint8(0, QWORD_PREFIX), setUint64(d, 1, v)));
}

/** A String (§20.2.3): AML strings are NUL-terminated ASCII, so NUL and non-ASCII are refused. */
export function string(s: string): Uint8Array {
  const bad = s.split("").findIndex((c) => c === "\0" || c > "\x7f");
  if (bad >= 0) {
    throw new RangeError(
      `string ${JSON.stringify(s)} has a non-ASCII or NUL character at index ${bad}`,
    );
  }
  return concat(Uint8Array.of(STRING_PREFIX), new TextEncoder().encode(s), Uint8Array.of(0));
}

/**
 * A compressed EISA ID ("PNP0A08"): three letters in 5 bits each ('A' = 1) then four hex
 * digits, 32 bits stored big-endian. Always a DWord, as iasl's EisaId() emits, even when a
 * shorter prefix would hold the value, so OSPM and disassemblers recognise it as an EISA ID.
 */
export function eisaId(id: string): Uint8Array {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) {
    throw new RangeError(
      `EISA ID "${id}" must be 3 uppercase letters and 4 uppercase hex digits, e.g. PNP0A08`,
    );
  }
  const letters = [0, 1, 2].reduce((acc, i) => (acc << 5) | (id.charCodeAt(i) - 0x40), 0);
  const bigEndian = fields(4, (d) => {
    d.setUint16(0, letters);
    d.setUint16(2, parseInt(id.slice(3), 16));
  });
  return concat(Uint8Array.of(DWORD_PREFIX), bigEndian);
}

/** DefName (§20.2.5.1): binds `value`, an already encoded data object, to `path`. */
export function name(path: string, value: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(NAME_OP), nameString(path), value);
}

/** DefScope (§20.2.5.1). */
export function scope(path: string, ...terms: Uint8Array[]): Uint8Array {
  return withPkgLength([SCOPE_OP], nameString(path), ...terms);
}

/** DefDevice (§20.2.5.2). */
export function device(path: string, ...terms: Uint8Array[]): Uint8Array {
  return withPkgLength([EXT_OP_PREFIX, DEVICE_OP], nameString(path), ...terms);
}

/** DefMethod (§20.2.5.2) with SyncLevel 0, the only level a method without Mutexes needs. */
export function method(
  path: string,
  argCount: number,
  serialized: boolean,
  ...terms: Uint8Array[]
): Uint8Array {
  checkUint("method argument count", argCount, 7);
  const flags = argCount | (serialized ? 1 << 3 : 0);
  return withPkgLength([METHOD_OP], nameString(path), Uint8Array.of(flags), ...terms);
}

/** DefReturn (§20.2.5.3). */
export function returnOp(value: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(RETURN_OP), value);
}

/** DefPackage (§20.2.5.4); NumElements is one byte, and VarPackage is not needed here. */
export function pkg(...elements: Uint8Array[]): Uint8Array {
  if (elements.length > 255) {
    throw new RangeError(`package has ${elements.length} elements, at most 255`);
  }
  return withPkgLength([PACKAGE_OP], Uint8Array.of(elements.length), ...elements);
}

/** DefBuffer (§20.2.5.4) holding `bytes`. */
export function buffer(bytes: Uint8Array): Uint8Array {
  return withPkgLength([BUFFER_OP], integer(bytes.length), bytes);
}

/**
 * A ResourceTemplate: a Buffer of the descriptors and the End Tag (§6.4.2.9). Checksum 0
 * tells OSPM to treat the template as checksummed correctly, which is what iasl emits.
 */
export function resourceTemplate(...descriptors: Uint8Array[]): Uint8Array {
  return buffer(concat(...descriptors, Uint8Array.of(0x79, 0)));
}

/** I/O Port Descriptor (§6.4.2.5), decoding all 16 address bits. */
export function io(min: number, max: number, alignment: number, length: number): Uint8Array {
  checkRange("I/O port", min, max, 0xffff);
  checkUint("I/O alignment", alignment, 0xff);
  checkUint("I/O length", length, 0xff);
  return fields(8, (d) => {
    d.setUint8(0, 0x47);
    d.setUint8(1, 1); // Decode16
    d.setUint16(2, min, true);
    d.setUint16(4, max, true);
    d.setUint8(6, alignment);
    d.setUint8(7, length);
  });
}

/** IRQ Descriptor (§6.4.2.1) without its flags byte: edge-triggered, active-high, exclusive. */
export function irqNoFlags(...irqs: number[]): Uint8Array {
  let mask = 0;
  for (const irq of irqs) {
    checkUint("IRQ", irq, 15);
    if (mask & (1 << irq)) throw new RangeError(`IRQ ${irq} listed twice`);
    mask |= 1 << irq;
  }
  return fields(3, (d) => (d.setUint8(0, 0x22), d.setUint16(1, mask, true)));
}

/** Address space resource types (§6.4.3.5, Table 6.44 byte 3). */
const RESOURCE_MEMORY = 0;
const RESOURCE_IO = 1;
const RESOURCE_BUS = 2;
/**
 * General flags: _MIF and _MAF set (the window is fixed, nothing for OSPM to move); bit 0
 * clear is ResourceProducer and bit 1 clear is PosDecode, which is what a host bridge's
 * windows are.
 */
const FIXED_PRODUCER = 0x0c;
/** I/O type-specific flags: _RNG = 3, the window covers ISA and non-ISA ranges alike. */
const IO_ENTIRE_RANGE = 3;

/** The memory type-specific flags: _RW in bit 0, _MEM (1 = Cacheable) in bits 1-2. */
function memoryFlags(opts: { cacheable?: boolean; readWrite?: boolean }): number {
  return ((opts.readWrite ?? true) ? 1 : 0) | (opts.cacheable ? 1 << 1 : 0);
}

/**
 * A Word Address Space Descriptor (§6.4.3.5.3) for a fixed window, granularity and
 * translation 0: the tag, the length of what follows, then the fields.
 */
function wordAddress(type: number, typeFlags: number, min: number, max: number): Uint8Array {
  return fields(16, (d) => {
    d.setUint8(0, 0x88);
    d.setUint16(1, 13, true);
    d.setUint8(3, type);
    d.setUint8(4, FIXED_PRODUCER);
    d.setUint8(5, typeFlags);
    d.setUint16(8, min, true);
    d.setUint16(10, max, true);
    d.setUint16(14, max - min + 1, true);
  });
}

/**
 * WordBusNumber: bus numbers `min`..`max`. The length field is 16 bits, so the full 0..0xFFFF
 * range (length 0x10000) cannot be said.
 */
export function wordBusNumber(min: number, max: number): Uint8Array {
  checkRange("bus number", min, max, 0xffff);
  checkUint("bus number range length", max - min + 1, 0xffff);
  return wordAddress(RESOURCE_BUS, 0, min, max);
}

/** WordIO: I/O ports `min`..`max` passed down to the bridge's children. */
export function wordIo(min: number, max: number): Uint8Array {
  checkRange("I/O window", min, max, 0xffff);
  checkUint("I/O window length", max - min + 1, 0xffff);
  return wordAddress(RESOURCE_IO, IO_ENTIRE_RANGE, min, max);
}

/**
 * DWordMemory (§6.4.3.5.2): a fixed memory window `min`..`max`. By default read-write and
 * non-cacheable, which is what MMIO below 4 GiB wants.
 */
export function dwordMemory(
  min: number,
  max: number,
  opts: { cacheable?: boolean; readWrite?: boolean } = {},
): Uint8Array {
  checkRange("32-bit memory window", min, max, 0xffffffff);
  checkUint("32-bit memory window length", max - min + 1, 0xffffffff);
  return fields(26, (d) => {
    d.setUint8(0, 0x87);
    d.setUint16(1, 23, true);
    d.setUint8(3, RESOURCE_MEMORY);
    d.setUint8(4, FIXED_PRODUCER);
    d.setUint8(5, memoryFlags(opts));
    d.setUint32(10, min, true);
    d.setUint32(14, max, true);
    d.setUint32(22, max - min + 1, true);
  });
}

/**
 * QWordMemory (§6.4.3.5.1): like dwordMemory for windows above 4 GiB. Values stop at 2^53-1,
 * the largest a number holds exactly, far beyond any guest-physical address.
 */
export function qwordMemory(
  min: number,
  max: number,
  opts: { cacheable?: boolean; readWrite?: boolean } = {},
): Uint8Array {
  checkRange("64-bit memory window", min, max, Number.MAX_SAFE_INTEGER);
  checkUint("64-bit memory window length", max - min + 1, Number.MAX_SAFE_INTEGER);
  return fields(46, (d) => {
    d.setUint8(0, 0x8a);
    d.setUint16(1, 43, true);
    d.setUint8(3, RESOURCE_MEMORY);
    d.setUint8(4, FIXED_PRODUCER);
    d.setUint8(5, memoryFlags(opts));
    setUint64(d, 14, min);
    setUint64(d, 22, max);
    setUint64(d, 38, max - min + 1);
  });
}

/** 32-bit Fixed Memory Range Descriptor (§6.4.3.4): `length` bytes at `base`, below 4 GiB. */
export function memory32Fixed(base: number, length: number, readWrite: boolean): Uint8Array {
  checkUint("fixed memory base", base, 0xffffffff);
  checkUint("fixed memory length", length, 0xffffffff);
  if (base + length > 2 ** 32) {
    throw new RangeError(
      `fixed memory range 0x${base.toString(16)} + 0x${length.toString(16)} runs past 4 GiB`,
    );
  }
  return fields(12, (d) => {
    d.setUint8(0, 0x86);
    d.setUint16(1, 9, true);
    d.setUint8(3, readWrite ? 1 : 0);
    d.setUint32(4, base, true);
    d.setUint32(8, length, true);
  });
}
