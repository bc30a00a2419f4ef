import { equal, throws } from "../../assert.ts";
import {
  FIRST_MSI_GSI,
  GIC_NR_IRQS,
  gsiSpi,
  intxSpi,
  NR_SPIS,
  ppiIntid,
  spiIntid,
  TIMER_VIRTUAL_PPI,
  UART_SPI,
} from "../../../src/arch/arm64/interrupts.ts";

Deno.test("arm64 interrupts: INTx follows the swizzle over SPIs 4-7", () => {
  equal(intxSpi(0, 1), 4);
  equal(intxSpi(0, 4), 7);
  equal(intxSpi(1, 1), 5);
  equal(intxSpi(1, 4), 4, "INTD# of slot 1 wraps to SPI 4");
  equal(intxSpi(31, 2), 4 + ((31 + 1) % 4));
  equal(intxSpi(3), 7, "pin defaults to INTA#");
  throws(() => intxSpi(32, 1), RangeError);
  throws(() => intxSpi(0, 0), RangeError);
  throws(() => intxSpi(0, 5), RangeError);
});

Deno.test("arm64 interrupts: the numbers fit the vGIC KVM is asked for", () => {
  equal(GIC_NR_IRQS % 32, 0, "KVM_DEV_ARM_VGIC_GRP_NR_IRQS is a multiple of 32");
  equal(GIC_NR_IRQS, 32 + NR_SPIS);
  equal(FIRST_MSI_GSI <= NR_SPIS, true);
  equal(spiIntid(UART_SPI), 33);
  equal(ppiIntid(TIMER_VIRTUAL_PPI), 27, "KVM_ARM_VCPU_TIMER_IRQ_VTIMER's default");
  equal(gsiSpi(7), 7);
  throws(() => gsiSpi(FIRST_MSI_GSI), RangeError);
});
