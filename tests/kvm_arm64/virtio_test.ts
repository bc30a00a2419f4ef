// virtio-pci devices on the arm64 machine: found through the ECAM host bridge the device tree
// describes, interrupting through MSI-X routed to the ITS by requester ID (or, with MSI off,
// INTx on GIC SPIs), the same devices and back-ends as on x86.
import { equal, match, notEqual, ok } from "../assert.ts";
import { randomImage, REPO, runDenovmm, sha256 } from "../kvm/guest_runner.ts";

const MiB = 1024 * 1024;

Deno.test("arm64 virtio: the shell on hvc0, blk read/write/ro against the images, rng, all on MSI-X through the ITS", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "virtio-arm64-" });
  try {
    const [rwPath, rwBytes] = await randomImage(dir, "rw.img", 4 * MiB);
    const [roPath, roBytes] = await randomImage(dir, "ro.img", 2 * MiB);
    const r = await runDenovmm({
      args: [
        "run",
        "--console",
        "virtio",
        "--disk",
        rwPath,
        "--disk",
        `${roPath},ro`,
        "--rng",
        "--debug",
      ],
      input: [
        "echo tty $(tty)",
        `for d in /sys/bus/pci/devices/*; do echo "pci $(basename $d) $(cat $d/vendor):$(cat $d/device)"; done`,
        "echo sum-vda $(sha256sum /dev/vda)",
        "echo sum-vdb $(sha256sum /dev/vdb)",
        "cat /sys/block/vdb/ro | sed 's/^/ro-flag /'",
        "echo denovmm-was-here | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null && echo write-ok",
        "echo nope | dd of=/dev/vdb bs=512 seek=1 conv=notrunc,fsync 2>/dev/null || echo ro-write-failed",
        "echo rng-hex $(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \\n')",
        "grep -E 'virtio[0-9]+-' /proc/interrupts | sed 's/^/irq /'",
        "exit 5",
      ].join("\n") + "\n",
      // The shell runs on hvc0 once virtio_console is up: type once the guest says it is ready.
      inputAfter: "denovmm guest ready",
    });
    equal(r.status, 5, r.stdout + r.stderr);
    const out = r.stdout;
    match(out, /tty \/dev\/hvc0/);
    match(out, /pci 0000:00:00\.0 0x1b36:0x0008/, "host bridge");
    match(out, /pci 0000:00:01\.0 0x1af4:0x1042/, "virtio-blk");
    // Disks, then the console, then the rng (src/machine/virtio_devices.ts).
    match(out, /pci 0000:00:03\.0 0x1af4:0x1043/, "virtio-console");
    match(out, /pci 0000:00:04\.0 0x1af4:0x1044/, "virtio-rng");
    ok(out.includes(`sum-vda ${await sha256(rwBytes)}`), "vda reads back the image");
    ok(out.includes(`sum-vdb ${await sha256(roBytes)}`), "vdb reads back the image");
    match(out, /^ro-flag 1\r?$/m);
    ok(out.includes("write-ok"));
    ok(out.includes("ro-write-failed"), "writes to a ,ro disk fail in the guest");
    const hex = /rng-hex ([0-9a-f]{32})/.exec(out)?.[1];
    ok(hex, out);
    notEqual(hex, "0".repeat(32));
    // Every virtio vector is an LPI the ITS delivered; the disks' and the rng's queues fired.
    const lines = [...out.matchAll(/^irq\s+\d+:\s+(\d+)\s+(\S+)\s+\d+\s+\S+\s+(\S+)/gm)];
    ok(lines.length >= 6 && lines.every((m) => /^ITS-MSI/.test(m[2])), out);
    for (const queue of ["virtio0-req.0", "virtio1-req.0", "virtio3-input"]) {
      const line = lines.find((m) => m[3] === queue);
      ok(line && Number(line[1]) > 0, `${queue} fired: ${out}`);
    }
    const routing = /KVM_SET_GSI_ROUTING calls: (\d+) \(MSI-X enable and unmask events: (\d+)\)/
      .exec(r.stderr);
    ok(routing && Number(routing[1]) > 0 && Number(routing[1]) <= Number(routing[2]), r.stderr);
    const after = await Deno.readFile(rwPath);
    equal(new TextDecoder().decode(after.subarray(51200, 51216)), "denovmm-was-here");
    rwBytes.set(after.subarray(51200, 51200 + 512), 51200);
    equal(await sha256(after), await sha256(rwBytes), "nothing else in the image changed");
    equal(await sha256(await Deno.readFile(roPath)), await sha256(roBytes), ",ro image intact");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("arm64 virtio: with MSI off (pci=nomsi) a disk works over INTx on a GIC SPI", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "virtio-arm64-" });
  try {
    const [path, bytes] = await randomImage(dir, "d.img", 1 * MiB);
    const r = await runDenovmm({
      args: ["run", "--disk", path, "-p", "quiet pci=nomsi"],
      input: [
        "echo sum $(sha256sum /dev/vda)",
        "grep virtio /proc/interrupts | sed 's/^/irq /'",
        "exit 0",
      ].join("\n") + "\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    ok(r.stdout.includes(`sum ${await sha256(bytes)}`), r.stdout);
    const line = /^irq\s+\d+:\s+(\d+)\s+GICv3\s+(\d+)\s+Level/m.exec(r.stdout);
    ok(line && Number(line[1]) > 0, r.stdout);
    // INTA# of slot 1 is SPI 4 + 1 (INTID 37).
    equal(line[2], "37");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function sh(cmd: string): Promise<void> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], stderr: "piped" }).output();
  if (r.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
}

Deno.test("arm64 virtio: net on a tap, the guest pings the host end, and reboot ends the VM (SYSTEM_RESET)", async () => {
  // The sandbox is a VM of its own: the tap needs no namespace. denovmm creates it; the host
  // end is configured (busybox ip) as soon as it appears, while the guest boots.
  const tap = `dvarm${Deno.pid % 1000}`;
  const hostEnd = (async () => {
    for (let i = 0; i < 1200; i++) {
      try {
        Deno.statSync(`/sys/class/net/${tap}`);
        await sh(`ip addr add 192.168.78.1/24 dev ${tap} && ip link set ${tap} up`);
        return;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw new Error(`${tap} never appeared`);
  })();
  const r = await runDenovmm({
    args: ["run", "-n", `tap=${tap}`, "--debug"],
    input: [
      "ip addr add 192.168.78.2/24 dev eth0",
      "ip link set eth0 up",
      "ping -c 3 -w 20 192.168.78.1 | sed 's/^/ping: /'",
      // PSCI SYSTEM_RESET: denovmm ends the VM (a reset is how a guest says it is done).
      "reboot -f",
    ].join("\n") + "\n",
    inputAfter: "denovmm guest ready",
  });
  await hostEnd;
  equal(r.status, 0, r.stdout + r.stderr);
  match(r.stdout, /ping: 3 packets transmitted, 3 packets received/);
  match(r.stderr, /KVM_EXIT_SYSTEM_EVENT type 2: the VM ends, status 0/);
});
