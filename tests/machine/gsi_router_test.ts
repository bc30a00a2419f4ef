// The GSI router against a fake VM (./fake_vm.ts) that keeps the routing table and irqfds as
// KVM would, with KVM's limits: routes are taken as vectors become deliverable, given back
// (with no routing change) when MSI or MSI-X is disabled, and what KVM cannot take is refused
// with one line, never an exception.
import { ENOMEM } from "../../ffi/errno.ts";
import { deepEqual, equal, ok } from "../assert.ts";
import { DEFAULT_ROUTES, FIRST_MSI_GSI, GsiRouter } from "../../src/machine/gsi_router.ts";
import { MsiVectors } from "../../src/machine/interrupts.ts";
import type { MsiMessage } from "../../src/bus/interrupt.ts";
import { RateLimitedLog } from "../../src/log.ts";
import { FakeVm } from "./fake_vm.ts";

function router(maxRoutes = 4096) {
  const vm = new FakeVm(maxRoutes);
  const lines: string[] = [];
  const log = new RateLimitedLog((line) => lines.push(line), () => 0);
  const r = new GsiRouter(GsiRouter.createState(vm.checkExtension(25)), vm, log);
  let nextFd = 1000;
  const device = (vectors: number, name = "dev") => {
    const fds = Array.from({ length: vectors }, () => nextFd++);
    const routes = new SharedArrayBuffer(4 * vectors);
    return { fds, v: new MsiVectors({ irqFds: fds, routes, name, devid: 8 }, r) };
  };
  return { vm, lines, r, device };
}

const message = (v: number): MsiMessage => ({
  addressLo: 0xfee0_0000 + (v % 8) * 0x1000,
  addressHi: 0,
  data: v,
});

Deno.test("gsi router: routes come as vectors are enabled and go when they are disabled", () => {
  const { vm, r, device } = router();
  const { fds, v } = device(4);
  equal(vm.commits, 0, "nothing is routed before the guest enables anything");
  ok(v.route(0, 2, message));
  equal(vm.commits, 1, "one table for the lot");
  const g0 = v.gsi(0), g1 = v.gsi(1);
  ok(g0 >= FIRST_MSI_GSI && g1 >= FIRST_MSI_GSI && g0 !== g1);
  deepEqual(vm.msiRoutes, [{ gsi: g0, ...message(0) }, { gsi: g1, ...message(1) }]);
  equal(vm.routingEntries, DEFAULT_ROUTES + 2, "the default routes are kept");
  equal(vm.gsiOf(fds[0]), g0, "irqfd bound to the vector's GSI");
  equal(vm.gsiOf(fds[2]), undefined, "a vector not enabled has no GSI");
  // The same messages again: no new table.
  ok(v.route(0, 2, message));
  equal(vm.commits, 1);
  // A new message for vector 1: same GSI, new route.
  ok(v.route(1, 2, () => ({ addressLo: 0xfee0_2000, addressHi: 0, data: 0x99 })));
  equal(v.gsi(1), g1);
  deepEqual(vm.msiRoutes[1], { gsi: g1, addressLo: 0xfee0_2000, addressHi: 0, data: 0x99 });
  // Disabled: GSIs and irqfds go, with no routing change (nothing can reach the stale routes).
  v.release();
  equal(vm.irqfds.size, 0);
  equal(r.routed(), 0);
  equal(v.gsi(0), 0);
  equal(vm.commits, 2, "releasing commits nothing");
  // The next change leaves them out.
  const other = device(1);
  ok(other.v.route(0, 1, message));
  equal(vm.commits, 3);
  deepEqual(vm.msiRoutes, [{ gsi: other.v.gsi(0), ...message(0) }]);
});

Deno.test("gsi router: a 2048-vector device fits beside virtio devices and MSI", () => {
  const { vm, r, device, lines } = router();
  const big = device(2048, "vfio MSI-X");
  const msi = device(32, "vfio MSI");
  const virtio = [device(3), device(3), device(2)];
  ok(big.v.route(0, 2048, message));
  ok(msi.v.route(0, 32, message));
  for (const d of virtio) ok(d.v.route(0, d.fds.length, message));
  equal(r.routed(), 2048 + 32 + 8);
  equal(vm.msiRoutes.length, 2048 + 32 + 8);
  equal(new Set(vm.msiRoutes.map((m) => m.gsi)).size, vm.msiRoutes.length, "GSIs unique");
  ok(vm.msiRoutes.every((m) => m.gsi < 4096));
  deepEqual(lines, []);
});

