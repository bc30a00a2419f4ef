import { equal, throws } from "../assert.ts";
import { findHostDevice, isBdf, VfioSetupError } from "../../src/vfio/host_device.ts";

/** A sysfs tree with one device, as the kernel lays it out. */
function fakeSysfs(opts: { driver?: string; group?: string }): string {
  const root = Deno.makeTempDirSync({ prefix: "denovmm-sysfs-" });
  const dev = `${root}/bus/pci/devices/0000:00:10.0`;
  Deno.mkdirSync(dev, { recursive: true });
  Deno.writeTextFileSync(`${dev}/vendor`, "0x1af4\n");
  Deno.writeTextFileSync(`${dev}/device`, "0x1041\n");
  if (opts.driver) {
    Deno.mkdirSync(`${root}/bus/pci/drivers/${opts.driver}`, { recursive: true });
    Deno.symlinkSync(`../../../bus/pci/drivers/${opts.driver}`, `${dev}/driver`);
  }
  if (opts.group) {
    Deno.mkdirSync(`${root}/kernel/iommu_groups/${opts.group}`, { recursive: true });
    Deno.symlinkSync(`../../../kernel/iommu_groups/${opts.group}`, `${dev}/iommu_group`);
  }
  return root;
}

Deno.test("vfio host: a device bound to vfio-pci in a group is found with its ids", () => {
  const root = fakeSysfs({ driver: "vfio-pci", group: "4" });
  const d = findHostDevice("0000:00:10.0", root);
  equal(d.group, 4);
  equal(d.vendorId, 0x1af4);
  equal(d.deviceId, 0x1041);
});

Deno.test("vfio host: each unready device gets one line naming it and the fix", () => {
  throws(
    () => findHostDevice("0000:00:11.0", fakeSysfs({})),
    (e: unknown) =>
      e instanceof VfioSetupError && /0000:00:11\.0: no such PCI device/.test(e.message),
  );
  throws(
    () => findHostDevice("0000:00:10.0", fakeSysfs({ driver: "virtio-pci", group: "3" })),
    (e: unknown) =>
      e instanceof VfioSetupError &&
      /is bound to virtio-pci; bind it to vfio-pci: .*driver_override/.test(e.message) &&
      !e.message.includes("\n"),
  );
  throws(
    () => findHostDevice("0000:00:10.0", fakeSysfs({ group: "3" })),
    (e: unknown) =>
      e instanceof VfioSetupError && /has no driver; bind it to vfio-pci/.test(e.message),
  );
  throws(
    () => findHostDevice("0000:00:10.0", fakeSysfs({ driver: "vfio-pci" })),
    (e: unknown) =>
      e instanceof VfioSetupError && /no IOMMU group: enable the host's IOMMU/.test(e.message),
  );
});

Deno.test("vfio host: BDFs are domain:bus:device.function in lower-case hex", () => {
  equal(isBdf("0000:00:10.0"), true);
  equal(isBdf("00:10.0"), false);
  equal(isBdf("0000:00:10.8"), false);
  equal(isBdf("0000:00:1G.0"), false);
});
