/**
 * The ACPI description of the PC (the tables of src/acpi/): which of its facts the tables state,
 * taken from where those facts live in this folder (memory map, interrupt wiring, PCI windows,
 * MP table's APIC addresses, legacy devices), and where the tables go.
 */
import { type X86AcpiInput, x86AcpiTables } from "./tables.ts";
import { IOAPIC_GPA, ioapicIdFor, LAPIC_GPA } from "../boot/mptable.ts";
import {
  ACPI_PM_PORT,
  ACPI_PM_PORTS,
  RESET_OFFSET,
  RESET_VALUE,
  SLEEP_CONTROL_OFFSET,
  SLEEP_STATUS_OFFSET,
  SLP_TYP_S5,
} from "../../../devices/acpi_pm.ts";
import { SERIAL_COM1_IRQ, SERIAL_COM1_PORT } from "../../../devices/serial.ts";
import { CMOS_CENTURY_INDEX, CMOS_INDEX_PORT, CMOS_RTC_IRQ } from "../devices/cmos_rtc.ts";
import type { GuestMemory } from "../../../memory/guest_memory.ts";
import {
  ACPI_TABLES_END,
  ACPI_TABLES_START,
  type GuestRange,
  PCI_ECAM_SIZE,
  PCI_ECAM_START,
} from "../memory_map.ts";
import { intxPin } from "../interrupts.ts";
import { PCI_IO_END, PCI_IO_START, PCI_MMIO_END, PCI_MMIO_START } from "../pci.ts";

/** What the tables say about a machine with `cpus` vCPUs and this 64-bit PCI window. */
export function machineAcpi(cpus: number, mmio64: GuestRange): X86AcpiInput {
  return {
    apicIds: Array.from({ length: cpus }, (_, i) => i),
    lapicGpa: LAPIC_GPA,
    ioapicId: ioapicIdFor(cpus),
    ioapicGpa: IOAPIC_GPA,
    // A PC's firmware maps IRQ 0 to GSI 2, where its chipset wires the PIT. KVM's in-kernel PIT
    // raises GSI 0, which KVM's default routes (kept by gsi_router.ts) send to IOAPIC pin 0:
    // said here as an identity override, the same wiring the MP table gives.
    overrides: [{ irq: 0, gsi: 0 }],
    pmPorts: {
      sleepControl: ACPI_PM_PORT + SLEEP_CONTROL_OFFSET,
      sleepStatus: ACPI_PM_PORT + SLEEP_STATUS_OFFSET,
      reset: ACPI_PM_PORT + RESET_OFFSET,
      resetValue: RESET_VALUE,
    },
    pciIo: { min: PCI_IO_START, max: PCI_IO_END - 1 },
    pciMmio32: { min: PCI_MMIO_START, max: PCI_MMIO_END - 1 },
    pciMmio64: mmio64.size > 0 ? { min: mmio64.gpa, max: mmio64.gpa + mmio64.size - 1 } : undefined,
    ecam: { gpa: PCI_ECAM_START, size: PCI_ECAM_SIZE },
    intxGsi: intxPin,
    serial: { port: SERIAL_COM1_PORT, irq: SERIAL_COM1_IRQ },
    rtc: { port: CMOS_INDEX_PORT, irq: CMOS_RTC_IRQ },
    rtcCenturyIndex: CMOS_CENTURY_INDEX,
    pm: { port: ACPI_PM_PORT, ports: ACPI_PM_PORTS, s5Type: SLP_TYP_S5 },
  };
}

/** Write the tables into the BIOS area; returns the RSDP's address. */
export function writeAcpiTables(mem: GuestMemory, cpus: number, mmio64: GuestRange): number {
  const blob = x86AcpiTables(
    machineAcpi(cpus, mmio64),
    ACPI_TABLES_START,
    ACPI_TABLES_END - ACPI_TABLES_START,
  );
  mem.write(blob.gpa, blob.bytes);
  return blob.gpa;
}
