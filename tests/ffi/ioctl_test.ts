import { equal, throws } from "../assert.ts";
import { _IO, _IOR, _IOW, _IOWR } from "../../ffi/ioctl.ts";

Deno.test("ioctl: encoding puts number, type, size and direction in their bit fields", () => {
  // Values worked out by hand from include/uapi/asm-generic/ioctl.h.
  equal(_IO(0xae, 0x80), 0xae80); // KVM_RUN
  equal(_IOW(0xae, 0x46, 32), 0x4020ae46); // KVM_SET_USER_MEMORY_REGION
  equal(_IOR(0xae, 0x81, 144), 0x8090ae81); // KVM_GET_REGS: bit 31 set, still positive
  equal(_IOWR(0xae, 0x05, 8), 0xc008ae05); // KVM_GET_SUPPORTED_CPUID
  equal(_IO(0x3b, 100), 0x3b64); // VFIO_GET_API_VERSION (VFIO_TYPE ';', VFIO_BASE 100)
});

Deno.test("ioctl: an argument size that does not fit 14 bits is refused", () => {
  throws(() => _IOW(0xae, 1, 1 << 14), RangeError);
});
