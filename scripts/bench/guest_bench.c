/*
 * /init of the benchmark guest (scripts/bench.ts), the same binary under every VMM.
 * What it does is chosen on the kernel command line with bench=MODE:
 *   boot  print the marker at once (with the guest's own uptime) and end the VM a second
 *         later: the host reads the VMM's memory figures while the VM still exists
 *   pio   N writes to an I/O port that no VMM claims, timed in the guest
 *   mmio  N writes to an unclaimed guest-physical address through /dev/mem
 *   disk  sequential 1 MiB and random 4 KiB O_DIRECT reads of /dev/vda
 * Results are printed as "BENCH key=value" lines; the VM ends through the debug-exit port
 * 0x501 (denovmm's port, and QEMU's isa-debug-exit placed there).
 *
 * arm64 (the same file, built with an aarch64 compiler): no port I/O, so no pio mode; mmio
 * takes its address from bench_addr= (bench.ts passes an address unclaimed in both machines'
 * maps, or a port in each machine's PCI I/O window), and the VM ends by powering off (PSCI
 * SYSTEM_OFF, which ends denovmm and QEMU's virt machine alike).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#define HAVE_PORT_IO 1
#endif
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#define DEBUG_EXIT_PORT 0x501
#define UNCLAIMED_PORT 0x4f0         /* not claimed by denovmm, QEMU pc or microvm */
#ifdef HAVE_PORT_IO
#define UNCLAIMED_MMIO 0xe0000000UL /* in the PCI hole, below any BAR either VMM assigns */
#else
/* arm64: between QEMU virt's virtio-mmio transports (to 0x0a004000) and its platform bus
 * (0x0c000000), past denovmm's GICv3 redistributors (to 0x0a040000 for 256 vCPUs) */
#define UNCLAIMED_MMIO 0x0a800000UL
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void finish(int status) {
  fflush(stdout);
  /* The tty has the output, the UART may not have sent it yet (its THRE interrupt may go to
   * another vCPU): wait until it has, or the VM ends with the tail of the output unsent. */
  tcdrain(STDOUT_FILENO);
#ifdef HAVE_PORT_IO
  if (iopl(3) == 0) outb(status, DEBUG_EXIT_PORT);
  /* No debug-exit device: the reboot=k reset ends the VM. */
  syscall(SYS_reboot, 0xfee1dead, 672274793, 0x01234567, NULL);
#else
  /* The same way out under both VMMs: power off (PSCI SYSTEM_OFF); the status is not passed. */
  (void)status;
  syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL);
#endif
  for (;;) pause();
}

/* The value of `key` (e.g. "bench=") on the command line, copied into `value`. */
static char *param(const char *cmdline, const char *key, char value[64]) {
  const char *p = strstr(cmdline, key);
  if (!p) return NULL;
  p += strlen(key);
  size_t n = strcspn(p, " \n");
  if (n >= 64) n = 63;
  memcpy(value, p, n);
  value[n] = 0;
  return value;
}

/* The default guest's modules, in dependency order (virtio_blk for the disk mode). */
static void load_modules(void) {
  FILE *order = fopen("/etc/modules.order", "r");
  char line[256], path[300];
  while (order && fgets(line, sizeof line, order)) {
    line[strcspn(line, "\n")] = 0;
    snprintf(path, sizeof path, "/lib/modules/%s", line);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      syscall(SYS_finit_module, fd, "", 0);
      close(fd);
    }
  }
  if (order) fclose(order);
}

/* bench_chunks=K: the n writes in K equal chunks, each timed and printed (µs a write), so that
 * the host can tell the first writes, which pay for a JIT's warm-up, from the steady state. */
static long chunks = 1;

static void print_chunks(const char *key, const double *chunk_s, long per_chunk) {
  if (chunks < 2) return;
  printf("BENCH %s_chunks_us=", key);
  for (long c = 0; c < chunks; c++) printf("%s%.3f", c ? "," : "", chunk_s[c] / per_chunk * 1e6);
  printf("\n");
}

