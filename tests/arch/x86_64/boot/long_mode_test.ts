import { deepEqual, equal } from "../../../assert.ts";
import {
  BOOT_GDT_GPA,
  longModeEntry,
  writeLongModeTables,
} from "../../../../src/arch/x86_64/boot/long_mode.ts";
import { GuestMemory } from "../../../../src/memory/guest_memory.ts";
import type { Segment } from "../../../../ffi/kvm_regs.ts";
import { memoryLayout } from "../../../../src/arch/x86_64/memory_map.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function tables(): GuestMemory {
  const layout = memoryLayout(64 * MiB);
  const mem = new GuestMemory(new ArrayBuffer(layout.ramBytes), layout);
  mem.slice(0, 0x10000).fill(0xcc); // stale bytes the tables must overwrite
  writeLongModeTables(mem);
  return mem;
}

/** Walk the 4-level tables from CR3 the way the MMU does for a 2 MiB page. */
function translate(mem: GuestMemory, cr3: number, va: number): number | undefined {
  const entry = (table: number, index: number) => Number(mem.readU64(table + index * 8));
  const present = (e: number) => e % 2 === 1;
  const frame = (e: number) => e - (e % 0x1000);
  const pml4e = entry(cr3, Math.floor(va / 2 ** 39) % 512);
  if (!present(pml4e)) return undefined;
  const pdpte = entry(frame(pml4e), Math.floor(va / 2 ** 30) % 512);
  if (!present(pdpte) || (pdpte & 0x80)) return undefined;
  const pde = entry(frame(pdpte), Math.floor(va / 2 ** 21) % 512);
  if (!present(pde) || !(pde & 0x80) || !(pde & 0x2)) return undefined;
  return pde - (pde % (2 * MiB)) + (va % (2 * MiB));
}

Deno.test("x86_64: page tables identity-map 0, 2 MiB and 3 GiB with writable 2 MiB pages", () => {
  const mem = tables();
  const { cr3 } = longModeEntry({ ripGpa: 0x100200, zeroPageGpa: 0x7000 });
  equal(cr3, 0x9000);
  equal(mem.readU64(0x9000), 0xa003n); // PML4[0] -> PDPT
  equal(mem.readU64(0xa000), 0xb003n); // PDPT[0] -> first page directory
  equal(mem.readU64(0xa000 + 3 * 8), 0xe003n); // PDPT[3] -> fourth
  equal(mem.readU64(0xb000), 0x83n); // 2 MiB page at 0: present, writable, PS
  equal(mem.readU64(0xb008), 0x20_0083n); // at 2 MiB
  equal(mem.readU64(0xe000), 0xc000_0083n); // at 3 GiB
  for (const va of [0, 0x1234, 2 * MiB, 2 * MiB + 5, 3 * GiB, 4 * GiB - 1]) {
    equal(translate(mem, cr3, va), va, `va 0x${va.toString(16)}`);
  }
  equal(translate(mem, cr3, 4 * GiB), undefined); // PDPT[4] is empty
  equal(translate(mem, cr3, 512 * GiB), undefined); // PML4[1] is empty
});

/** Decode an 8-byte code/data descriptor (Intel SDM vol. 3, 3.4.5) into kvm_segment terms. */
function decodeDescriptor(mem: GuestMemory, selector: number): Omit<Segment, "selector"> {
  const lo = mem.readU32(BOOT_GDT_GPA + selector);
  const hi = mem.readU32(BOOT_GDT_GPA + selector + 4);
  const bit = (n: number) => (hi >>> n) & 1;
  const rawLimit = (lo & 0xffff) + ((hi >>> 16) & 0xf) * 0x10000;
  const g = bit(23);
  return {
    base: (lo >>> 16) + (hi & 0xff) * 0x10000 + (hi >>> 24) * 0x100_0000,
    limit: g ? rawLimit * 0x1000 + 0xfff : rawLimit,
    type: (hi >>> 8) & 0xf,
    s: bit(12),
    dpl: (hi >>> 13) & 3,
    present: bit(15),
    avl: bit(20),
    l: bit(21),
    db: bit(22),
    g,
  };
}

Deno.test("x86_64: GDT descriptors decode to the flat segments the vCPU is given", () => {
  const mem = tables();
  const state = longModeEntry({ ripGpa: 0x100200, zeroPageGpa: 0x7000 });
  equal(mem.readU64(BOOT_GDT_GPA), 0n);
  equal(mem.readU64(BOOT_GDT_GPA + 8), 0n);
  equal(mem.readU64(BOOT_GDT_GPA + 0x10), 0x00af_9b00_0000_ffffn); // __BOOT_CS: 64-bit code
  equal(mem.readU64(BOOT_GDT_GPA + 0x18), 0x00cf_9300_0000_ffffn); // __BOOT_DS: flat data
  const flat = { base: 0, limit: 0xffff_ffff, present: 1, dpl: 0, s: 1, g: 1, avl: 0 };
  deepEqual(decodeDescriptor(mem, 0x10), { ...flat, type: 0xb, l: 1, db: 0 });
  deepEqual(decodeDescriptor(mem, 0x18), { ...flat, type: 0x3, l: 0, db: 1 });
  const { selector: cs, ...csRest } = state.cs;
  equal(cs, 0x10);
  deepEqual(decodeDescriptor(mem, cs), csRest);
  for (const seg of [state.ds, state.es, state.fs, state.gs, state.ss]) {
    const { selector, ...rest } = seg;
    equal(selector, 0x18);
    deepEqual(decodeDescriptor(mem, selector), rest);
  }
  // TSS: a 16-byte system descriptor whose upper half (base 63:32) is zero.
  const { selector: tr, ...trRest } = state.tr;
  equal(tr, 0x20);
  deepEqual(decodeDescriptor(mem, tr), trRest);
  equal(trRest.type, 0xb); // busy 64-bit TSS, which VMX requires of TR
  equal(trRest.s, 0);
  equal(mem.readU64(BOOT_GDT_GPA + 0x28), 0n);
  equal(state.gdt.limit, 0x2f);
  equal(state.gdt.base, 0x500);
});

Deno.test("x86_64: entry state is long mode with interrupts off and %rsi at the zero page", () => {
  const state = longModeEntry({ ripGpa: 0x100200, zeroPageGpa: 0x7000 });
  deepEqual(state.regs, { rip: 0x100200, rsi: 0x7000, rsp: 0x8ff0, rbp: 0x8ff0, rflags: 0x2 });
  equal(state.cr0, 0x8000_0011); // PG | ET | PE
  equal(state.cr4, 0x20); // PAE
  equal(state.efer, 0x500); // LMA | LME
  // The IDT sits clear of the GDT (which ends at 0x52f) and holds no gates.
  equal(state.idt.limit, 0);
  equal(state.idt.base >= state.gdt.base + state.gdt.limit + 1, true);
  // The stack stays between the zero page (0x7000..0x7fff) and the page tables (0x9000).
  equal(state.regs.rsp > 0x8000 && state.regs.rsp <= 0x9000, true);
});
