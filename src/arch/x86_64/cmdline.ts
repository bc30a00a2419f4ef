/**
 * The PC's kernel parameters for every boot; `-p` is appended. Why each one:
 * console=ttyS0: the 8250 at 0x3f8 is the console; reboot=k: `reboot` resets through the
 * i8042, which ends the VM; panic=-1: a panic reboots (ends the VM) instead of hanging;
 * i8042.*: no AUX port, no MUX, no keyboard, so the driver does not poll (with ACPI, whose
 * FADT says there is no 8042 to drive, its PnP lookup finds none and it does not probe at all;
 * under acpi=off it probes the ports as before);
 * (no acpi=off: the machine is described by ACPI tables, src/acpi/, as Firecracker's and Cloud
 * Hypervisor's are; a kernel without ACPI, or `-p acpi=off`, reads the MP table instead);
 * pci=noearly: no scans of PCI config space before the PCI subsystem starts. They look for
 * chipset quirks and, on AMD family 0xf/0x10 CPUs, for a GART aperture (every slot of all 256
 * buses, twice: 16 000 port exits, 1.7 s of a 3.2 s boot under the KVM sandbox, whose CPU is
 * family 0xf); no device of ours needs an early quirk;
 * cryptomgr.notests: the crypto API does not run its self-tests on every algorithm it
 * registers (the parameter was added for short-lived VMs; fips=1 overrides it). Under the
 * KVM sandbox they took 0.2 s of a 1.5 s boot; `-p cryptomgr.notests=0` turns them back on,
 * as a later parameter wins. */
export const BASE_CMDLINE = "console=ttyS0 reboot=k panic=-1 pci=noearly " +
  "i8042.noaux i8042.nomux i8042.dumbkbd cryptomgr.notests";
