#!/usr/bin/env bash
# What QEMU's software CPU does for the sandbox over the exits of exit_floor.ts (the trivial
# guest): its `info jit` counters (translation blocks made, invalidated and flushed; TLB
# flushes), read through the sandbox's monitor right before the first timed exit and right after
# the last, beside each run's wall time and CPU split. Tells a cost of the emulation (the same
# for every mode, or made once a run) from one of denovmm's code (per exit, natively too). Run on
# the host, not in the sandbox: it starts the sandbox and answers from outside it.
#
#   bash scripts/bench/tcg_counters.sh [N] [R] [MODE...]     (modes: exit_floor.ts's; loop slice)
#
# DENOVMM_SANDBOX_CPUS and DENOVMM_SANDBOX_TB_MB pass to the sandbox as they do for any run; with
# the default 128 MiB translation buffer a flush comes about every other run and a run's "made"
# count then reads negative: DENOVMM_SANDBOX_TB_MB=1024 avoids that.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
asks=.cache/tcg/asks

if [[ ${1:-} == --in ]]; then
  # Inside the sandbox: the runs, each asking for the counters around its exits.
  shift
  n=$1 rounds=$2
  shift 2
  deno=(.tools/deno run -A --quiet scripts/bench/exit_floor.ts)
  "${deno[@]}" bare 10 >/dev/null # compiled and cached before timing
  for r in $(seq 1 "$rounds"); do
    for mode in "$@"; do
      out=$(DENOVMM_TCG_ASK=$repo/$asks DENOVMM_TCG_TAG=$r "${deno[@]}" "$mode" "$n")
      echo "RUN $mode.$r $(grep -oE 'us=[0-9.]+' <<<"$out") $(grep '^CPU' <<<"$out" | cut -d' ' -f2-)"
    done
  done
  exit 0
fi

n=${1:-30000} rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
modes=("$@")
((${#modes[@]})) || modes=(loop slice)
[[ $n =~ ^[0-9]+$ && $rounds =~ ^[0-9]+$ ]] || { echo "usage: tcg_counters.sh [N] [R] [MODE...]" >&2 && exit 2; }
rm -rf "$asks" && mkdir -p "$asks"
started=$(date +%s)

# Answers each ask with QEMU's counters: the newest sandbox QEMU started after this script.
answer() {
  local pid="" mon f t
  while [[ -z $pid ]]; do
    sleep 1
    for p in $(pgrep -f 'qemu-system-x86_64 .*denovmm-sandbox' || true); do
      (($(stat -c %Y /proc/"$p") >= started)) && pid=$p
    done
  done
  mon=$(tr '\0' '\n' <"/proc/$pid/cmdline" | grep -oE 'pipe,id=mon,path=[^,]*' | cut -d= -f3)
  while kill -0 "$pid" 2>/dev/null; do
    for f in "$asks"/ask.*; do
      [[ -e $f ]] || continue
      t=${f#"$asks"/ask.}
      [[ -e $asks/done.$t ]] && continue
      printf 'info jit\n' >"$mon.in"
      timeout 1 cat "$mon.out" | tr -d '\r' |
        grep -E '^(TB count|TB flush count|TB invalidate count|TLB full flushes|TLB partial flushes) ' \
          >"$asks/counters.$t" || true
      touch "$asks/done.$t"
    done
    sleep 0.1
  done
}
answer &
answerer=$!
trap 'kill $answerer 2>/dev/null || true' EXIT

runs=$(DENOVMM_SANDBOX=1 bash scripts/with-kvm.sh bash scripts/bench/tcg_counters.sh --in "$n" "$rounds" "${modes[@]}")
# One line a run: its own figures, then each counter's change over its exits.
while read -r _ t rest; do
  deltas=""
  for name in "TB count" "TB invalidate count" "TB flush count" "TLB partial flushes" "TLB full flushes"; do
    a=$(grep "^$name " "$asks/counters.$t.a" | awk '{print $NF}')
    b=$(grep "^$name " "$asks/counters.$t.b" | awk '{print $NF}')
    key=$(tr ' ' '_' <<<"$name" | sed -e 's/_count$//' -e 's/^TB$/TB_made/')
    deltas+=" $key=$((b - a))"
  done
  echo "$t $rest$deltas"
done < <(grep '^RUN ' <<<"$runs")