static void exits_pio(long n) {
#ifdef HAVE_PORT_IO
  if (iopl(3) != 0) { perror("iopl"); finish(1); }
  double chunk_s[64];
  long per_chunk = n / chunks;
  double t0 = now(), c0 = t0;
  for (long c = 0; c < chunks; c++) {
    for (long i = 0; i < per_chunk; i++) outb(0, UNCLAIMED_PORT);
    double c1 = now();
    chunk_s[c] = c1 - c0;
    c0 = c1;
  }
  for (long i = per_chunk * chunks; i < n; i++) outb(0, UNCLAIMED_PORT);
  double t = now() - t0;
  printf("BENCH pio_us=%.3f n=%ld\n", t / n * 1e6, n);
  print_chunks("pio", chunk_s, per_chunk);
#else
  (void)n;
  fprintf(stderr, "bench: no port I/O on this architecture (mmio with bench_addr= instead)\n");
#endif
}

static void exits_mmio(long n, unsigned long addr) {
  int fd = open("/dev/mem", O_RDWR | O_SYNC);
  if (fd < 0) { perror("/dev/mem"); finish(1); }
  /* The page holding addr (its offset within the page kept: a port in a PCI I/O window). */
  unsigned long page = addr & ~4095UL;
  volatile uint8_t *base = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, page);
  if (base == MAP_FAILED) { perror("mmap /dev/mem"); finish(1); }
  volatile uint32_t *p = (volatile uint32_t *)(base + (addr - page));
  double chunk_s[64];
  long per_chunk = n / chunks;
  double t0 = now(), c0 = t0;
  for (long c = 0; c < chunks; c++) {
    for (long i = 0; i < per_chunk; i++) p[0] = (uint32_t)i;
    double c1 = now();
    chunk_s[c] = c1 - c0;
    c0 = c1;
  }
  for (long i = per_chunk * chunks; i < n; i++) p[0] = (uint32_t)i;
  double t = now() - t0;
  printf("BENCH mmio_us=%.3f n=%ld\n", t / n * 1e6, n);
  print_chunks("mmio", chunk_s, per_chunk);
}

static void disk(long randoms) {
  load_modules();
  int fd = -1;
  for (int i = 0; i < 200 && fd < 0; i++) {
    fd = open("/dev/vda", O_RDONLY | O_DIRECT);
    if (fd < 0) usleep(10000);
  }
  if (fd < 0) { perror("/dev/vda"); finish(1); }
  off_t size = lseek(fd, 0, SEEK_END);
  void *buf;
  if (posix_memalign(&buf, 1 << 20, 1 << 20)) finish(1);
  double t0 = now();
  off_t done = 0;
  for (off_t at = 0; at + (1 << 20) <= size; at += 1 << 20) {
    if (pread(fd, buf, 1 << 20, at) != 1 << 20) { perror("pread"); finish(1); }
    done += 1 << 20;
  }
  double t = now() - t0;
  printf("BENCH seq_mib_s=%.2f bytes=%lld\n", done / t / 1048576, (long long)done);
  uint64_t x = 88172645463325252ULL; /* xorshift: the same offsets in every run */
  long blocks = size / 4096;
  t0 = now();
  for (long i = 0; i < randoms; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (pread(fd, buf, 4096, (off_t)(x % blocks) * 4096) != 4096) { perror("pread"); finish(1); }
  }
  t = now() - t0;
  printf("BENCH rand_iops=%.1f n=%ld\n", randoms / t, randoms);
}

int main(void) {
  mount("proc", "/proc", "proc", 0, NULL);
  char cmdline[1024] = "", uptime[64] = "";
  int fd = open("/proc/uptime", O_RDONLY);
  if (fd >= 0) { read(fd, uptime, sizeof uptime - 1); close(fd); }
  fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) { read(fd, cmdline, sizeof cmdline - 1); close(fd); }
  uptime[strcspn(uptime, " ")] = 0;
  printf("BENCH-MARKER uptime=%s\n", uptime);
  fflush(stdout);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  char mode_buf[64], n_buf[64];
  const char *mode = param(cmdline, "bench=", mode_buf);
  char *n = param(cmdline, "bench_n=", n_buf);
  long count = n ? atol(n) : 20000;
  char k_buf[64];
  char *k = param(cmdline, "bench_chunks=", k_buf);
  if (k) chunks = atol(k);
  if (chunks < 1 || chunks > 64 || chunks > count) chunks = 1;
  if (mode && !strcmp(mode, "pio")) exits_pio(count);
  else if (mode && !strcmp(mode, "mmio")) {
    char a_buf[64];
    char *a = param(cmdline, "bench_addr=", a_buf);
    exits_mmio(count, a ? strtoul(a, NULL, 0) : UNCLAIMED_MMIO);
  }
  else if (mode && !strcmp(mode, "disk")) disk(count);
  else sleep(1);
  finish(0);
}
