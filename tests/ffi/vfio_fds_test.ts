// The VFIO wrappers where no VFIO is: a missing /dev/vfio path, and the fake device (a file
// laid out like a device fd) whose pread/pwrite work and whose ioctls fail with ENOTTY.
import { equal, ok } from "../assert.ts";
import { SyscallError } from "../../ffi/libc.ts";
import { ENOENT, ENOTTY } from "../../ffi/errno.ts";
import { VfioContainer, VfioDevice, VfioGroup } from "../../ffi/vfio_fds.ts";
import { BAR_AT, fakeDevice } from "../vfio/fake_device.ts";

/** The SyscallError that `call` throws. */
function syscallError(call: () => unknown): SyscallError {
  try {
    call();
  } catch (e) {
    if (e instanceof SyscallError) return e;
    throw e;
  }
  throw new Error("no SyscallError thrown");
}

Deno.test("vfio_fds: opening a missing container or group throws SyscallError with its errno", () => {
  for (const open of [VfioContainer.open, VfioGroup.open]) {
    const e = syscallError(() => open("/nonexistent/vfio/42"));
    equal(e.errno, ENOENT);
    equal(e.call, "open /nonexistent/vfio/42");
  }
});

Deno.test("vfio_fds: setup calls throw, run-time calls return the errno", () => {
  const fake = fakeDevice();
  try {
    const device = new VfioDevice(fake.fd);
    equal(syscallError(() => device.info()).errno, ENOTTY);
    equal(syscallError(() => device.irqCount(0)).errno, ENOTTY);
    equal(device.regionInfo(0), undefined);
    equal(device.setIrqEventfds(2, [fake.fd]), ENOTTY);
    equal(device.setIrqEventfds(2, []), ENOTTY);
    equal(device.setIntxUnmaskEventfd(fake.fd), ENOTTY);
  } finally {
    fake.close();
  }
});

Deno.test("vfio_fds: region read and write go to the region's offset in the device fd", () => {
  const fake = fakeDevice();
  try {
    const device = new VfioDevice(fake.fd);
    const bar2 = fake.regions[2];
    const b = new Uint8Array(4);
    ok(device.read(bar2, 8, b));
    // The fake fills BAR b's bytes with (b * 16 + i) & 0xff.
    equal([...b].join(), [40, 41, 42, 43].join());
    ok(device.write(bar2, 8, new Uint8Array([1, 2, 3, 4])));
    ok(device.read({ ...bar2, offset: 0 }, BAR_AT[2] + 8, b));
    equal([...b].join(), "1,2,3,4");
    // Past the end of the file: short read.
    ok(!device.read(bar2, 0x100000, b));
  } finally {
    fake.close();
  }
});
