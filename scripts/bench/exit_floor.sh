#!/usr/bin/env bash
# What an exit to user space costs in C and under denovmm's code, on the same trivial guest
# (scripts/bench/exit_floor.c and .ts: N writes to an unclaimed port from real mode): the C
# loop, a bare JavaScript loop of KVM_RUN calls, denovmm's exit loop, and that loop in the boot
# vCPU's slices with its tick. R interleaved rounds; per mode the median µs per exit and the
# median of the per-round ratios to C. No Linux guest, so no guest noise: the difference from
# C is what V8, Deno's FFI and the loop cost per exit on this CPU.
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
trap 'rm -f "$rows"' EXIT
for r in $(seq "$rounds"); do
  for mode in c bare loop slice; do
    if [[ $mode == c ]]; then out=$("$bin" "$n"); else out=$("${deno[@]}" "$mode" "$n"); fi
    us=$(grep -oE 'us=[0-9.]+' <<<"$out" | cut -d= -f2)
    echo "round $r $mode ${us:-?} µs per exit"
    echo "$r $mode ${us:-nan}" >>"$rows"
  done
done
awk '
  { us[$1, $2] = $3; if ($2 != "c") modes[$2] = 1; rounds[$1] = 1 }
  function median(a, k,   i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    k = 0; for (r in rounds) { k++; v[k] = us[r, "c"] }
    printf "c       median %6.1f µs per exit\n", median(v, k)
    split("bare loop slice", order, " ")
    for (o = 1; o <= 3; o++) {
      m = order[o]; k = 0
      for (r in rounds) { k++; v[k] = us[r, m]; q[k] = us[r, m] / us[r, "c"] }
      printf "%-7s median %6.1f µs per exit, %.2f of C (per round)\n", m, median(v, k), median(q, k)
    }
  }' "$rows"
