#!/usr/bin/env bash
# Where an exit's time goes, per VMM: the KVM tracepoints and scheduler events that one
# unclaimed MMIO (or port) write costs under denovmm and under QEMU -M microvm, counted with
# `perf stat -a` over two runs of the bench guest (N1 and N2 writes) and divided out, so the
# boot and the VMM's start cancel: (count(N2) - count(N1)) / (N2 - N1) per write. Controls:
# QEMU as the bench runs it, and with kernel-irqchip=on and =split; the guest's time per
# write as it measured it.
#
#   bash scripts/with-kvm.sh bash scripts/bench/exit_trace.sh [mmio|pio] [N1] [N2] [system|process]
#
# `process` counts the VMM process alone instead of the whole sandbox: its user and system CPU
# time (perf's user_time and system_time, in ns), context switches and migrations.
#
# Needs what `deno task bench` prepares (.cache/bench/initrd.cpio.gz, ./denovmm) and perf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
mode=${1:-mmio} n1=${2:-2000} n2=${3:-22000} scope=${4:-system}
initrd=.cache/bench/initrd.cpio.gz
kernel=.cache/guest/vmlinux bz=.cache/guest/vmlinuz
for f in "$initrd" ./denovmm; do
  [[ -e $f ]] || { echo "exit_trace: no $f: run deno task bench --rounds 1 --only exits first" >&2; exit 2; }
done
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
events=kvm:kvm_exit,kvm:kvm_entry,kvm:kvm_userspace_exit,kvm:kvm_page_fault,kvm:kvm_emulate_insn
events+=,kvm:kvm_mmio,kvm:kvm_pio,kvm:kvm_fpu,kvm:kvm_inj_virq,kvm:kvm_set_irq,kvm:kvm_apic_accept_irq
events+=,sched:sched_switch,sched:sched_wakeup,sched:sched_migrate_task,irq:irq_handler_entry
events+=,cpu-clock,context-switches
all=-a
if [[ $scope == process ]]; then
  events=user_time,system_time,duration_time,task-clock,context-switches,cpu-migrations,page-faults
  all=
fi
base="console=ttyS0 reboot=k panic=-1 pci=noearly i8042.noaux i8042.nomux i8042.dumbkbd cryptomgr.notests quiet bench=$mode"

run() { # name n cmd...
  local name=$1 n=$2
  shift 2
  local out
  out=$(perf stat $all -x, -e "$events" -o .cache/bench/perf.$$ -- "$@" 2>&1 </dev/null || true)
  local us
  us=$(grep -oE "${mode}_us=[0-9.]+" <<<"$out" | cut -d= -f2 || true)
  echo "$name n=$n guest_us=${us:-?}"
  awk -F, -v name="$name" -v n="$n" '/^[0-9]/ { print name, n, $3, $1 }' .cache/bench/perf.$$
}

measure() { # name cmd-with-N...
  local name=$1
  shift
  local tmp=.cache/bench/trace.$$
  run "$name" "$n1" "${@//@N@/$n1}" >"$tmp.a"
  run "$name" "$n2" "${@//@N@/$n2}" >"$tmp.b"
  head -1 "$tmp.a"
  head -1 "$tmp.b"
  tail -n +2 "$tmp.a" | awk '{print $3, $4}' | sort >"$tmp.a2"
  tail -n +2 "$tmp.b" | awk '{print $3, $4}' | sort >"$tmp.b2"
  join "$tmp.a2" "$tmp.b2" |
    awk -v name="$name" -v d=$((n2 - n1)) '{ printf "  %-12s %-28s %10.3f per write\n", name, $1, ($3 - $2) / d }'
  rm -f "$tmp".*
}

# Its first run unpacks the executable (the sandbox's home is new each boot): not an exit's cost.
./denovmm --version >/dev/null
measure denovmm ./denovmm run -k "$kernel" -i "$initrd" -m 256M -p "quiet bench=$mode bench_n=@N@"
# The bench's peer (microvm as QEMU defaults it, on the bzImage), then its interrupt controllers
# and PIT in the kernel (as denovmm has them) and split (the LAPIC in the kernel, the rest in
# QEMU), and the vmlinux through PVH: the guest then pages as under denovmm (the bzImage's
# decompressor can switch to 5-level paging where the CPU has it; a 64-bit or PVH entry cannot).
for chip in ${QEMU_CHIPS:-default on split pvh}; do
  machine=microvm k=$bz
  case $chip in
  on | split) machine+=",kernel-irqchip=$chip" ;;
  pvh) k=$kernel ;;
  esac
  measure "qemu-$chip" qemu-system-x86_64 -M "$machine" -accel kvm -cpu host -m 256M \
    -kernel "$k" -initrd "$initrd" -append "$base bench_n=@N@" -nodefaults -no-user-config \
    -display none -serial stdio -monitor none -no-reboot -device isa-debug-exit,iobase=0x501,iosize=1
done
rm -f .cache/bench/perf.$$
