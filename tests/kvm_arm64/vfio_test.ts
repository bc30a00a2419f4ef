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

const itsLines = `echo "its-lines $(grep -c ITS-MSI /proc/interrupts)"`;

/** The function's driver and config space, tagged with `tag`. */
function describeScript(tag: string, bdf: string): string[] {
  return [
    `echo "driver-${tag} $(basename $(readlink /sys/bus/pci/devices/${bdf}/driver))"`,
    // Unquoted: the shell joins od's lines into one.
    `echo config-${tag} $(od -An -tx1 -v -N 256 /sys/bus/pci/devices/${bdf}/config)`,
    `echo "bar0-${tag} $(head -1 /sys/bus/pci/devices/${bdf}/resource)"`,
  ];
}

function msixOf(out: string, tag: string) {
  // At a line's start: the shell echoes the command line, which names the tag too.
  return msixFromDump(new RegExp(`^config-${tag} ([0-9a-f ]+)`, "m").exec(out)?.[1] ?? "");
}

/** Every vector of the function is MSI-X and some fired. */
function assertMsixFired(out: string, tag: string): void {
  const after = irqCounts(out, `after-${tag}`);
  ok(after.length >= 1 && after.every((v) => v.kind === "msix"), `${tag}: ${out}`);
  ok(after.some((v) => v.count > 0), `${tag}: no MSI-X interrupt counted: ${out}`);
}

if (VIRTIO_NET && E1000E && NVME) {
  // One boot with all three: each guest boot costs about a minute under the emulated CPU, and
  // CI's 30 minutes are shared with the x86-64 suite.
  Deno.test("arm64 vfio: virtio-net, e1000e and nvme at once: drivers bound, MSI-X through the ITS, pings and a namespace read back", async () => {
    const r = await runDenovmm({
      args: ["run", "--debug", "--vfio-pci", VIRTIO_NET, "--vfio-pci", E1000E, "--vfio-pci", NVME],
      input: [
        // Which interface is which: virtio_net's device is a virtio device under the function.
        "for n in /sys/class/net/eth*; do d=$(readlink -f $n/device); " +
        "case $(basename $(readlink $d/driver)) in virtio_net) VIF=$(basename $n); VBDF=$(basename $(dirname $d));; e1000e) EIF=$(basename $n); EBDF=$(basename $d);; esac; done",
        "i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
        "NBDF=$(basename $(readlink -f /sys/class/nvme/nvme0/device))",
        'echo "functions virtio=$VBDF/$VIF e1000e=$EBDF/$EIF nvme=$NBDF"',
        ...describeScript("virtio", "$VBDF"),
        ...describeScript("e1000e", "$EBDF"),
        ...describeScript("nvme", "$NBDF"),
        ...pingScript("$VIF", "10.0.2.15").map((l) => l.replaceAll("$VIF: ", "virtio: ")),
        ...pingScript("$EIF", "10.0.2.16").map((l) => l.replaceAll("$EIF: ", "e1000e: ")),
        "echo denovmm-nvme-$$ > /tmp/pattern",
        "dd if=/tmp/pattern of=/dev/nvme0n1 bs=512 seek=8 conv=notrunc,fsync 2>/dev/null",
        "echo 3 > /proc/sys/vm/drop_caches",
        "dd if=/dev/nvme0n1 bs=512 skip=8 count=1 iflag=direct 2>/dev/null | head -c 32 | sed 's/^/readback /'; echo",
        "echo expect $(cat /tmp/pattern)",
        countsScript("after-virtio", "$VBDF"),
        countsScript("after-e1000e", "$EBDF"),
        countsScript("after-nvme", "$NBDF"),
        itsLines,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    const out = r.stdout;
    match(out, /^functions virtio=0000:00:\S+\/eth\d e1000e=0000:00:\S+\/eth\d nvme=0000:/m, out);
    match(out, /^driver-virtio virtio-pci\r?$/m);
    match(out, /^driver-e1000e e1000e\r?$/m);
    match(out, /^driver-nvme nvme\r?$/m);
    // As each device declares them, in BARs smaller than (or not aligned to) the 16 KiB page.
    equal(
      JSON.stringify(msixOf(out, "virtio")),
      JSON.stringify({
        enabled: true,
        count: 3,
        tableBar: 1,
        tableOffset: 0,
        pbaBar: 1,
        pbaOffset: 0x800,
      }),
      out,
    );
    equal(
      JSON.stringify(msixOf(out, "e1000e")),
      JSON.stringify({
        enabled: true,
        count: 5,
        tableBar: 3,
        tableOffset: 0,
        pbaBar: 3,
        pbaOffset: 0x2000,
      }),
      out,
    );
    const nvme = msixOf(out, "nvme");
    ok(nvme?.enabled, out);
    equal(nvme.tableBar, 0);
    equal(nvme.pbaBar, 0);
    // Both inside BAR 0 (16 KiB), as the device declares: no host-page rounding pushed either out.
    const bar0 = /^bar0-nvme (0x[0-9a-f]+) (0x[0-9a-f]+)/m.exec(out);
    ok(bar0, out);
    const size = Number(bar0[2]) - Number(bar0[1]) + 1;
    ok(nvme.tableOffset + nvme.count * 16 <= size && nvme.pbaOffset < size, JSON.stringify(nvme));
    match(out, /virtio: 4 packets transmitted, 4 packets received, 0% packet loss/);
    match(out, /e1000e: 4 packets transmitted, 4 packets received, 0% packet loss/);
    const expect = /^expect (\S+)/m.exec(out)?.[1];
    ok(expect && out.includes(`readback ${expect}`), out);
    for (const tag of ["virtio", "e1000e", "nvme"]) assertMsixFired(out, tag);
    match(out, /^its-lines [1-9]/m, "the vectors are ITS-MSI lines in /proc/interrupts");
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
}
