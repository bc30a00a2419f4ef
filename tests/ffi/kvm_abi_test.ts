// The typed views and ioctl numbers in ffi/ against the kernel's own headers: a tiny C
// program prints sizeof/offsetof and the request macros from <linux/kvm.h>, and every
// number in ffi/ must match it (errno values against <errno.h>).
import { deepEqual, equal } from "../assert.ts";
import * as kvm from "../../ffi/kvm.ts";
import { KVM_RUN_OFFSETS } from "../../ffi/kvm_run.ts";
import {
  KVM_DTABLE_OFFSETS,
  KVM_REGS_FIELDS,
  KVM_REGS_SIZE,
  KVM_SEGMENT_OFFSETS,
  KVM_SEGMENT_SIZE,
  KVM_SREGS_OFFSETS,
  KVM_SREGS_SIZE,
  KvmRegs,
} from "../../ffi/kvm_regs.ts";
import {
  KVM_CPUID2_HEADER_SIZE,
  KVM_CPUID_ENTRY2_OFFSETS,
  KVM_CPUID_ENTRY2_SIZE,
  KVM_IRQ_LEVEL_OFFSETS,
  KVM_IRQ_LEVEL_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_USERSPACE_MEMORY_REGION_OFFSETS,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
} from "../../ffi/kvm_vm_structs.ts";
import * as irq from "../../ffi/kvm_irq_structs.ts";
import * as vfio from "../../ffi/vfio_abi.ts";
import * as tun from "../../ffi/tun.ts";
import * as errnos from "../../ffi/errno.ts";
import * as arm64 from "../../ffi/kvm_arm64.ts";
import { Itimerspec, Sigevent } from "../../ffi/thread_timer.ts";
import { Sigaction } from "../../ffi/signal_action.ts";

