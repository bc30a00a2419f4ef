// The machine's PCI side (planPci, registerPci) against a fake VM (./fake_vm.ts) and a fake VFIO
// device (../vfio/fake_device.ts), driven through conf1 as a guest's kernel would: what the
// guest does with BARs and interrupt enables must never end the VM.
import { deepEqual, equal, ok } from "../assert.ts";
import { NOTIFY_OFFSET } from "../../src/virtio/pci_transport.ts";
import { PCI_ECAM_START } from "../../src/arch/x86_64/memory_map.ts";
import { machine, VFIO_SLOT, vfioSlots } from "./pci_machine.ts";

Deno.test("pci devices: a VFIO BAR moved over RAM, or over its own other BAR, is left unmapped", () => {
  const { vm, lines, cfgWrite, cfgRead, dev, tick } = machine();
  cfgWrite(VFIO_SLOT, 0x04, 2, 0x0002); // memory decoding on
  const [bar2, bar4] = vfioSlots(vm);
  ok(bar2 && bar4, "BAR 2 and BAR 4's mapped pages have slots");
  // Over guest RAM: KVM says EEXIST. The VM goes on, BAR 2 has no slot, one line says so.
  cfgWrite(VFIO_SLOT, 0x18, 4, 0x2000_0000);
  deepEqual(vfioSlots(vm), [bar4]);
  equal(lines.length, 1);
  ok(lines[0].includes("BAR 2 at 0x20000000") && lines[0].includes("EEXIST"), lines[0]);
  equal(cfgRead(VFIO_SLOT, 0x18, 4), 0x2000_0004, "the guest reads back where it put the BAR");
  // Somewhere free: mapped again.
  cfgWrite(VFIO_SLOT, 0x18, 4, 0xd000_2000);
  deepEqual(vfioSlots(vm), [[bar2[0], 0xd000_2000], bar4]);
  // BAR 4 over BAR 2: BAR 4's mapped pages [0xd000_1000, 0xd000_4000) would cover BAR 2.
  tick();
  cfgWrite(VFIO_SLOT, 0x20, 4, 0xd000_000c);
  deepEqual(vfioSlots(vm), [[bar2[0], 0xd000_2000]]);
  equal(lines.length, 2);
  ok(lines[1].includes("BAR 4"), lines[1]);
  // BAR 2 moves away: BAR 4 gets its place at that same write.
  cfgWrite(VFIO_SLOT, 0x18, 4, 0xd010_0000);
  deepEqual(vfioSlots(vm), [[bar2[0], 0xd010_0000], [bar4[0], 0xd000_1000]]);
  // Decoding off takes every slot away.
  cfgWrite(VFIO_SLOT, 0x04, 2, 0x0000);
  deepEqual(vfioSlots(vm), []);
  dev.close();
});

Deno.test("pci devices: a repeated refusal logs one line a second", () => {
  const { lines, cfgWrite, dev, tick } = machine();
  cfgWrite(VFIO_SLOT, 0x04, 2, 0x0002);
  for (let i = 0; i < 100; i++) cfgWrite(VFIO_SLOT, 0x18, 4, 0x2000_0000 + (i % 2) * 0x1000);
  equal(lines.length, 1);
  tick();
  cfgWrite(VFIO_SLOT, 0x18, 4, 0x2000_0000);
  cfgWrite(VFIO_SLOT, 0x18, 4, 0x2000_1000);
  equal(lines.length, 2);
  ok(lines[1].includes("more not shown"), lines[1]);
  dev.close();
});

