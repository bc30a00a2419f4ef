// virtio-pci devices in the default Linux guest: PCI enumeration, virtio-blk reads, writes,
// flushes and read-only mode against image files, virtio-rng, and MSI-X interrupts.
import { equal, match, notEqual, ok } from "../assert.ts";
import { randomImage, REPO, runDenovmm, sha256 } from "./guest_runner.ts";

const MiB = 1024 * 1024;

Deno.test("virtio: PCI ids, blk read/write/flush/ro against the image files, rng, MSI-X", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "virtio-test-" });
  try {
    const [rwPath, rwBytes] = await randomImage(dir, "rw.img", 8 * MiB);
    const [roPath, roBytes] = await randomImage(dir, "ro.img", 4 * MiB);
    const script = [
      `for d in /sys/bus/pci/devices/*; do echo "pci $(basename $d) $(cat $d/vendor):$(cat $d/device) class=$(cat $d/class)"; done`,
      "echo sum-vda $(sha256sum /dev/vda)",
      "echo sum-vdb $(sha256sum /dev/vdb)",
      "cat /sys/block/vdb/ro | sed 's/^/ro-flag /'",
      "echo denovmm-was-here | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null && echo write-ok",
      "echo nope | dd of=/dev/vdb bs=512 seek=1 conv=notrunc,fsync 2>/dev/null || echo ro-write-failed",
      "echo rng-bytes $(head -c 64 /dev/hwrng | wc -c)",
      "echo rng-hex $(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \\n')",
      "grep -E 'virtio[0-9]+-(req|input)' /proc/interrupts | sed 's/^/irq /'",
      "cat /proc/interrupts | grep -c PCI-MSI | sed 's/^/msi-lines /'",
      "sync",
      "exit 0",
    ].join("\n") + "\n";
    const r = await runDenovmm({
      args: ["run", "--disk", rwPath, "--disk", `${roPath},ro`, "--rng"],
      input: script,
    });
    equal(r.status, 0, r.stdout + r.stderr);
    const out = r.stdout;
    match(out, /pci 0000:00:00\.0 0x1b36:0x0008 class=0x060000/, "host bridge");
    match(out, /pci 0000:00:01\.0 0x1af4:0x1042 /, "virtio-blk (modern id 0x1040+2)");
    match(out, /pci 0000:00:02\.0 0x1af4:0x1042 /, "second virtio-blk");
    match(out, /pci 0000:00:03\.0 0x1af4:0x1044 /, "virtio-rng (0x1040+4)");
    ok(out.includes(`sum-vda ${await sha256(rwBytes)}`), "vda reads back the image");
    ok(out.includes(`sum-vdb ${await sha256(roBytes)}`), "vdb reads back the image");
    match(out, /^ro-flag 1\r?$/m, "the guest sees vdb read-only");
    ok(out.includes("write-ok"));
    ok(out.includes("ro-write-failed"), "writes to a ,ro disk fail in the guest");
    match(out, /rng-bytes 64/);
    const hex = /rng-hex ([0-9a-f]{32})/.exec(out)?.[1];
    ok(hex, out);
    notEqual(hex, "0".repeat(32));
    // Interrupts came as MSI-X through irqfd: each queue's vector counted some.
    const counts = [...out.matchAll(/^irq\s+\d+:\s+(\d+)/gm)].map((m) => Number(m[1]));
    equal(counts.length, 3, out);
    ok(counts.every((n) => n > 0), `every queue's vector fired: ${counts}`);

    const rwAfter = await Deno.readFile(rwPath);
    equal(new TextDecoder().decode(rwAfter.subarray(51200, 51216)), "denovmm-was-here");
    rwBytes.set(rwAfter.subarray(51200, 51200 + 512), 51200);
    equal(await sha256(rwAfter), await sha256(rwBytes), "nothing else in the image changed");
    equal(
      await sha256(await Deno.readFile(roPath)),
      await sha256(roBytes),
      ",ro image byte-identical",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("virtio: with MSI off (pci=nomsi) the devices work over INTx through the IOAPIC", async () => {
  const dir = await Deno.makeTempDir({ dir: `${REPO}.cache`, prefix: "virtio-intx-" });
  try {
    const [path, bytes] = await randomImage(dir, "disk.img", 2 * MiB);
    const r = await runDenovmm({
      args: ["run", "--disk", path, "--rng", "-p", "quiet pci=nomsi"],
      input: "grep virtio /proc/interrupts | sed 's/^/irq /'\n" +
        "echo sum $(sha256sum /dev/vda)\necho rng $(head -c 32 /dev/hwrng | wc -c)\nexit 0\n",
    });
    equal(r.status, 0, r.stdout + r.stderr);
    ok(r.stdout.includes(`sum ${await sha256(bytes)}`), r.stdout);
    match(r.stdout, /rng 32/);
    const lines = [
      ...r.stdout.matchAll(/^irq\s+(\d+):\s+(\d+)\s+IO-APIC\s+\d+-fasteoi\s+virtio/gm),
    ];
    equal(lines.length, 2, r.stdout);
    ok(
      lines.every((m) => Number(m[1]) >= 16 && Number(m[2]) > 0),
      "level-triggered pins 16+ fired",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