Deno.test("gsi router: past KVM's limit a vector gets no route and one line; freed ones return", () => {
  const { vm, r, device, lines } = router(1024); // an old kernel's KVM_MAX_IRQ_ROUTES
  equal(r.capacity(), 1024 - DEFAULT_ROUTES);
  const a = device(2048, "vfio 0000:00:10.0 MSI-X");
  equal(a.v.route(0, 2048, message), false);
  equal(r.routed(), 1024 - DEFAULT_ROUTES, "every route KVM can take is taken");
  equal(vm.routingEntries, 1024);
  equal(lines.length, 1, "one line for the lot");
  ok(lines[0].includes("no MSI route left for vector 984"), lines[0]);
  equal(a.v.gsi(2000), 0);
  // Another device's vector is refused too, until the first gives some back.
  const b = device(1);
  equal(b.v.route(0, 1, message), false);
  a.v.release();
  ok(b.v.route(0, 1, message));
  ok(b.v.gsi(0) >= FIRST_MSI_GSI);
  ok(vm.msiRoutes.every((m) => m.gsi < 1024));
});

Deno.test("gsi router: a table KVM refuses changes nothing, and the next try works", () => {
  const { vm, r, device, lines } = router();
  const { fds, v } = device(2);
  ok(v.route(0, 1, message));
  const before = structuredClone(vm.msiRoutes);
  vm.failRouting = ENOMEM;
  equal(v.route(0, 2, () => ({ addressLo: 0xfee0_3000, addressHi: 0, data: 7 })), false);
  equal(lines.length, 1);
  ok(lines[0].includes("KVM_SET_GSI_ROUTING failed: ENOMEM"), lines[0]);
  deepEqual(vm.msiRoutes, before);
  equal(v.gsi(1), 0, "the new vector got nothing");
  equal(vm.gsiOf(fds[1]), undefined);
  equal(r.routed(), 1);
  vm.failRouting = 0;
  ok(v.route(0, 2, () => ({ addressLo: 0xfee0_3000, addressHi: 0, data: 7 })));
  equal(r.routed(), 2);
  deepEqual(vm.msiRoutes.map((m) => m.data), [7, 7]);
});

Deno.test("gsi router: two threads' routers share one table", () => {
  const vm = new FakeVm();
  const state = GsiRouter.createState(4096);
  const one = new GsiRouter(state, vm);
  const two = new GsiRouter(state, vm);
  const plan = { irqFds: [7, 8], routes: new SharedArrayBuffer(8), name: "dev", devid: 8 };
  const a = new MsiVectors(plan, one);
  const b = new MsiVectors(plan, two);
  a.route(0, 1, message);
  b.route(1, 2, message);
  equal(vm.msiRoutes.length, 2, "the second thread's table has the first's route");
  equal(b.gsi(0), a.gsi(0));
  b.release();
  equal(a.gsi(0), 0);
  equal(vm.irqfds.size, 0);
  equal(one.routed(), 0);
});

Deno.test("gsi router: a message whose upper address dword is 2^21 or more reaches KVM exact", () => {
  // hi * 2^32 + lo as one number would round 0xffff_ff00_fee0_100c to ...fee0_1000.
  const { vm, device } = router();
  const { v } = device(1);
  const m = { addressLo: 0xfee0_100c, addressHi: 0xffff_ff00, data: 0x4041 };
  ok(v.route(0, 1, () => m));
  deepEqual(vm.msiRoutes, [{ gsi: v.gsi(0), ...m }]);
  ok(v.route(0, 1, () => ({ ...m, addressLo: 0xfee0_1008 })), "a change in the low bits only");
  equal(vm.commits, 2, "is a change, committed");
  equal(vm.msiRoutes[0].addressLo, 0xfee0_1008);
});

Deno.test("gsi router: undefined leaves a vector's route as it is, and counts every commit", () => {
  const { vm, r, device } = router();
  const { v } = device(3);
  ok(v.route(0, 3, message));
  const g = [v.gsi(0), v.gsi(1), v.gsi(2)];
  ok(v.route(0, 3, (i) => i === 1 ? { ...message(1), data: 0x77 } : undefined));
  deepEqual([v.gsi(0), v.gsi(1), v.gsi(2)], g, "no vector lost its GSI");
  deepEqual(vm.msiRoutes.map((m) => m.data), [0, 0x77, 2]);
  ok(v.route(0, 3, () => undefined));
  equal(vm.commits, 2, "nothing to change, nothing committed");
  equal(r.commits(), vm.commits, "the router counts what KVM was sent");
});