/** Each expectation: a C expression and the value ffi/ claims for it. */
function expectations(): Array<[string, number]> {
  const e: Array<[string, number]> = [];
  const offsets = (struct: string, table: Record<string, number>) => {
    for (const [field, off] of Object.entries(table)) {
      e.push([`offsetof(struct ${struct}, ${field})`, off]);
    }
  };
  offsets("kvm_run", KVM_RUN_OFFSETS);
  e.push(["sizeof(struct kvm_regs)", KVM_REGS_SIZE]);
  for (const r of KVM_REGS_FIELDS) e.push([`offsetof(struct kvm_regs, ${r})`, KvmRegs.offsetOf(r)]);
  e.push(["sizeof(struct kvm_segment)", KVM_SEGMENT_SIZE]);
  offsets("kvm_segment", KVM_SEGMENT_OFFSETS);
  e.push(["sizeof(struct kvm_sregs)", KVM_SREGS_SIZE]);
  offsets("kvm_sregs", KVM_SREGS_OFFSETS);
  offsets("kvm_dtable", KVM_DTABLE_OFFSETS);
  e.push(["sizeof(struct kvm_userspace_memory_region)", KVM_USERSPACE_MEMORY_REGION_SIZE]);
  offsets("kvm_userspace_memory_region", KVM_USERSPACE_MEMORY_REGION_OFFSETS);
  e.push(["sizeof(struct kvm_cpuid2)", KVM_CPUID2_HEADER_SIZE]);
  e.push(["sizeof(struct kvm_cpuid_entry2)", KVM_CPUID_ENTRY2_SIZE]);
  offsets("kvm_cpuid_entry2", KVM_CPUID_ENTRY2_OFFSETS);
  e.push(["sizeof(struct kvm_pit_config)", KVM_PIT_CONFIG_SIZE]);
  e.push(["sizeof(struct kvm_irq_level)", KVM_IRQ_LEVEL_SIZE]);
  offsets("kvm_irq_level", KVM_IRQ_LEVEL_OFFSETS);
  e.push(["sizeof(struct kvm_irqfd)", irq.KVM_IRQFD_SIZE]);
  offsets("kvm_irqfd", irq.KVM_IRQFD_OFFSETS);
  e.push(["sizeof(struct kvm_ioeventfd)", irq.KVM_IOEVENTFD_SIZE]);
  offsets("kvm_ioeventfd", irq.KVM_IOEVENTFD_OFFSETS);
  e.push(["sizeof(struct kvm_irq_routing)", irq.KVM_IRQ_ROUTING_HEADER_SIZE]);
  e.push(["sizeof(struct kvm_irq_routing_entry)", irq.KVM_IRQ_ROUTING_ENTRY_SIZE]);
  offsets("kvm_irq_routing_entry", irq.KVM_IRQ_ROUTING_ENTRY_OFFSETS);
  for (const [name, value] of Object.entries(irq)) {
    if (
      typeof value === "number" &&
      /^KVM_(IRQFD_FLAG|IOEVENTFD_FLAG|IRQ_ROUTING_(IRQCHIP|MSI)$|IRQCHIP_)/.test(name)
    ) {
      e.push([name, value]);
    }
  }
  const vfioStructs: Array<[string, number, Record<string, number>]> = [
    ["vfio_group_status", vfio.VFIO_GROUP_STATUS_SIZE, vfio.VFIO_GROUP_STATUS_OFFSETS],
    ["vfio_device_info", vfio.VFIO_DEVICE_INFO_SIZE, vfio.VFIO_DEVICE_INFO_OFFSETS],
    ["vfio_region_info", vfio.VFIO_REGION_INFO_SIZE, vfio.VFIO_REGION_INFO_OFFSETS],
    ["vfio_irq_info", vfio.VFIO_IRQ_INFO_SIZE, vfio.VFIO_IRQ_INFO_OFFSETS],
    ["vfio_irq_set", vfio.VFIO_IRQ_SET_SIZE, vfio.VFIO_IRQ_SET_OFFSETS],
    ["vfio_iommu_type1_dma_map", vfio.VFIO_DMA_MAP_SIZE, vfio.VFIO_DMA_MAP_OFFSETS],
    ["vfio_info_cap_header", vfio.VFIO_INFO_CAP_HEADER_SIZE, {}],
  ];
  for (const [struct, size, table] of vfioStructs) {
    // vfio_device_info gained a trailing `__u32 pad` in the headers of later kernels (24 bytes
    // in Debian 13's, 20 in 12's), which the kernel never reads or writes: compare where its
    // last field, cap_offset, ends.
    e.push([
      struct === "vfio_device_info"
        ? "offsetof(struct vfio_device_info, cap_offset) + sizeof(__u32)"
        : `sizeof(struct ${struct})`,
      size,
    ]);
    offsets(struct, table);
  }
  for (const [name, value] of Object.entries(vfio)) {
    if (typeof value === "number" && name.startsWith("VFIO_") && !/_(SIZE|TYPE|BASE)$/.test(name)) {
      e.push([name, value]);
    }
  }
  for (
    const name of [
      "TUNSETIFF",
      "TUNSETOFFLOAD",
      "TUNSETVNETHDRSZ",
      "IFF_TAP",
      "IFF_NO_PI",
      "IFF_VNET_HDR",
      "IFNAMSIZ",
    ] as const
  ) {
    e.push([name, tun[name]]);
  }
  e.push(["sizeof(struct ifreq)", tun.IFREQ_SIZE]);
  // The boot vCPU's tick (ffi/thread_timer.ts): glibc's struct sigevent names the thread id
  // field _sigev_un._tid.
  e.push(["sizeof(struct sigevent)", Sigevent.SIZE]);
  e.push(["offsetof(struct sigevent, sigev_value)", Sigevent.OFFSETS.sigev_value]);
  e.push(["offsetof(struct sigevent, sigev_signo)", Sigevent.OFFSETS.sigev_signo]);
  e.push(["offsetof(struct sigevent, sigev_notify)", Sigevent.OFFSETS.sigev_notify]);
  e.push(["offsetof(struct sigevent, _sigev_un._tid)", Sigevent.OFFSETS._tid]);
  e.push(["SIGEV_THREAD_ID", 4]);
  e.push(["sizeof(struct itimerspec)", Itimerspec.SIZE]);
  offsets("itimerspec", Itimerspec.OFFSETS);
  // The tick's and the stop kick's handler (ffi/signal_action.ts): glibc's struct sigaction.
  e.push(["sizeof(struct sigaction)", Sigaction.SIZE]);
  offsets("sigaction", Sigaction.OFFSETS);
  for (const [name, value] of Object.entries(errnos)) {
    if (typeof value === "number") e.push([name, value]);
  }
  for (const [name, value] of Object.entries(kvm)) {
    if (typeof value === "number" && name.startsWith("KVM_") && name !== "KVM_API_VERSION") {
      e.push([name, value]);
    }
  }
  e.push(["KVM_MSI_VALID_DEVID", irq.KVM_MSI_VALID_DEVID]);
  // arm64's ABI where <linux/kvm.h> has it on any host: the device-control and one-reg
  // structs, their ioctls and the device types. (struct kvm_vcpu_init and the register ids are
  // in arm64's <asm/kvm.h> only: the arm64 KVM tests exercise them.)
  e.push(["sizeof(struct kvm_one_reg)", arm64.KVM_ONE_REG_SIZE]);
  e.push(["sizeof(struct kvm_create_device)", arm64.KVM_CREATE_DEVICE_SIZE]);
  e.push(["sizeof(struct kvm_device_attr)", arm64.KVM_DEVICE_ATTR_SIZE]);
  e.push(["offsetof(struct kvm_create_device, fd)", 4]);
  e.push(["offsetof(struct kvm_device_attr, group)", 4]);
  e.push(["offsetof(struct kvm_device_attr, attr)", 8]);
  e.push(["offsetof(struct kvm_device_attr, addr)", 16]);
  for (
    const name of [
      "KVM_GET_ONE_REG",
      "KVM_SET_ONE_REG",
      "KVM_CREATE_DEVICE",
      "KVM_SET_DEVICE_ATTR",
      "KVM_HAS_DEVICE_ATTR",
      "KVM_DEV_TYPE_ARM_VGIC_V3",
      "KVM_DEV_TYPE_ARM_VGIC_ITS",
    ] as const
  ) {
    e.push([name, arm64[name]]);
  }
  e.push(["KVM_API_VERSION", kvm.KVM_API_VERSION]);
  for (const [name, value] of Object.entries(kvm.KVM_CAP)) e.push([`KVM_CAP_${name}`, value]);
  return e;
}

