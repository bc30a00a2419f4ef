// The PC's interrupt facts (src/arch/x86_64/interrupts.ts), and the GSI router keeping the
// platform's default routes in every table it submits.
import { deepEqual, equal } from "../../assert.ts";
import {
  KVM_IRQ_ROUTING_ENTRY_OFFSETS as O,
  KVM_IRQ_ROUTING_ENTRY_SIZE,
  KVM_IRQ_ROUTING_HEADER_SIZE,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  type KvmIrqRouting,
} from "../../../ffi/kvm_irq_structs.ts";
import {
  DEFAULT_GSI_ROUTES,
  FIRST_MSI_GSI,
  intxPin,
  IOAPIC_PINS,
  isaLine,
} from "../../../src/arch/x86_64/interrupts.ts";
import {
  DEFAULT_ROUTES,
  FIRST_MSI_GSI as ROUTER_FIRST_MSI_GSI,
  GsiRouter,
} from "../../../src/machine/gsi_router.ts";
import type { IrqchipRoute } from "../../../src/arch/platform.ts";

Deno.test("x86 interrupts: ISA IRQs on their PIC and the IOAPIC, pins 16-23 on the IOAPIC only", () => {
  equal(DEFAULT_GSI_ROUTES.length, 40);
  deepEqual(DEFAULT_GSI_ROUTES.slice(0, 2), [
    { gsi: 0, chip: KVM_IRQCHIP_PIC_MASTER, pin: 0 },
    { gsi: 0, chip: KVM_IRQCHIP_IOAPIC, pin: 0 },
  ]);
  deepEqual(DEFAULT_GSI_ROUTES.filter((r) => r.gsi === 9), [
    { gsi: 9, chip: KVM_IRQCHIP_PIC_SLAVE, pin: 1 },
    { gsi: 9, chip: KVM_IRQCHIP_IOAPIC, pin: 9 },
  ]);
  deepEqual(DEFAULT_GSI_ROUTES.filter((r) => r.gsi === 23), [
    { gsi: 23, chip: KVM_IRQCHIP_IOAPIC, pin: 23 },
  ]);
  equal(FIRST_MSI_GSI, IOAPIC_PINS);
});

Deno.test("x86 interrupts: the default routes are the ones the GSI router keeps in every table", () => {
  let kept: IrqchipRoute[] = [];
  const vm = {
    trySetGsiRouting(routing: KvmIrqRouting): number {
      const dv = new DataView(routing.bytes.buffer, routing.bytes.byteOffset);
      kept = [];
      for (let i = 0; i < dv.getUint32(0, true); i++) {
        const at = KVM_IRQ_ROUTING_HEADER_SIZE + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
        if (dv.getUint32(at + O.type, true) !== KVM_IRQ_ROUTING_IRQCHIP) continue;
        kept.push({
          gsi: dv.getUint32(at + O.gsi, true),
          chip: dv.getUint32(at + O["u.irqchip.irqchip"], true),
          pin: dv.getUint32(at + O["u.irqchip.pin"], true),
        });
      }
      return 0;
    },
    tryIrqfd: () => 0,
  };
  const router = new GsiRouter(GsiRouter.createState(4096), vm);
  const gsis = new Int32Array(new SharedArrayBuffer(4));
  router.update(
    gsis,
    [100],
    "dev",
    0,
    1,
    () => ({ addressLo: 0xfee0_0000, addressHi: 0, data: 1 }),
  );
  deepEqual(kept, [...DEFAULT_GSI_ROUTES]);
  equal(DEFAULT_ROUTES, DEFAULT_GSI_ROUTES.length);
  equal(ROUTER_FIRST_MSI_GSI, FIRST_MSI_GSI);
});

Deno.test("x86 interrupts: a slot's INTx pin is swizzled over IOAPIC pins 16-23", () => {
  equal(intxPin(1), 16);
  equal(intxPin(1, 2), 17, "INTB# of a slot is INTA# of the next");
  equal(intxPin(8, 1), 23);
  equal(intxPin(9, 1), 16, "slots 8 apart share a pin");
  for (let slot = 1; slot < 32; slot++) {
    for (let pin = 1; pin <= 4; pin++) equal(intxPin(slot, pin), 16 + ((slot + pin - 2) % 8));
  }
});

Deno.test("x86 interrupts: an ISA line raises and lowers its own GSI", () => {
  const seen: [number, boolean][] = [];
  const line = isaLine((gsi, high) => seen.push([gsi, high]), 4);
  line.setLevel(true);
  line.setLevel(false);
  deepEqual(seen, [[4, true], [4, false]]);
});