Deno.test("pci devices: a virtio BAR 0 over another device's keeps the VM, and its notifies", () => {
  const { vm, lines, cfgWrite, cfgRead, plan, dev, functions } = machine();
  cfgWrite(1, 0x04, 2, 0x0002);
  cfgWrite(2, 0x04, 2, 0x0002);
  const bar0 = (slot: number) => (cfgRead(slot, 0x10, 4) & ~0xf) >>> 0;
  const first = bar0(1);
  const notifyOf = (fd: number) => [...vm.ioeventfds].filter(([, f]) => f === fd).map(([k]) => k);
  const second = plan.devices[1].notifyFds[0];
  deepEqual(notifyOf(second), [`${(bar0(2) + NOTIFY_OFFSET).toString(16)}/2`]);
  // Device 2's BAR 0 onto device 1's: KVM refuses the second notify ioeventfd there.
  cfgWrite(2, 0x10, 4, first);
  deepEqual(notifyOf(second), [], "device 2 has no ioeventfd");
  deepEqual(notifyOf(plan.devices[0].notifyFds[0]), [`${(first + NOTIFY_OFFSET).toString(16)}/2`]);
  equal(lines.length, 1);
  ok(lines[0].includes("virtio-rng") && lines[0].includes("EEXIST"), lines[0]);
  // Moved somewhere free, device 2 gets its ioeventfd back; nothing fails on the way out.
  cfgWrite(2, 0x10, 4, 0xd100_0000);
  deepEqual(notifyOf(second), [`${(0xd100_0000 + NOTIFY_OFFSET).toString(16)}/2`]);
  equal(lines.length, 1);
  equal(functions.length, 2);
  dev.close();
});

Deno.test("pci devices: INTx the host refuses at start is one line, and the VM is planned", () => {
  // The fake device's fd takes no VFIO ioctl (ENOTTY), as a host that refuses them.
  const { lines, dev } = machine({ irqCounts: [1, 1, 4] });
  equal(lines.length, 1);
  ok(lines[0].includes("cannot turn INTx on") && lines[0].includes("ENOTTY"), lines[0]);
  dev.close();
});

Deno.test("pci devices: a VFIO function's INTx is a resampling irqfd on its pin's GSI", () => {
  const { vm, plan, dev } = machine({ irqCounts: [1, 1, 4] });
  const intx = plan.vfio[0].interrupts.intx!;
  equal(vm.gsiOf(intx.triggerFd), intx.gsi);
  equal(vm.resampleFds.get(intx.triggerFd), intx.resampleFd);
  // MSI and MSI-X vectors are edge-triggered: no resample fd.
  equal(vm.resampleFds.size, 1);
  dev.close();
});

Deno.test("pci devices: MSI-X or MSI the host refuses stays disabled, and the VM goes on", () => {
  const { lines, cfgWrite, cfgRead, dev } = machine();
  cfgWrite(VFIO_SLOT, 0xb2, 2, 0x8000); // MSI-X Enable
  equal(cfgRead(VFIO_SLOT, 0xb2, 2) & 0x8000, 0, "MSI-X reads disabled");
  equal(lines.length, 1);
  ok(lines[0].includes("cannot turn MSI-X on") && lines[0].includes("MSI-X stays disabled"));
  cfgWrite(VFIO_SLOT, 0x54, 4, 0xfee0_0000);
  cfgWrite(VFIO_SLOT, 0x5c, 2, 0x0041);
  cfgWrite(VFIO_SLOT, 0x52, 2, 0x0001); // MSI Enable
  equal(cfgRead(VFIO_SLOT, 0x52, 2) & 1, 0, "MSI reads disabled");
  equal(lines.length, 2);
  ok(lines[1].includes("cannot turn MSI on"), lines[1]);
  dev.close();
});

