// VFIO passthrough of real PCI devices: the sandbox's two NICs behind an emulated IOMMU
// (scripts/sandbox.sh --vfio; ../shared/KVM-ENV.md): a modern virtio-net whose MSI-X table and
// PBA share one 4 KiB BAR, and an e1000e. Where this file runs outside that sandbox (a host with
// its own KVM, or the sandbox without --vfio), it runs itself inside it, so it never skips.
import { equal, match, ok } from "../assert.ts";
import { REPO, runDenovmm } from "./guest_runner.ts";
import {
  countsScript,
  irqCounts,
  msiEnabledInDump,
  msixFromDump,
  pingScript,
} from "./vfio_guest.ts";

const VIRTIO_NET = Deno.env.get("DENOVMM_VFIO_VIRTIO_NET");
const E1000E = Deno.env.get("DENOVMM_VFIO_E1000E");

if (!VIRTIO_NET || !E1000E) {
  Deno.test("vfio: runs in the KVM sandbox with its two VFIO-bound NICs", async () => {
    const out = await new Deno.Command("bash", {
      args: [
        `${REPO}scripts/sandbox.sh`,
        "--vfio",
        "--",
        Deno.execPath(),
        "test",
        "-A",
        `${REPO}tests/kvm/vfio_test.ts`,
      ],
      cwd: REPO,
      stdin: "null",
    }).output();
    equal(out.code, 0, "the VFIO tests failed inside the sandbox (see above)");
  });
} else {
  Deno.test("vfio: passed-through virtio-net (table and PBA in one 4 KiB BAR) binds, uses MSI-X, pings 10.0.2.2", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", VIRTIO_NET],
      input: [
        // eth0's device is the virtio device; the PCI function is its parent.
        "D=$(readlink -f /sys/class/net/eth0/device); BDF=$(basename $(dirname $D))",
        "echo driver $(basename $(readlink $D/driver)) $(basename $(readlink /sys/bus/pci/devices/$BDF/driver))",
        "echo config-dump $(od -An -tx1 -v -N 256 /sys/bus/pci/devices/$BDF/config)",
        countsScript("before", "$BDF"),
        ...pingScript("eth0", "10.0.2.15"),
        countsScript("after", "$BDF"),
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(
      r.stdout,
      /^driver virtio_net virtio-pci\r?$/m,
      "virtio_net drives it through virtio-pci",
    );
    const cap = msixFromDump(/config-dump ([0-9a-f ]+)/.exec(r.stdout)?.[1] ?? "");
    equal(
      JSON.stringify(cap),
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
    const before = irqCounts(r.stdout, "before");
    const after = irqCounts(r.stdout, "after");
    ok(after.length >= 2 && after.every((v) => v.kind === "msix"), r.stdout);
    ok(
      after.reduce((a, v) => a + v.count, 0) > before.reduce((a, v) => a + v.count, 0),
      "MSI-X counts grow",
    );
  });

  Deno.test("vfio: passed-through e1000e binds, uses MSI-X, pings 10.0.2.2", async () => {
    const r = await runDenovmm({
      // --debug: the routing calls, held below the MSI-X events (issue 13: e1000e re-masks and
      // rewrites its vectors across a link down and up, which once cost a commit each).
      args: ["run", "--debug", "--vfio-pci", E1000E],
      input: [
        "BDF=$(basename $(readlink /sys/class/net/eth0/device))",
        "echo driver $(basename $(readlink /sys/class/net/eth0/device/driver))",
        "echo config-dump $(od -An -tx1 -v -N 256 /sys/bus/pci/devices/$BDF/config)",
        ...pingScript("eth0", "10.0.2.15"),
        "ip link set eth0 down",
        "ip link set eth0 up",
        "sleep 1",
        countsScript("after", "$BDF"),
        "exit 0",
      ].join("\n") + "\n",
    });
    const routing = /KVM_SET_GSI_ROUTING calls: (\d+) \(MSI-X enable and unmask events: (\d+)\)/
      .exec(r.stderr);
    ok(routing, r.stderr);
    ok(
      Number(routing[1]) > 0 && Number(routing[1]) <= Number(routing[2]),
      `${routing[1]} routing calls for ${routing[2]} MSI-X enable and unmask events`,
    );
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /^driver e1000e/m);
    const cap = msixFromDump(/config-dump ([0-9a-f ]+)/.exec(r.stdout)?.[1] ?? "");
    equal(
      JSON.stringify(cap),
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
    const after = irqCounts(r.stdout, "after");
    ok(
      after.length >= 1 && after.every((v) => v.kind === "msix") && after.some((v) => v.count > 0),
      r.stdout,
    );
  });

  Deno.test("vfio: e1000e with its MSI-X hidden (nomsix) is driven through MSI, then as it asks", async () => {
    const r = await runDenovmm({
      args: ["run", "--debug", "--vfio-pci", `${E1000E},nomsix`],
      input: [
        "BDF=$(basename $(readlink /sys/class/net/eth0/device))",
        "echo config-dump $(od -An -tx1 -v -N 256 /sys/bus/pci/devices/$BDF/config)",
        ...pingScript("eth0", "10.0.2.15"),
        `echo "irq $(grep eth0 /proc/interrupts)"`,
        `echo "selftest $(dmesg | grep -c 'MSI interrupt test failed')"`,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /Failed to initialize MSI-X interrupts\.\s+Falling back to MSI interrupts/);
    equal(msixFromDump(/config-dump ([0-9a-f ]+)/.exec(r.stdout)?.[1] ?? ""), undefined);
    // The guest enabled the emulated MSI capability with a real message, and denovmm moved the
    // device from INTx to MSI (VFIO) and set the route.
    match(
      r.stderr,
      new RegExp(`vfio ${E1000E}: MSI on, 1 vector\\(s\\) 0xfee[0-9a-f]{5}/0x[0-9a-f]+`),
    );
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    // e1000e then checks that an MSI arrives. In this sandbox none does: the outer QEMU's
    // e1000e sends no MSI through VFIO, and QEMU's own vfio-pci fails the same self-test
    // (measured). The driver then goes back to INTx, and denovmm with it.
    const irq = /^irq +\d+: +(\d+) +(\S+)/m.exec(r.stdout);
    ok(irq && Number(irq[1]) >= 4, r.stdout);
    if (irq[2] === "IO-APIC") {
      match(r.stdout, /^selftest 1/m);
      match(r.stderr, new RegExp(`vfio ${E1000E}: MSI off`));
    } else {
      // "PCI-MSI" on Linux 6.1; per-device MSI domains (6.2 on) append the BDF: "PCI-MSI-0000:…".
      match(irq[2], /^PCI-MSI(-|$)/, r.stdout);
      ok(msiEnabledInDump(/config-dump ([0-9a-f ]+)/.exec(r.stdout)?.[1] ?? ""), r.stdout);
    }
  });

  Deno.test("vfio: with the guest's MSI off (pci=nomsi) e1000e runs on INTx through the IOAPIC", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", E1000E, "-p", "pci=nomsi"],
      input: [
        ...pingScript("eth0", "10.0.2.15"),
        `echo "intx $(grep eth0 /proc/interrupts)"`,
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    const line = /^intx +\d+: +(\d+) .*IO-APIC.*fasteoi.*eth0/m.exec(r.stdout);
    ok(line && Number(line[1]) >= 4, r.stdout);
  });

  Deno.test("vfio: both NICs at once, each pinging through its own interface", async () => {
    const r = await runDenovmm({
      args: ["run", "--vfio-pci", VIRTIO_NET, "--vfio-pci", E1000E],
      input:
        [...pingScript("eth0", "10.0.2.15"), ...pingScript("eth1", "10.0.2.16"), "exit 0"].join(
          "\n",
        ) + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /eth0: 4 packets transmitted, 4 packets received, 0% packet loss/);
    match(r.stdout, /eth1: 4 packets transmitted, 4 packets received, 0% packet loss/);
  });

  Deno.test("vfio: a device that does not exist or is not bound to vfio-pci fails before the guest", async () => {
    const missing = await runDenovmm({ args: ["run", "--vfio-pci", "0000:00:1f.7"] });
    equal(missing.status, 1);
    match(missing.stderr, /^denovmm: --vfio-pci 0000:00:1f\.7: no such PCI device on this host/);
    equal(missing.stdout, "", "the guest never started");
    const bound = [...Deno.readDirSync("/sys/bus/pci/devices")].map((e) => e.name).find((bdf) => {
      try {
        return !Deno.readLinkSync(`/sys/bus/pci/devices/${bdf}/driver`).endsWith("/vfio-pci");
      } catch {
        return false;
      }
    });
    ok(bound, "the sandbox has a device on another driver (its 9p virtio)");
    const r = await runDenovmm({ args: ["run", "--vfio-pci", bound] });
    equal(r.status, 1);
    match(r.stderr, /is bound to \S+; bind it to vfio-pci: echo vfio-pci > /);
    equal(r.stdout, "");
  });
}
