// The floor of one exit to user space, in C: the least a VMM can do per exit. A real-mode guest
// writes N times to an unclaimed port (0x4f0), then to 0x501; this loop enters it, looks at the
// port and enters it again. Prints the wall time per exit. scripts/bench/exit_floor.ts runs the
// same guest under denovmm's own code; exit_floor.sh compares the two.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define CHECK(what, r)                                                                             \
  if ((r) < 0) {                                                                                   \
    perror(what);                                                                                  \
    return 1;                                                                                      \
  }

int main(int argc, char **argv) {
  unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 30000;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  CHECK("/dev/kvm", kvm);
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  CHECK("KVM_CREATE_VM", vm);
  // The same in-kernel interrupt controllers and PIT as denovmm's VM, so KVM's work per exit
  // is the same.
  CHECK("KVM_SET_TSS_ADDR", ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000));
  CHECK("KVM_CREATE_IRQCHIP", ioctl(vm, KVM_CREATE_IRQCHIP, 0));
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  CHECK("KVM_CREATE_PIT2", ioctl(vm, KVM_CREATE_PIT2, &pit));
  size_t size = 1 << 20;
  unsigned char *mem = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (unsigned long)mem};
  CHECK("KVM_SET_USER_MEMORY_REGION", ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region));
  unsigned char code[] = {
      0x66, 0xb9, n, n >> 8, n >> 16, n >> 24, // mov ecx, n
      0xba, 0xf0, 0x04,                        // mov dx, 0x4f0
      0xee,                                    // out dx, al
      0x66, 0x49,                              // dec ecx
      0x75, 0xfb,                              // jnz out
      0xba, 0x01, 0x05,                        // mov dx, 0x501
      0xee,                                    // out dx, al: the end
      0xf4,                                    // hlt
  };
  memcpy(mem + 0x1000, code, sizeof code);
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  CHECK("KVM_CREATE_VCPU", vcpu);
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(0, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  struct kvm_sregs sregs;
  CHECK("KVM_GET_SREGS", ioctl(vcpu, KVM_GET_SREGS, &sregs));
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  CHECK("KVM_SET_SREGS", ioctl(vcpu, KVM_SET_SREGS, &sregs));
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = 0x1000;
  regs.rflags = 2;
  CHECK("KVM_SET_REGS", ioctl(vcpu, KVM_SET_REGS, &regs));
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  unsigned long exits = 0;
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) continue; // EINTR: enter again
    exits++;
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "exit_floor: unexpected exit %u\n", run->exit_reason);
      return 1;
    }
    if (run->io.port == 0x501) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
  printf("FLOOR c exits=%lu us=%.2f\n", exits, ns / exits / 1e3);
  return 0;
}
