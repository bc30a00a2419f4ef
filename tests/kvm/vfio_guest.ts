/**
 * What the VFIO tests read in a guest that drives a passed-through function: its MSI-X and MSI
 * capabilities from a dump of its config space, its interrupt counts, and a ping through it.
 * Shared by the x86 and arm64 suites (tests/kvm/, tests/kvm_arm64/).
 */
export interface MsixCap {
  enabled: boolean;
  count: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

/** The MSI-X capability as the guest sees it, from its `od` dump of the function's config. */
export function msixFromDump(hex: string): MsixCap | undefined {
  const bytes = hex.trim().split(/\s+/).map((b) => parseInt(b, 16));
  const u16 = (at: number) => bytes[at] | (bytes[at + 1] << 8);
  const u32 = (at: number) => (u16(at) | (u16(at + 2) << 16)) >>> 0;
  for (let at = bytes[0x34] & 0xfc, n = 0; at >= 0x40 && n < 48; at = bytes[at + 1] & 0xfc, n++) {
    if (bytes[at] === 0x11) {
      const control = u16(at + 2);
      return {
        enabled: (control & 0x8000) !== 0,
        count: (control & 0x7ff) + 1,
        tableBar: u32(at + 4) & 7,
        tableOffset: (u32(at + 4) & ~7) >>> 0,
        pbaBar: u32(at + 8) & 7,
        pbaOffset: (u32(at + 8) & ~7) >>> 0,
      };
    }
  }
  return undefined;
}

/** Whether the dump's MSI capability (ID 5) has its Enable bit set. */
export function msiEnabledInDump(hex: string): boolean {
  const bytes = hex.trim().split(/\s+/).map((b) => parseInt(b, 16));
  for (let at = bytes[0x34] & 0xfc, n = 0; at >= 0x40 && n < 48; at = bytes[at + 1] & 0xfc, n++) {
    if (bytes[at] === 0x05) return (bytes[at + 2] & 1) === 1;
  }
  return false;
}

/** Guest commands: bring `dev` up at `ip`, count its MSI-X interrupts around a ping. */
export function pingScript(dev: string, ip: string): string[] {
  return [
    `ip addr add ${ip}/24 dev ${dev}`,
    `ip link set ${dev} up`,
    `sleep 2`,
    `echo "msi-before-${dev} $(grep -c . /proc/interrupts)"`,
    `ping -c 4 -w 30 -I ${dev} 10.0.2.2 | sed 's/^/${dev}: /'`,
  ];
}

/** Sum of the per-IRQ counts of every interrupt line of the function at `bdf`. */
export const countsScript = (tag: string, bdf: string) =>
  `for i in $(ls /sys/bus/pci/devices/${bdf}/msi_irqs); do echo "${tag} $i $(cat /sys/bus/pci/devices/${bdf}/msi_irqs/$i) $(grep "^ *$i:" /proc/interrupts | awk '{print $2}')"; done`;

export function irqCounts(out: string, tag: string): Array<{ kind: string; count: number }> {
  return [...out.matchAll(new RegExp(`^${tag} \\d+ (\\w+) (\\d+)`, "gm"))].map((m) => ({
    kind: m[1],
    count: Number(m[2]),
  }));
}
