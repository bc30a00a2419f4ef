#!/usr/bin/env bash
# Where one exit's wall time goes, per VMM: `perf record -a` of KVM's entry, exit and
# user-space-exit tracepoints over a run of the bench guest's unclaimed writes (bench=mmio or
# pio), and per write (from one write's exit to user space to the next's) the medians of
#
#   vmm     the VMM: the exit to user space → the next KVM_RUN's guest entry
#   kvm     KVM: every guest exit → the next entry or exit to user space, summed over the cycle
#   guest   the guest: every entry → the next exit, summed over the cycle
#   cycle   the whole of it (what the guest's own timing measures, plus the trace's cost)
#
# with the quartiles, so that the emulation's noise shows. denovmm against QEMU -M microvm as
# the bench runs it (the bzImage) and on the same vmlinux through PVH.
#
#   bash scripts/with-kvm.sh bash scripts/bench/exit_phases.sh [mmio|pio] [N]
#
# Needs what `deno task bench` prepares (.cache/bench/initrd.cpio.gz, ./denovmm) and perf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
mode=${1:-mmio} n=${2:-3000}
initrd=.cache/bench/initrd.cpio.gz kernel=.cache/guest/vmlinux bz=.cache/guest/vmlinuz
for f in "$initrd" ./denovmm; do
  [[ -e $f ]] || { echo "exit_phases: no $f: run deno task bench --rounds 1 --only exits first" >&2; exit 2; }
done
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
case $mode in
mmio) target="kvm_mmio: mmio write len 4 gpa 0xe0000000" ;;
pio) target="kvm_pio: pio_write at 0x4f0" ;;
*) echo "exit_phases: mode is mmio or pio, not '$mode'" >&2 && exit 2 ;;
esac
base="console=ttyS0 reboot=k panic=-1 pci=noearly i8042.noaux i8042.nomux i8042.dumbkbd cryptomgr.notests quiet bench=$mode bench_n=$n"
data=.cache/bench/exit-phases.$$
./denovmm --version >/dev/null # unpacked before timing

phases() { # name cmd...
  local name=$1
  shift
  local us
  us=$(perf record -q -a -k mono -e kvm:kvm_entry,kvm:kvm_exit,kvm:kvm_userspace_exit,kvm:kvm_mmio,kvm:kvm_pio \
    -o "$data" -- "$@" </dev/null 2>/dev/null | grep -aoE "${mode}_us=[0-9.]+" | cut -d= -f2 || true)
  perf script -i "$data" -F tid,time,event,trace 2>/dev/null | awk -v target="$target" '
    { tid = $1; t = $2 * 1e6; ev = $3 }
    ev ~ /kvm_exit/ { if (tid in entered) guest[tid] += t - entered[tid]; delete entered[tid]; exited[tid] = t; hit[tid] = 0; next }
    index($0, target) { hit[tid] = 1; next }
    ev ~ /kvm_userspace_exit/ {
      if (tid in exited) kvm[tid] += t - exited[tid]
      delete exited[tid]
      if (hit[tid]) {
        if (tid in last) printf "%.2f %.2f %.2f %.2f\n", vmm[tid], kvm[tid], guest[tid], t - last[tid]
        last[tid] = t; user[tid] = t; kvm[tid] = 0; guest[tid] = 0
      } else if (tid in last) user[tid] = t
      next
    }
    ev ~ /kvm_entry/ {
      if (tid in user) vmm[tid] = t - user[tid]
      else if (tid in exited) kvm[tid] += t - exited[tid]
      delete user[tid]; delete exited[tid]; entered[tid] = t
    }' >"$data.rows"
  local col label
  printf "%s: %d writes traced, the guest measured %s µs per write (the trace included)\n" \
    "$name" "$(wc -l <"$data.rows")" "${us:-?}"
  for col in 1 2 3 4; do
    label=$(echo vmm kvm guest cycle | cut -d' ' -f$col)
    cut -d' ' -f$col "$data.rows" | sort -n | awk -v name="$name" -v label="$label" '
      { v[NR] = $1; sum += $1 }
      END {
        if (NR) printf "%s:   %-6s median %7.1f µs  quartiles %7.1f %7.1f  mean %7.1f\n", name, label,
          v[int(NR / 2) + 1], v[int(NR / 4) + 1], v[int(3 * NR / 4) + 1], sum / NR
      }'
  done
  # The tail: writes whose cycle took over 1 ms (a timer tick, the VMM's other work, the
  # emulation's own pauses), what share of all the time they hold, and where their time went.
  awk -v name="$name" '
    { all += $4 } $4 >= 1000 { n++; c += $4; m += $1; k += $2; g += $3 }
    END {
      if (n) printf "%s:   over 1 ms: %d writes, %.0f%% of the time; their mean: vmm %.0f, kvm %.0f, guest %.0f µs\n",
        name, n, 100 * c / all, m / n, k / n, g / n
    }' "$data.rows"
  rm -f "$data" "$data.rows"
}
phases denovmm ./denovmm run -k "$kernel" -i "$initrd" -m 256M -p "quiet bench=$mode bench_n=$n"
qemu=(qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 256M -initrd "$initrd" -append "$base"
  -nodefaults -no-user-config -display none -serial stdio -monitor none -no-reboot
  -device isa-debug-exit,iobase=0x501,iosize=1)
phases qemu-microvm "${qemu[@]}" -kernel "$bz"
phases qemu-microvm-pvh "${qemu[@]}" -kernel "$kernel"
phases denovmm-again ./denovmm run -k "$kernel" -i "$initrd" -m 256M -p "quiet bench=$mode bench_n=$n"
