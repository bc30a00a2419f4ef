import { ENOSPC } from "../../ffi/errno.ts";
import { deepEqual, equal } from "../assert.ts";
import { RateLimitedLog } from "../../src/log.ts";
import {
  IRQ_INTX,
  IRQ_MSI,
  IRQ_MSIX,
  IRQ_NONE,
  type VfioIrqFds,
  VfioIrqModes,
} from "../../src/vfio/irq_modes.ts";

type Call = [string, number, number[]];

function modes(fds: VfioIrqFds) {
  const calls: Call[] = [];
  const state = VfioIrqModes.createState();
  const control = {
    setEventfds: (index: number, f: number[]) => (calls.push(["set", index, f]), 0),
    setIntxUnmask: (fd: number) => (calls.push(["unmask", IRQ_INTX, [fd]]), 0),
  };
  return { calls, state, m: new VfioIrqModes(state, fds, control), control };
}

const ALL: VfioIrqFds = {
  intx: { triggerFd: 10, resampleFd: 11 },
  msi: [20, 21],
  msix: [30, 31, 32],
};

Deno.test("vfio irq: INTx at start, off before MSI-X goes on, back when MSI-X goes off", () => {
  const { calls, m } = modes(ALL);
  m.start();
  deepEqual(calls.splice(0), [["set", IRQ_INTX, [10]], ["unmask", IRQ_INTX, [11]]]);
  m.msix(true);
  deepEqual(calls.splice(0), [["set", IRQ_INTX, []], ["set", IRQ_MSIX, [30, 31, 32]]]);
  deepEqual(m.current(), { index: IRQ_MSIX, vectors: 3 });
  m.msix(true); // already on: no ioctl
  deepEqual(calls.splice(0), []);
  m.msix(false);
  deepEqual(calls.splice(0), [
    ["set", IRQ_MSIX, []],
    ["set", IRQ_INTX, [10]],
    ["unmask", IRQ_INTX, [11]],
  ]);
});

Deno.test("vfio irq: MSI with the vectors enabled, capped at the device's; MSI-X wins over MSI", () => {
  const { calls, m } = modes(ALL);
  m.start();
  calls.length = 0;
  m.msi(1);
  deepEqual(calls.splice(0), [["set", IRQ_INTX, []], ["set", IRQ_MSI, [20]]]);
  m.msi(8);
  deepEqual(calls.splice(0), [["set", IRQ_MSI, []], ["set", IRQ_MSI, [20, 21]]]);
  m.msix(true);
  deepEqual(calls.splice(0), [["set", IRQ_MSI, []], ["set", IRQ_MSIX, [30, 31, 32]]]);
  m.msix(false);
  deepEqual(calls.splice(0), [["set", IRQ_MSIX, []], ["set", IRQ_MSI, [20, 21]]]);
  m.msi(0);
  deepEqual(calls.splice(0), [
    ["set", IRQ_MSI, []],
    ["set", IRQ_INTX, [10]],
    ["unmask", IRQ_INTX, [11]],
  ]);
});

Deno.test("vfio irq: a device without INTx has nothing on until the guest enables MSI-X", () => {
  const { calls, m } = modes({ msi: [], msix: [30] });
  m.start();
  deepEqual(calls, []);
  deepEqual(m.current(), { index: IRQ_NONE, vectors: 0 });
  m.msi(4); // no MSI on this device
  deepEqual(calls, []);
  m.msix(true);
  m.msix(false);
  deepEqual(calls, [["set", IRQ_MSIX, [30]], ["set", IRQ_MSIX, []]]);
});

Deno.test("vfio irq: two threads' instances share one state", () => {
  const { calls, state, m, control } = modes(ALL);
  const other = new VfioIrqModes(state, ALL, control);
  m.start();
  other.msix(true);
  deepEqual(m.current(), { index: IRQ_MSIX, vectors: 3 });
  m.msix(true);
  deepEqual(calls.length, 4, "the second thread saw MSI-X already on");
});

/** Modes whose control fails (ENOSPC) for the indexes in `failing` being turned on. */
function failing(failing: Set<number>) {
  const calls: Call[] = [];
  const lines: string[] = [];
  const m = new VfioIrqModes(
    VfioIrqModes.createState(),
    ALL,
    {
      setEventfds: (index, f) => {
        if (failing.has(index) && f.length > 0) return ENOSPC;
        calls.push(["set", index, f]);
        return 0;
      },
      setIntxUnmask: (fd) => (calls.push(["unmask", IRQ_INTX, [fd]]), 0),
    },
    "0000:00:10.0",
    new RateLimitedLog((line) => lines.push(line), () => 0),
  );
  return { m, calls, lines };
}

Deno.test("vfio irq: a refused MSI-X is one line, stays off, and the device is back on INTx", () => {
  const fail = new Set([IRQ_MSIX]);
  const { m, calls, lines } = failing(fail);
  m.start();
  calls.length = 0;
  equal(m.msix(true), false, "refused");
  deepEqual(m.current(), { index: IRQ_INTX, vectors: 1 });
  deepEqual(calls.splice(0), [
    ["set", IRQ_INTX, []],
    ["set", IRQ_INTX, [10]],
    ["unmask", IRQ_INTX, [11]],
  ]);
  deepEqual(lines, [
    "denovmm: vfio 0000:00:10.0: cannot turn MSI-X on with 3 vector(s): VFIO_DEVICE_SET_IRQS " +
    "failed: ENOSPC; MSI-X stays disabled",
  ]);
  // The wish was dropped: an MSI change does not bring MSI-X back.
  equal(m.msi(1), true);
  deepEqual(m.current(), { index: IRQ_MSI, vectors: 1 });
  // Once the host has vectors again, the guest's next enable works.
  fail.clear();
  equal(m.msix(true), true);
  deepEqual(m.current(), { index: IRQ_MSIX, vectors: 3 });
  equal(lines.length, 1, "a second refusal of the same cause within the second would not print");
});

Deno.test("vfio irq: a refused MSI leaves INTx on; refused INTx leaves none, retried later", () => {
  const fail = new Set([IRQ_MSI, IRQ_INTX]);
  const { m, lines } = failing(fail);
  m.start();
  deepEqual(m.current(), { index: IRQ_NONE, vectors: 0 });
  equal(lines.length, 1);
  fail.delete(IRQ_INTX);
  equal(m.msi(2), false);
  deepEqual(m.current(), { index: IRQ_INTX, vectors: 1 }, "INTx retried, and on");
  equal(lines.length, 2);
  equal(m.msi(0), true);
  deepEqual(m.current(), { index: IRQ_INTX, vectors: 1 });
});

Deno.test("vfio irq: MSI-X refused and then INTx refused is still MSI-X refused", () => {
  const { m, lines } = failing(new Set([IRQ_MSIX, IRQ_INTX]));
  m.start();
  equal(m.msix(true), false);
  deepEqual(m.current(), { index: IRQ_NONE, vectors: 0 });
  equal(lines.length, 2, "one line for MSI-X, one for INTx");
});
