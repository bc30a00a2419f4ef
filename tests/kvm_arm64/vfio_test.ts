// VFIO passthrough on the 16 KiB-page arm64 host, to a 4 KiB-page guest: the case the MSI-X
// sizing was built for. The aarch64 sandbox's devices sit behind its SMMUv3 and signal through
// its ITS; each MSI-X table and PBA lies in a BAR smaller than, or not aligned to, a host page:
// a modern virtio-net (table and PBA in one 4 KiB BAR), an e1000e (16 KiB BAR 3, table at 0,
// PBA at 0x2000: the RTL8168's shape) and an NVMe controller (table and PBA inside its register
// BAR). Each binds its driver in the guest, counts MSI-X interrupts delivered through the
// guest's ITS, and moves data: a ping to QEMU's user-net gateway, a namespace write and read.
import { equal, match, ok } from "../assert.ts";
import { runDenovmm } from "../kvm/guest_runner.ts";
import { countsScript, irqCounts, msixFromDump, pingScript } from "../kvm/vfio_guest.ts";

const VIRTIO_NET = Deno.env.get("DENOVMM_VFIO_VIRTIO_NET");
const E1000E = Deno.env.get("DENOVMM_VFIO_E1000E");
const NVME = Deno.env.get("DENOVMM_VFIO_NVME");

Deno.test("arm64 vfio: the sandbox offers the three devices, bound to vfio-pci", () => {
  for (const [name, bdf] of [["virtio-net", VIRTIO_NET], ["e1000e", E1000E], ["nvme", NVME]]) {
    ok(bdf, `${name}: no DENOVMM_VFIO_* address: run this suite in the arm64 sandbox with --vfio`);
    match(Deno.readLinkSync(`/sys/bus/pci/devices/${bdf}/driver`), /\/vfio-pci$/);
  }
});

/** The function behind `dev`'s sysfs node, its driver, its config space and MSI-X counts. */
function describeScript(bdfExpr: string): string[] {
  return [
    `BDF=${bdfExpr}`,
    "echo driver $(basename $(readlink /sys/bus/pci/devices/$BDF/driver))",
    "echo config-dump $(od -An -tx1 -v -N 256 /sys/bus/pci/devices/$BDF/config)",
  ];
}

function msixOf(out: string) {
  return msixFromDump(/config-dump ([0-9a-f ]+)/.exec(out)?.[1] ?? "");
}

/** Every vector of the function is MSI-X, is an ITS LPI, and some fired. */
function assertItsMsix(out: string): void {
  const after = irqCounts(out, "after");
  ok(after.length >= 1 && after.every((v) => v.kind === "msix"), out);
  ok(after.some((v) => v.count > 0), `no MSI-X interrupt counted: ${out}`);
  match(out, /^its-lines [1-9]/m, "the vectors are ITS-MSI lines in /proc/interrupts");
}

const itsLines = `echo "its-lines $(grep -c ITS-MSI /proc/interrupts)"`;

if (VIRTIO_NET && E1000E && NVME) {
  Deno.test("arm64 vfio: virtio-net (table and PBA in one 4 KiB BAR) binds, MSI-X via the ITS, pings", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", VIRTIO_NET],
      input: [
        ...describeScript("$(basename $(dirname $(readlink -f /sys/class/net/eth0/device)))"),
        ...pingScript("eth0", "10.0.2.15"),
        countsScript("after", "$BDF"),
        itsLines,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /^driver virtio-pci\r?$/m);
    equal(
      JSON.stringify(msixOf(r.stdout)),
      JSON.stringify({
        enabled: true,
        count: 3,
        tableBar: 1,
        tableOffset: 0,
        pbaBar: 1,
        pbaOffset: 0x800,
      }),
    );
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    assertItsMsix(r.stdout);
  });

  Deno.test("arm64 vfio: e1000e (16 KiB BAR 3, PBA at 0x2000) binds, MSI-X via the ITS, pings", async () => {
    const r = await runDenovmm({
      args: ["run", "--debug", "--vfio-pci", E1000E],
      input: [
        ...describeScript("$(basename $(readlink /sys/class/net/eth0/device))"),
        ...pingScript("eth0", "10.0.2.15"),
        countsScript("after", "$BDF"),
        itsLines,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /^driver e1000e\r?$/m);
    equal(
      JSON.stringify(msixOf(r.stdout)),
      JSON.stringify({
        enabled: true,
        count: 5,
        tableBar: 3,
        tableOffset: 0,
        pbaBar: 3,
        pbaOffset: 0x2000,
      }),
    );
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    assertItsMsix(r.stdout);
    const routing = /KVM_SET_GSI_ROUTING calls: (\d+) \(MSI-X enable and unmask events: (\d+)\)/
      .exec(r.stderr);
    ok(routing && Number(routing[1]) > 0 && Number(routing[1]) <= Number(routing[2]), r.stderr);
  });

  Deno.test("arm64 vfio: with the guest's MSI off (pci=nomsi) e1000e runs on INTx, a SPI with a resampling irqfd", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", E1000E, "-p", "quiet pci=nomsi"],
      input: [
        ...pingScript("eth0", "10.0.2.15"),
        `echo "intx $(grep eth0 /proc/interrupts)"`,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    // Level-triggered on the GIC: each interrupt is EOIed, KVM signals the resample eventfd,
    // VFIO unmasks the line; more than one interrupt means that round trip works.
    const line = /^intx +\d+: +(\d+) +GICv3 +(\d+) +Level.*eth0/m.exec(r.stdout);
    ok(line && Number(line[1]) >= 4, r.stdout);
    ok(Number(line[2]) >= 36 && Number(line[2]) <= 39, `INTx is SPI 4-7 (INTID 36-39): ${line[2]}`);
  });

  Deno.test("arm64 vfio: nvme (table and PBA in its register BAR) binds, MSI-X via the ITS, a namespace reads back what was written", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", NVME],
      input: [
        "i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
        ...describeScript("$(basename $(readlink -f /sys/class/nvme/nvme0/device))"),
        "echo bar0 $(head -1 /sys/bus/pci/devices/$BDF/resource)",
        "echo denovmm-nvme-$$ > /tmp/pattern",
        "dd if=/tmp/pattern of=/dev/nvme0n1 bs=512 seek=8 conv=notrunc,fsync 2>/dev/null",
        "echo 3 > /proc/sys/vm/drop_caches",
        "dd if=/dev/nvme0n1 bs=512 skip=8 count=1 iflag=direct 2>/dev/null | head -c 32 | sed 's/^/readback /'; echo",
        "echo expect $(cat /tmp/pattern)",
        countsScript("after", "$BDF"),
        itsLines,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /^driver nvme\r?$/m);
    const cap = msixOf(r.stdout);
    ok(cap?.enabled, r.stdout);
    equal(cap.tableBar, 0);
    equal(cap.pbaBar, 0);
    // Both inside BAR 0, as the device declares: no host-page rounding pushed either out.
    const bar0 = /^bar0 (0x[0-9a-f]+) (0x[0-9a-f]+)/m.exec(r.stdout);
    ok(bar0, r.stdout);
    const size = Number(bar0[2]) - Number(bar0[1]) + 1;
    ok(cap.tableOffset + cap.count * 16 <= size && cap.pbaOffset < size, JSON.stringify(cap));
    const expect = /^expect (\S+)/m.exec(r.stdout)?.[1];
    ok(expect && r.stdout.includes(`readback ${expect}`), r.stdout);
    assertItsMsix(r.stdout);
  });
}