/** Compile and run a C program printing each expression; returns the values in order. */
async function fromHeaders(exprs: string[]): Promise<number[]> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-abi-" });
  try {
    const body = exprs.map((x) => `  printf("%llu\\n", (unsigned long long)(${x}));`).join("\n");
    const src =
      `#include <stddef.h>\n#include <stdio.h>\n#include <errno.h>\n#include <linux/kvm.h>\n` +
      `#include <linux/vfio.h>\n#include <net/if.h>\n#include <linux/if_tun.h>\n` +
      `#include <signal.h>\n#include <time.h>\n` +
      `int main(void) {\n${body}\n  return 0;\n}\n`;
    await Deno.writeTextFile(`${dir}/abi.c`, src);
    const cc = await new Deno.Command("gcc", {
      args: ["-o", `${dir}/abi`, `${dir}/abi.c`],
      stderr: "piped",
    }).output();
    equal(cc.code, 0, `gcc failed: ${new TextDecoder().decode(cc.stderr)}`);
    const run = await new Deno.Command(`${dir}/abi`, { stdout: "piped" }).output();
    return new TextDecoder().decode(run.stdout).trim().split("\n").map(Number);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ffi: struct sizes, field offsets, ioctl numbers and caps match <linux/kvm.h>", async () => {
  const e = expectations();
  const actual = await fromHeaders(e.map(([expr]) => expr));
  const mismatches = e
    .map(([expr, ours], i) => ({ expr, ours, header: actual[i] }))
    .filter((m) => m.ours !== m.header);
  deepEqual(mismatches, []);
  equal(actual.length, e.length);
});