Deno.test("pci devices: MSI routes are taken as the guest enables vectors, for 2048 and more", () => {
  // A passed-through device with 2048 MSI-X vectors (and MSI) beside two virtio devices: all
  // planned, and no route nor irqfd until a driver enables a vector.
  const { vm, plan, cfgWrite, cfgRead, mmio, dev } = machine({
    device: { msixTableSize: 2047, bar4Size: 0x10000, msixTable: 0x0 | 4, msixPba: 0x8000 | 4 },
  });
  equal(plan.vfio[0].msix?.vectors, 2048);
  equal(vm.irqfds.size, 0);
  equal(vm.msiRoutes.length, 0);
  // virtio device 1: memory decoding and MSI-X on; vector 0 programmed and unmasked.
  const d = plan.devices[0];
  const control = d.plan.msix.capOffset + 2;
  cfgWrite(1, 0x04, 2, 0x0002);
  cfgWrite(1, control, 2, 0x8000);
  equal(vm.msiRoutes.length, 0, "every vector is still masked");
  const bar1 = (cfgRead(1, 0x14, 4) & ~0xf) >>> 0; // the MSI-X table, at its start
  const window = mmio.find(bar1, 4)!;
  const write32 = (addr: number, value: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value, true);
    window.device.write(addr - window.base, b);
  };
  write32(bar1, 0xfee0_0000);
  write32(bar1 + 8, 0x41);
  write32(bar1 + 0xc, 0); // unmask
  equal(vm.msiRoutes.length, 1);
  deepEqual(vm.msiRoutes.map((m) => [m.addressLo, m.addressHi, m.data]), [[0xfee0_0000, 0, 0x41]]);
  equal(
    vm.gsiOf(d.vectors.irqFds[0]),
    vm.msiRoutes[0].gsi,
    "its irqfd is bound to the route's GSI",
  );
  equal(vm.irqfds.size, 1, "and no other");
  equal(vm.commits, 1, "one routing change for the unmask");
  // Masked again: the route stays, nothing committed; MSI-X disabled: its irqfd is unbound and
  // its GSI given back, still with no routing change (nothing can reach the stale route).
  write32(bar1 + 0xc, 1);
  equal(vm.msiRoutes.length, 1);
  cfgWrite(1, control, 2, 0x0000);
  equal(vm.irqfds.size, 0);
  equal(vm.commits, 1);
  // Unmasked while disabled: nothing; enabled again: a fresh route, one change.
  write32(bar1 + 0xc, 0);
  equal(vm.commits, 1);
  cfgWrite(1, control, 2, 0x8000);
  equal(vm.commits, 2);
  equal(vm.irqfds.size, 1);
  cfgWrite(1, control, 2, 0x0000);
  // The passed-through device's MSI-X, refused by the host (the fake takes no VFIO ioctl),
  // leaves no route behind either: all its vectors are masked, so none was taken.
  cfgWrite(VFIO_SLOT, 0xb2, 2, 0x8000);
  equal(vm.commits, 2);
  equal(vm.irqfds.size, 0);
  dev.close();
});

Deno.test("pci devices: a VFIO BAR refused over another device's is placed once that one moves", () => {
  const { vm, lines, cfgWrite, devs, tick } = machine({ vfio: 2 });
  const [one, two] = [VFIO_SLOT, VFIO_SLOT + 1];
  cfgWrite(one, 0x04, 2, 0x0002);
  cfgWrite(two, 0x04, 2, 0x0002);
  const slotOf = (bdfSlot: number) => vfioSlots(vm).filter(([id]) => id === bdfSlot);
  const before = vfioSlots(vm);
  equal(before.length, 4, "BAR 2 and BAR 4 of each");
  const [oneBar2, , twoBar2] = before.map(([id]) => id);
  // The second device's BAR 2 onto the first's: refused, one line.
  cfgWrite(one, 0x18, 4, 0xd000_0000);
  tick();
  cfgWrite(two, 0x18, 4, 0xd000_0000);
  deepEqual(slotOf(twoBar2), []);
  equal(lines.length, 1);
  ok(lines[0].includes("0000:00:11.0: BAR 2"), lines[0]);
  // The first device's BAR 2 moves away: the second's is placed, with no write of its own.
  cfgWrite(one, 0x18, 4, 0xd100_0000);
  deepEqual(slotOf(oneBar2), [[oneBar2, 0xd100_0000]]);
  deepEqual(slotOf(twoBar2), [[twoBar2, 0xd000_0000]]);
  for (const d of devs) d.close();
});

Deno.test("pci devices: ECAM at 0xfeb00000 reaches the functions conf1 does, and each exit is counted by mechanism", () => {
  const m = machine();
  const ecam = m.mmio.find(PCI_ECAM_START, 4)!;
  const viaEcam = (slot: number, reg: number) => {
    const d = new Uint8Array(4);
    ecam.device.read((slot << 15) | reg, d);
    return new DataView(d.buffer).getUint32(0, true);
  };
  for (const slot of [0, 1, 2, VFIO_SLOT, 4]) {
    equal(viaEcam(slot, 0), m.cfgRead(slot, 0, 4), `slot ${slot} ids`);
  }
  equal(viaEcam(4, 0), 0xffff_ffff, "slot 4 is empty");
  // 6 ECAM reads; each conf1 read is two exits: the address, then the data.
  deepEqual(m.configExits, { conf1: 10, ecam: 6 });
});
