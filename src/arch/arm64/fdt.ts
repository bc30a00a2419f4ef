/**
 * A flattened device tree (DTB) writer: the binary form of Devicetree Specification v0.4,
 * chapter 5 ("Flattened Devicetree (DTB) Format"), version 17. Knows nothing of any machine:
 * ./device_tree.ts says what the tree holds.
 *
 * The blob is laid out as dtc lays it out: the 40-byte header, the memory reservation block
 * (8-byte aligned, ended by an all-zero entry), the structure block, then the strings block. All
 * numbers are big-endian. The structure block is a stream of 32-bit tokens: FDT_BEGIN_NODE with
 * the node's NUL-terminated name, FDT_PROP with length, name offset and value, FDT_END_NODE,
 * and one FDT_END; names and values are padded to 4 bytes. Property names are stored once in
 * the strings block and referred to by offset.
 *
 * Misuse (a bad name, a property after a child node, an unbalanced endNode, a value that does
 * not fit its cells) throws FdtError: the tree is the VMM's own, so that is a bug in denovmm,
 * not bad input.
 *
 * @module
 */

export const FDT_MAGIC = 0xd00d_feed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_END = 0x9;
/** struct fdt_header: ten big-endian u32s. */
export const FDT_HEADER_BYTES = 40;
/** struct fdt_reserve_entry: address and size, two big-endian u64s. */
const RESERVE_ENTRY_BYTES = 16;

