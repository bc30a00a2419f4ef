/**
 * arm64 interrupt numbers (placeholder until the device-tree side lands; same names).
 * GSI n is SPI n (INTID 32 + n) in KVM's default routing.
 */
export const UART_SPI = 1;
export const PCI_INTX_FIRST_SPI = 4;
export const PCI_INTX_SPIS = 4;
export function intxSpi(slot: number, pin = 1): number {
  return PCI_INTX_FIRST_SPI + ((slot + pin - 1) % PCI_INTX_SPIS);
}
export const FIRST_MSI_GSI = 32;
export const NR_SPIS = 64;
