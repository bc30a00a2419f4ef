#!/usr/bin/env bash
# Where a boot's guest time goes, per VMM: `perf kvm stat` over one boot of the bench guest to its
# /init (bench=boot powers off at the marker), with the exits by reason, their count and time,
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
data=.cache/bench/kvm-stat.$$
./denovmm --version >/dev/null # unpacked before timing
trace() { # name cmd...
  local name=$1
  shift
  local t0=$EPOCHREALTIME
  perf kvm stat record -q -o "$data" -- "$@" </dev/null 2>&1 | grep -aE "BENCH-MARKER" | sed "s/^/$name: /" || true
  echo "$name: wall $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s (perf recording)"
  perf kvm stat report -i "$data" --event=vmexit 2>/dev/null | grep -vE "^$|^#" | head -16 | sed "s/^/$name: /"
  rm -f "$data"
}
trace denovmm ./denovmm run -k "$kernel" -i "$initrd" -m 256M -c "$cpus" -p "quiet bench=boot"
for m in pc microvm; do
  trace "qemu-$m-pvh" qemu-system-x86_64 -M "$m" -accel kvm -cpu host -m 256M -smp "$cpus" \
    -kernel "$kernel" -initrd "$initrd" -append "$base" -nodefaults -no-user-config -display none \
    -serial stdio -monitor none -no-reboot -device isa-debug-exit,iobase=0x501,iosize=1
done