/** DT spec 2.2.1: node names are 1-31 of these characters, then an optional "@unit-address". */
const NODE_NAME = /^[0-9A-Za-z,._+-]{1,31}(@[0-9A-Za-z,._+-]+)?$/;
/** DT spec 2.2.4: property names are 1-31 of these characters. */
const PROPERTY_NAME = /^[0-9A-Za-z,._+?#-]{1,31}$/;
const TWO_32 = 2 ** 32;

/** The device tree being built was used wrongly: a bug in the code that builds it. */
export class FdtError extends Error {
  override name = "FdtError";
}

interface OpenNode {
  name: string;
  properties: Set<string>;
  children: Set<string>;
}

/**
 * Builds one device tree, depth first: open a node, write its properties, then its children,
 * close it.
 *
 * @example
 * ```ts
 * const t = new FdtWriter();
 * t.beginNode("");
 * t.propU32("#address-cells", 2);
 * t.beginNode("chosen");
 * t.propString("bootargs", "console=ttyS0");
 * t.endNode();
 * t.endNode();
 * const dtb = t.finish(); // starts d0 0d fe ed
 * ```
 */
export class FdtWriter {
  #struct = new ByteBuffer();
  #strings = new ByteBuffer();
  #stringOffsets = new Map<string, number>();
  #reservations: { address: number; size: number }[] = [];
  #stack: OpenNode[] = [];
  #rootDone = false;
  #finished = false;
  #lastPhandle = 0;

  /**
   * Add a memory reservation block entry: RAM the guest's OS must leave alone.
   */
  reserveMemory(address: number, size: number): void {
    this.#checkOpen();
    checkU64(address, "reservation address");
    checkU64(size, "reservation size");
    this.#reservations.push({ address, size });
  }

  /**
   * A new phandle, unique in this tree (1, 2, …; DT spec 2.3.3: 0 and 0xffffffff are not
   * valid). Write it into its node with `propU32("phandle", n)`.
   */
  allocPhandle(): number {
    this.#checkOpen();
    return ++this.#lastPhandle;
  }

  /** Open a node: "" for the root (the first node, and only there), else "name[@unit]". */
  beginNode(name: string): void {
    this.#checkOpen();
    const parent = this.#stack.at(-1);
    if (parent === undefined) {
      if (this.#rootDone) throw new FdtError("device tree: a second root node");
      if (name !== "") throw new FdtError(`device tree: the root node is named "", not "${name}"`);
    } else {
      if (!NODE_NAME.test(name)) throw new FdtError(`device tree: bad node name "${name}"`);
      if (parent.children.has(name)) {
        throw new FdtError(`device tree: two nodes "${name}" under ${this.#path()}`);
      }
      parent.children.add(name);
    }
    this.#struct.u32(FDT_BEGIN_NODE);
    this.#struct.bytes(new TextEncoder().encode(name));
    this.#struct.u8(0);
    this.#struct.align(4);
    this.#stack.push({ name, properties: new Set(), children: new Set() });
  }

  /** Close the node opened last. */
  endNode(): void {
    this.#checkOpen();
    if (this.#stack.pop() === undefined) throw new FdtError("device tree: endNode without a node");
    this.#struct.u32(FDT_END_NODE);
    if (this.#stack.length === 0) this.#rootDone = true;
  }

  /** A property with raw bytes as its value. */
  propBytes(name: string, value: Uint8Array): void {
    this.#checkOpen();
    const node = this.#stack.at(-1);
    if (node === undefined) throw new FdtError(`device tree: property "${name}" outside a node`);
    if (!PROPERTY_NAME.test(name)) throw new FdtError(`device tree: bad property name "${name}"`);
    // DT spec 5.4.2: a node's properties precede its child nodes.
    if (node.children.size > 0) {
      throw new FdtError(`device tree: property "${name}" after child nodes of ${this.#path()}`);
    }
    if (node.properties.has(name)) {
      throw new FdtError(`device tree: two properties "${name}" in ${this.#path()}`);
    }
    node.properties.add(name);
    this.#struct.u32(FDT_PROP);
    this.#struct.u32(value.length);
    this.#struct.u32(this.#stringOffset(name));
    this.#struct.bytes(value);
    this.#struct.align(4);
  }

  /** A property with no value: a boolean that is true (e.g. "interrupt-controller"). */
  propEmpty(name: string): void {
    this.propBytes(name, new Uint8Array(0));
  }

  /** One 32-bit cell. */
  propU32(name: string, value: number): void {
    this.propCells(name, [value]);
  }

  /** 32-bit cells, each a number 0..2^32-1. */
  propCells(name: string, cells: readonly number[]): void {
    const out = new ByteBuffer();
    for (const c of cells) {
      if (!(Number.isInteger(c) && c >= 0 && c < TWO_32)) {
        throw new FdtError(`device tree: ${name}: cell ${c} does not fit in 32 bits`);
      }
      out.u32(c);
    }
    this.propBytes(name, out.finish());
  }

  /** One 64-bit value as two cells, high then low. */
  propU64(name: string, value: number): void {
    this.propU64s(name, [value]);
  }

  /** 64-bit values (each 0..2^53-1 as a number, or any u64 as a bigint), two cells each. */
  propU64s(name: string, values: readonly (number | bigint)[]): void {
    this.propCells(name, values.flatMap((v) => u64Cells(v, name)));
  }

  /** A NUL-terminated string. */
  propString(name: string, value: string): void {
    this.propStrings(name, [value]);
  }

  /** A string list: each string NUL-terminated, one after the other (e.g. "compatible"). */
  propStrings(name: string, values: readonly string[]): void {
    const out = new ByteBuffer();
    for (const v of values) {
      if (v.includes("\0")) throw new FdtError(`device tree: ${name}: a string contains NUL`);
      out.bytes(new TextEncoder().encode(v));
      out.u8(0);
    }
    this.propBytes(name, out.finish());
  }

  /**
   * The blob, once every node is closed. `bootCpuidPhys`: the header's boot_cpuid_phys, the
   * boot CPU's `reg` in /cpus.
   */
  finish(bootCpuidPhys = 0): Uint8Array {
    this.#checkOpen();
    if (this.#stack.length > 0) {
      throw new FdtError(`device tree: ${this.#path()} is not closed`);
    }
    if (!this.#rootDone) throw new FdtError("device tree: no root node");
    this.#finished = true;
    this.#struct.u32(FDT_END);
    const struct = this.#struct.finish();
    const strings = this.#strings.finish();

    const out = new ByteBuffer();
    const offMemRsvmap = FDT_HEADER_BYTES; // already 8-byte aligned
    const offStruct = offMemRsvmap + (this.#reservations.length + 1) * RESERVE_ENTRY_BYTES;
    const offStrings = offStruct + struct.length;
    const totalSize = offStrings + strings.length;
    for (
      const field of [
        FDT_MAGIC,
        totalSize,
        offStruct,
        offStrings,
        offMemRsvmap,
        FDT_VERSION,
        FDT_LAST_COMP_VERSION,
        bootCpuidPhys,
        strings.length,
        struct.length,
      ]
    ) out.u32(field);
    for (const r of [...this.#reservations, { address: 0, size: 0 }]) {
      for (const c of [...u64Cells(r.address, "reservation"), ...u64Cells(r.size, "reservation")]) {
        out.u32(c);
      }
    }
    out.bytes(struct);
    out.bytes(strings);
    return out.finish();
  }

  /** Offset of `name` in the strings block, each name stored once. */
  #stringOffset(name: string): number {
    let offset = this.#stringOffsets.get(name);
    if (offset === undefined) {
      offset = this.#strings.length;
      this.#strings.bytes(new TextEncoder().encode(name));
      this.#strings.u8(0);
      this.#stringOffsets.set(name, offset);
    }
    return offset;
  }

  #checkOpen(): void {
    if (this.#finished) throw new FdtError("device tree: already finished");
  }

  #path(): string {
    return "/" + this.#stack.slice(1).map((n) => n.name).join("/");
  }
}

/**
 * A u64 as two 32-bit cells, [high, low]: numbers must be exact (safe integers), bigints below
 * 2^64.
 */
export function u64Cells(value: number | bigint, what = "value"): [number, number] {
  if (typeof value === "bigint") {
    if (value < 0n || value >= 1n << 64n) {
      throw new FdtError(`device tree: ${what}: ${value} does not fit in 64 bits`);
    }
    return [Number(value >> 32n), Number(value & 0xffff_ffffn)];
  }
  checkU64(value, what);
  return [Math.floor(value / TWO_32), value % TWO_32];
}

function checkU64(value: number, what: string): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    throw new FdtError(`device tree: ${what}: ${value} is not an exact unsigned integer`);
  }
}

/** A growing big-endian byte buffer. */
class ByteBuffer {
  #bytes = new Uint8Array(256);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = value;
  }

  u32(value: number): void {
    this.#reserve(4);
    new DataView(this.#bytes.buffer).setUint32(this.#length, value, false);
    this.#length += 4;
  }

  bytes(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#bytes.set(value, this.#length);
    this.#length += value.length;
  }

  /** Zero bytes up to the next multiple of `n`. */
  align(n: number): void {
    while (this.#length % n !== 0) this.u8(0);
  }

  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + n));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }
}
