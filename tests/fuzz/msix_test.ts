// Hostile-guest fuzzing of MSI-X: table and PBA accesses of every width and alignment around
// the table's and PBA's edges, Message Control writes of every width at and around the
// capability, and device triggers, against the rule that a message is signalled only for an
// enabled, unmasked vector with the address and data the guest programmed.
import type { MsiMessage } from "../../src/bus/interrupt.ts";
import { deepEqual, equal, ok } from "../assert.ts";
import { PciConfigSpace } from "../../src/pci/config_space.ts";
import { Msix, msixCapabilityBody, PCI_CAP_ID_MSIX } from "../../src/pci/msix.ts";
import { fuzz, FuzzStats, leBytes, ops, pick } from "./harness.ts";

const WIDTHS = [4, 4, 8, 8, 1, 2, 3, 16];
const VECTORS = [1, 2, 3, 32, 33, 64, 65, 2048];

function device(vectors: number) {
  const cfg = new PciConfigSpace(PciConfigSpace.createState());
  cfg.addBar(1, { kind: "mem32", size: 0x10000 });
  const pbaOffset = Math.ceil((16 * vectors) / 8) * 8;
  const { body, writable } = msixCapabilityBody(vectors, 1, 0, 1, pbaOffset);
  cfg.addCapability(0x09, new Uint8Array(6)); // something before it
  const cap = cfg.addCapability(PCI_CAP_ID_MSIX, body, writable);
  const state = Msix.createState(vectors);
  return { cfg, cap, state, pbaOffset };
}

Deno.test("fuzz msix: no access escapes; only enabled, unmasked vectors signal what was programmed", () => {
  const stats = new FuzzStats("MSI-X");
  const neighbour = device(4);
  const neighbourBytes = new Uint8Array(neighbour.state).slice();
  fuzz(stats, ops(8), (list) => {
    const n = pick(VECTORS, list.length);
    const { cfg, cap, state, pbaOffset } = device(n);
    let accesses = 0;
    let checkOnSignal = true;
    // The machine's routes as a vector group holds them: a trigger delivers the routed message,
    // which must be the one the guest programmed (routes follow every deliverable vector).
    const routed = new Map<number, MsiMessage>();
    const msix: Msix = new Msix({ vectors: n, state, capOffset: cap }, cfg, {
      trigger: (v) => {
        stats.count("signals");
        ok(v >= 0 && v < n, `vector ${v}`);
        if (!checkOnSignal) return;
        const e = msix.entry(v)!;
        ok(msix.enabled() && !msix.functionMasked() && !e.masked, "signalled while masked");
        const m = routed.get(v);
        deepEqual(
          m && [m.addressLo, m.addressHi, m.data],
          [e.addressLo, e.addressHi, e.data],
          "the route carries the programmed message",
        );
      },
      route: (first, end, message) => {
        ok(first >= 0 && end <= n && first < end, `route ${first}..${end}`);
        stats.count("routes");
        for (let v = first; v < end; v++) {
          const m = message(v);
          if (m) routed.set(v, { ...m });
        }
        return true;
      },
      release: () => {
        stats.count("releases");
        routed.clear();
      },
    });
    const tableEdge = (a: number) => pick([0, 12, 16 * n - 16, 16 * n - 4, 16 * n, 16 * n + 8], a);
    for (const [kind, a, b, c] of list) {
      const width = pick(WIDTHS, b);
      if (kind <= 1) {
        const offset = a % 3 ? tableEdge(a >> 2) + ((b >> 3) % 16) - 4 : a % (16 * n + 32);
        const data = leBytes(width, c, b);
        if (kind === 0) msix.tableWrite(offset, data);
        else msix.tableRead(offset, data);
      } else if (kind === 2) {
        const d = new Uint8Array(width);
        if (b % 2) msix.pbaRead((a % 24) - 8, d);
        else msix.pbaWrite((a % 24) - 8, d);
      } else if (kind === 3) {
        // Message Control and the bytes around it, any width.
        cfg.write(cap - 2 + (a % 8), pick([1, 2, 4], b), c);
      } else if (kind === 4) {
        const v = a % (n + 2);
        const on = msix.enabled();
        equal(msix.trigger(v), on && v < n, `trigger ${v}`);
      } else if (kind === 5) {
        // A driver's bring-up: program every vector, unmask, enable.
        const v = a % n;
        msix.tableWrite(16 * v, leBytes(8, 0xfee0_0000 | (v << 12), 0));
        msix.tableWrite(16 * v + 8, leBytes(4, 0x4000 | v));
        msix.tableWrite(16 * v + 12, leBytes(4, 0));
        cfg.write(cap + 2, 2, 0x8000);
        accesses += 3;
      } else if (kind === 6) {
        msix.tableWrite(16 * (a % n) + 12, leBytes(4, c & 1));
      } else {
        // Raw: any offset in the BAR's first 64 KiB, reads through the PBA's window too.
        const d = leBytes(width, c);
        if (a % 2) msix.tableWrite(b % 0x10000, d);
        else msix.pbaRead((b % 0x10000) - pbaOffset, d);
      }
      accesses++;
    }
    // Unmask everything and enable: whatever is still pending goes out, once.
    checkOnSignal = false;
    for (let v = 0; v < n; v++) msix.tableWrite(16 * v + 12, leBytes(4, 0));
    cfg.write(cap + 2, 2, 0x8000);
    for (let v = 0; v < n; v++) equal(msix.pending(v), false, `pending ${v} after unmask`);
    deepEqual(new Uint8Array(neighbour.state), neighbourBytes, "another function's MSI-X state");
    return accesses;
  });
});
