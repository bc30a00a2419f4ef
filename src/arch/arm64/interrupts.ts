/**
 * denovmm's arm64 interrupt numbers: which GICv3 interrupt each source is, as the device tree
 * (./device_tree.ts) tells the guest and as KVM is told (the vGIC, the vCPUs' timers, GSI
 * routes). Numbers only: creating the vGIC is the platform's.
 *
 * GICv3 interrupt IDs (INTIDs): 0-15 SGIs, 16-31 PPIs (per CPU), 32-1019 SPIs (shared). The
 * device tree names an SPI or a PPI by its index within its kind (arm,gic-v3 binding: SPI n is
 * INTID 32 + n, PPI n is INTID 16 + n). KVM's default GSI routing on arm64 sends GSI n to SPI n
 * (arch/arm64/kvm/vgic/vgic-irqfd.c: an irqchip route's pin is an SPI index), so a device's
 * GSI is its SPI number.
 *
 * @module
 */

/** GICv3 INTIDs below this are per CPU (SGIs and PPIs). */
export const GIC_PRIVATE_INTIDS = 32;
/** First PPI's INTID. */
const FIRST_PPI_INTID = 16;

/** The 8250 UART's SPI. */
export const UART_SPI = 1;
/** PCI INTA#-INTD# share SPIs 4-7 (see {@link intxSpi}). */
export const PCI_INTX_FIRST_SPI = 4;
export const PCI_INTX_SPIS = 4;
/** GSIs from here on are MSI routes (through the ITS); below are the wired SPIs above. */
export const FIRST_MSI_GSI = 32;
/**
 * SPIs the vGIC has. KVM_DEV_ARM_VGIC_GRP_NR_IRQS takes the number of INTIDs including the 32
 * private ones, a multiple of 32: {@link GIC_NR_IRQS}.
 */
export const NR_SPIS = 64;
export const GIC_NR_IRQS = GIC_PRIVATE_INTIDS + NR_SPIS;

/** PPIs of the architected timer (arm,armv8-timer binding order: secure, non-secure, virtual,
 * hypervisor) as the Arm Base System Architecture numbers them (INTIDs 29, 30, 27, 26). */
export const TIMER_SECURE_PPI = 13;
export const TIMER_NONSECURE_PPI = 14;
export const TIMER_VIRTUAL_PPI = 11;
export const TIMER_HYP_PPI = 10;
/** The GIC's virtual CPU interface maintenance interrupt (INTID 25). */
export const GIC_MAINTENANCE_PPI = 9;

/** First cell of a GIC interrupt specifier (arm,gic-v3 binding): the kind of interrupt. */
export const GIC_SPI = 0;
export const GIC_PPI = 1;
/** Third cell: trigger type (include/dt-bindings/interrupt-controller/irq.h). */
export const IRQ_TYPE_EDGE_RISING = 1;
export const IRQ_TYPE_LEVEL_HIGH = 4;
export const IRQ_TYPE_LEVEL_LOW = 8;

/**
 * The SPI a PCI slot's interrupt pin (1 = INTA#) reaches: the usual swizzle, INTB# of a slot is
 * INTA# of the next, over SPIs 4-7. Slots 4 apart share a line, which level-triggered INTx
 * allows.
 *
 * @example
 * ```ts
 * intxSpi(0, 1); // 4
 * intxSpi(1, 4); // 4: slot 1's INTD# wraps around to slot 0's INTA#
 * ```
 */
export function intxSpi(slot: number, pin = 1): number {
  if (!(Number.isInteger(slot) && slot >= 0 && slot < 32)) {
    throw new RangeError(`PCI slot ${slot} is not 0-31`);
  }
  if (!(Number.isInteger(pin) && pin >= 1 && pin <= 4)) {
    throw new RangeError(`PCI interrupt pin ${pin} is not 1-4 (INTA#-INTD#)`);
  }
  return PCI_INTX_FIRST_SPI + ((slot + pin - 1) % PCI_INTX_SPIS);
}

/** The GIC INTID of SPI `n` (what KVM_IRQ_LINE and the GIC's registers use). */
export function spiIntid(n: number): number {
  return GIC_PRIVATE_INTIDS + n;
}

/** The GIC INTID of PPI `n` (what KVM's timer attributes, KVM_ARM_VCPU_TIMER_IRQ_*, take). */
export function ppiIntid(n: number): number {
  return FIRST_PPI_INTID + n;
}

/** The SPI a wired GSI (below {@link FIRST_MSI_GSI}) reaches: KVM's default route, GSI n to SPI n. */
export function gsiSpi(gsi: number): number {
  if (!(Number.isInteger(gsi) && gsi >= 0 && gsi < FIRST_MSI_GSI)) {
    throw new RangeError(`GSI ${gsi} is not a wired SPI (0-${FIRST_MSI_GSI - 1})`);
  }
  return gsi;
}
