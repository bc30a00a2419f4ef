/**
 * The arm64 machine's kernel parameters for every boot; `-p` is appended. console=ttyS0: the
 * 8250 the device tree describes (its stdout-path names it too, but a user's console= would
 * otherwise leave none); panic=-1: a panic reboots, and PSCI SYSTEM_RESET ends the VM, instead
 * of hanging; cryptomgr.notests: no self-tests of every crypto algorithm at boot (as on x86,
 * see ../x86_64/cmdline.ts). No reboot= or i8042 parameters: PSCI ends the VM either way, and
 * there is no keyboard controller.
 */
export const BASE_CMDLINE = "console=ttyS0 panic=-1 cryptomgr.notests";
