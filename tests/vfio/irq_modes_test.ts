import { deepEqual } from "../assert.ts";
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
    setEventfds: (index: number, f: number[]) => void calls.push(["set", index, f]),
    setIntxUnmask: (fd: number) => void calls.push(["unmask", IRQ_INTX, [fd]]),
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

Deno.test("vfio irq: a failed switch leaves the state at none, and the next wish retries", () => {
  let fail = true;
  const calls: Call[] = [];
  const m = new VfioIrqModes(VfioIrqModes.createState(), ALL, {
    setEventfds: (index, f) => {
      if (fail && index === IRQ_MSIX && f.length > 0) throw new Error("EINVAL");
      calls.push(["set", index, f]);
    },
    setIntxUnmask: () => {},
  });
  m.start();
  try {
    m.msix(true);
  } catch { /* the ioctl failed */ }
  deepEqual(m.current(), { index: IRQ_NONE, vectors: 0 });
  fail = false;
  m.msix(true);
  deepEqual(m.current(), { index: IRQ_MSIX, vectors: 3 });
});
