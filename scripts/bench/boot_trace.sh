#!/usr/bin/env bash
# Where a boot's guest time goes, per VMM: `perf stat -a` of KVM's tracepoints over one boot of
# the bench guest to its /init (bench=boot powers off at the marker): exits, and among them port
# and MMIO accesses, MSR and CPUID exits, page faults, injected interrupts, exits to user space;
# for denovmm (the vmlinux) and QEMU (-M pc and -M microvm, the same vmlinux through PVH).
#
#   bash scripts/with-kvm.sh bash scripts/bench/boot_trace.sh [CPUS]
#
# Needs what `deno task bench` prepares (.cache/bench/initrd.cpio.gz, ./denovmm) and perf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
cpus=${1:-1}
initrd=.cache/bench/initrd.cpio.gz kernel=.cache/guest/vmlinux
for f in "$initrd" ./denovmm; do
  [[ -e $f ]] || { echo "boot_trace: no $f: run deno task bench --rounds 1 --only boot first" >&2; exit 2; }
done
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
base="console=ttyS0 reboot=k panic=-1 pci=noearly i8042.noaux i8042.nomux i8042.dumbkbd cryptomgr.notests quiet bench=boot"
events=kvm:kvm_exit,kvm:kvm_userspace_exit,kvm:kvm_pio,kvm:kvm_mmio,kvm:kvm_msr,kvm:kvm_cpuid
events+=,kvm:kvm_page_fault,kvm:kvm_emulate_insn,kvm:kvm_inj_virq,kvm:kvm_hypercall,kvm:kvm_fpu
data=.cache/bench/boot-stat.$$
./denovmm --version >/dev/null # unpacked before timing
trace() { # name cmd...
  local name=$1
  shift
  local t0=$EPOCHREALTIME
  perf stat -a -x, -e "$events" -o "$data" -- "$@" </dev/null 2>&1 | grep -aE "BENCH-MARKER" |
    sed "s/^/$name: /" || true
  echo "$name: wall $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
  awk -F, -v name="$name" '/^[0-9]/ { printf "%s: %-26s %9d\n", name, $3, $1 }' "$data"
  rm -f "$data"
}
trace denovmm ./denovmm run -k "$kernel" -i "$initrd" -m 256M -c "$cpus" -p "quiet bench=boot"
for m in pc microvm; do
  trace "qemu-$m-pvh" qemu-system-x86_64 -M "$m" -accel kvm -cpu host -m 256M -smp "$cpus" \
    -kernel "$kernel" -initrd "$initrd" -append "$base" -nodefaults -no-user-config -display none \
    -serial stdio -monitor none -no-reboot -device isa-debug-exit,iobase=0x501,iosize=1
done
