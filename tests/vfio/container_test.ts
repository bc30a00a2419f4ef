// openVfioDevice's lines for the user when /dev/vfio is not what it should be, and that it
// closes what it opened on the way.
import { equal, throws } from "../assert.ts";
import { openVfioDevice } from "../../src/vfio/container.ts";
import { VfioSetupError } from "../../src/vfio/host_device.ts";

const host = { bdf: "0000:00:03.0", group: 7, vendorId: 0x10ec, deviceId: 0x8168 };

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("vfio container: no /dev/vfio/vfio names the module to load", () => {
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-vfio-" });
  try {
    throws(
      () => openVfioDevice(host, dir),
      new VfioSetupError(
        `--vfio-pci 0000:00:03.0: cannot open ${dir}/vfio (No such file or directory): ` +
          "load vfio-pci (modprobe vfio-pci)",
      ),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("vfio container: a container that is no VFIO fails on the API version, fd closed", () => {
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-vfio-" });
  try {
    Deno.writeFileSync(`${dir}/vfio`, new Uint8Array(0));
    const before = openFds();
    throws(
      () => openVfioDevice(host, dir),
      new VfioSetupError(
        "--vfio-pci 0000:00:03.0: VFIO API version: Inappropriate ioctl for device",
      ),
    );
    equal(openFds(), before);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
