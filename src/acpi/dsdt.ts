/**
 * The DSDT of denovmm's x86 machine, in AML (aml.ts): what the OS cannot find by probing.
 *
 * - `\_SB_.PCI0`: the PCI Express host bridge of segment 0, bus 0. Its `_CRS` gives the windows
 *   its BARs may use (the I/O ports above the legacy range, the 32-bit hole below the ECAM
 *   region, the 64-bit window above RAM) and `_PRT` how each slot's INTA#-INTD# reach IOAPIC
 *   pins, for every slot, present or not (a function's pin is only known once it is probed).
 * - `\_SB_.COM1`: the 8250 at 0x3f8, IRQ 4, and `\_SB_.RTC_`: the CMOS clock at 0x70, IRQ 8.
 *   With hardware-reduced ACPI, Linux assumes no 8259 PIC and maps no ISA IRQ by itself
 *   (arch/x86/kernel/acpi/boot.c: legacy_pic = &null_legacy_pic), so a legacy device whose
 *   IRQ no table names cannot get it: rtc_cmos's probe failed with -EINVAL until the DSDT
 *   described the clock.
 * - `\_SB_.MBRD`: motherboard resources (PNP0C02): the ECAM region and the ACPI PM ports. Linux
 *   uses the MCFG's ECAM region only if a motherboard device reserves it.
 * - `\_S5_`: the sleep type that the FADT's sleep control register takes for soft-off.
 *
 * @module
 */

import {
  concat,
  device,
  dwordMemory,
  eisaId,
  integer,
  io,
  irqNoFlags,
  memory32Fixed,
  name,
  pkg,
  qwordMemory,
  resourceTemplate,
  scope,
  wordBusNumber,
  wordIo,
} from "./aml.ts";
import { systemDescriptionTable } from "./sdt.ts";

/** DSDT revision 2: integers are 64 bits wide (a 64-bit window needs it). */
const DSDT_REVISION = 2;
/** Slots on bus 0; slot 0 is the host bridge itself, which has no INTx. */
const PCI_SLOTS = 32;
const INTX_PINS = 4;
/** conf1's ports: the host bridge consumes them (it is what answers there). */
const CONF1_PORT = 0xcf8;
const CONF1_PORTS = 8;

/** An inclusive range of addresses. */
export interface AddressRange {
  min: number;
  max: number;
}

export interface DsdtInput {
  /** I/O ports routed to PCI BARs. */
  pciIo: AddressRange;
  /** The 32-bit MMIO window for BARs. */
  pciMmio32: AddressRange;
  /** The 64-bit window above RAM; absent if there is none. */
  pciMmio64?: AddressRange;
  ecam: { gpa: number; size: number };
  /** IOAPIC pin (GSI) of slot `slot`'s INTx pin `pin` (1 = INTA# .. 4 = INTD#). */
  intxGsi(slot: number, pin: number): number;
  serial: { port: number; irq: number };
  /** The MC146818-style CMOS clock: index port (data follows) and IRQ. */
  rtc: { port: number; irq: number };
  pm: { port: number; ports: number; s5Type: number };
}

/** The whole DSDT table, header included. */
export function dsdt(d: DsdtInput): Uint8Array {
  return systemDescriptionTable(
    "DSDT",
    DSDT_REVISION,
    concat(
      scope("\\_SB_", pciHostBridge(d), serialPort(d.serial), cmosClock(d.rtc), motherboard(d)),
      // SLP_TYPa, SLP_TYPb: only the first means anything on hardware-reduced ACPI.
      name("\\_S5_", pkg(integer(d.pm.s5Type), integer(0))),
    ),
  );
}

function pciHostBridge(d: DsdtInput): Uint8Array {
  const windows = [
    wordBusNumber(0, 0),
    io(CONF1_PORT, CONF1_PORT, 1, CONF1_PORTS),
    // The legacy ports below conf1 reach the ISA-style devices behind the bridge.
    wordIo(0, CONF1_PORT - 1),
    wordIo(d.pciIo.min, d.pciIo.max),
    dwordMemory(d.pciMmio32.min, d.pciMmio32.max, { cacheable: false, readWrite: true }),
  ];
  if (d.pciMmio64) {
    windows.push(
      qwordMemory(d.pciMmio64.min, d.pciMmio64.max, { cacheable: false, readWrite: true }),
    );
  }
  const routes: Uint8Array[] = [];
  for (let slot = 1; slot < PCI_SLOTS; slot++) {
    for (let pin = 1; pin <= INTX_PINS; pin++) {
      // ACPI 6.5 §6.2.13: address (slot << 16 | 0xffff: any function), pin 0 = INTA#,
      // source 0 (a GSI, not a link device), source index = the GSI.
      routes.push(pkg(
        integer(slot * 0x1_0000 + 0xffff),
        integer(pin - 1),
        integer(0),
        integer(d.intxGsi(slot, pin)),
      ));
    }
  }
  return device(
    "PCI0",
    name("_HID", eisaId("PNP0A08")), // PCI Express root bridge
    name("_CID", eisaId("PNP0A03")), // compatible with a PCI root bridge
    name("_SEG", integer(0)),
    name("_BBN", integer(0)),
    name("_UID", integer(0)),
    name("_CRS", resourceTemplate(...windows)),
    name("_PRT", pkg(...routes)),
  );
}

function serialPort(s: DsdtInput["serial"]): Uint8Array {
  return device(
    "COM1",
    name("_HID", eisaId("PNP0501")), // 16550A-compatible
    name("_UID", integer(1)),
    name("_CRS", resourceTemplate(io(s.port, s.port, 1, 8), irqNoFlags(s.irq))),
  );
}

function cmosClock(r: DsdtInput["rtc"]): Uint8Array {
  return device(
    "RTC_",
    name("_HID", eisaId("PNP0B00")), // AT real-time clock
    name("_CRS", resourceTemplate(io(r.port, r.port, 1, 2), irqNoFlags(r.irq))),
  );
}

function motherboard(d: DsdtInput): Uint8Array {
  return device(
    "MBRD",
    name("_HID", eisaId("PNP0C02")),
    name("_UID", integer(0)),
    name(
      "_CRS",
      resourceTemplate(
        memory32Fixed(d.ecam.gpa, d.ecam.size, true),
        io(d.pm.port, d.pm.port, 1, d.pm.ports),
      ),
    ),
  );
}
