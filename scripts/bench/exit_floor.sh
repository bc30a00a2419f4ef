#!/usr/bin/env bash
# What an exit to user space costs in C and under denovmm's code, on the same trivial guest
# (scripts/bench/exit_floor.c and .ts: N writes to an unclaimed port from real mode): the C
# loop, a bare JavaScript loop of KVM_RUN calls, denovmm's exit loop, and that loop in the boot
# vCPU's slices with its tick. R interleaved rounds; per mode the median µs per exit and the
# median of the per-round ratios to C. No Linux guest, so no guest noise: the difference from
# C is what V8, Deno's FFI and the loop cost per exit on this CPU. And QEMU on the same guest
# (exit_floor_bios.ts: the loop as its firmware, `-M microvm` as the bench runs it), timed from
# the difference of two runs of 1 000 and 1 000 + 4N writes (QEMU's own start left out): the
# peer's cost per exit on the guest where the floors are measured.
#
#   bash scripts/with-kvm.sh bash scripts/bench/exit_floor.sh [N] [R]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
n=${1:-30000} rounds=${2:-5}
bin=.cache/bench/exit_floor
mkdir -p .cache/bench
if [[ ! -x $bin || scripts/bench/exit_floor.c -nt $bin ]]; then
  gcc -O2 -static -o "$bin" scripts/bench/exit_floor.c
fi
deno=(.tools/deno run -A --quiet scripts/bench/exit_floor.ts)
"${deno[@]}" bare 10 >/dev/null # compiled and cached before timing
rows=$(mktemp)
bios=$(mktemp -d)
trap 'rm -rf "$rows" "$bios"' EXIT
qn=$((4 * n))
.tools/deno run -W --quiet scripts/bench/exit_floor_bios.ts 1000 "$bios/short.bin"
.tools/deno run -W --quiet scripts/bench/exit_floor_bios.ts $((1000 + qn)) "$bios/long.bin"
# ms QEMU takes from exec to its end on firmware $1 (isa-debug-exit's status is 1).
qemu_ms() {
  local t0 t1
  t0=$(date +%s%N)
  qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 16M -bios "$1" -nodefaults \
    -no-user-config -display none -monitor none -serial none \
    -device isa-debug-exit,iobase=0x501,iosize=1 || [[ $? == 1 ]]
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
qemu_ms "$bios/short.bin" >/dev/null # its libraries read once before timing
for r in $(seq "$rounds"); do
  for mode in ${DENOVMM_FLOOR_MODES:-c bare loop slice qemu}; do
    if [[ $mode == c ]]; then
      out=$("$bin" "$n")
    elif [[ $mode == qemu ]]; then
      a=$(qemu_ms "$bios/short.bin") b=$(qemu_ms "$bios/long.bin")
      out="us=$(awk -v a="$a" -v b="$b" -v n="$qn" 'BEGIN { printf "%.2f", (b - a) / n }')"
    else
      out=$("${deno[@]}" "$mode" "$n")
    fi
    us=$(grep -oE 'us=[0-9.]+' <<<"$out" | cut -d= -f2)
    echo "round $r $mode ${us:-?} µs per exit"
    echo "$r $mode ${us:-nan}" >>"$rows"
  done
done
# Per mode: the median µs per exit, and the medians of its per-round ratios to C and to QEMU.
awk '
  { us[$1, $2] = $3; rounds[$1] = 1 }
  function median(a, k,   i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    n = split(modes, order, " ")
    for (o = 1; o <= n; o++) {
      m = order[o]; k = 0
      for (r in rounds) {
        k++; v[k] = us[r, m]
        q[k] = us[r, "c"] > 0 ? us[r, m] / us[r, "c"] : 0
        p[k] = us[r, "qemu"] > 0 ? us[r, m] / us[r, "qemu"] : 0
      }
      line = sprintf("%-12s median %6.1f µs per exit", m, median(v, k))
      if (m != "c" && q[1] > 0) line = line sprintf(", %.2f of C", median(q, k))
      if (m != "qemu" && p[1] > 0) line = line sprintf(", %.2f of QEMU", median(p, k))
      print line " (ratios per round)"
    }
  }' modes="${DENOVMM_FLOOR_MODES:-c bare loop slice qemu}" "$rows"
