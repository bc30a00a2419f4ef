#!/usr/bin/env bash
# When a boot's time passes, per VMM: `perf record -a` of KVM's entry, exit, MSR and port
# tracepoints over one boot of the bench guest (bench=boot) to its /init, split into phases:
#
#   start      the VMM's exec → the guest's first instruction (the first kvm_entry)
#   pre-clock  → the guest registers kvm-clock (MSR 0x4b564d01): the kernel's set-up before its
#              clock starts, which the guest's own uptime does not count
#   kernel     → the marker line reaches the host (the guest's /init printed it)
#
# and, per phase, the exits, those to user space, and where the vCPU thread's time went: in the
# guest (entry → exit), in KVM (exit → entry without user space), in the VMM (a user-space exit
# → the next entry). QEMU on the same vmlinux through PVH (-M pc and -M microvm) and on the
# bzImage (-M pc).
#
#   bash scripts/with-kvm.sh bash scripts/bench/boot_timeline.sh [CPUS]
#
# Needs what `deno task bench` prepares (.cache/bench/initrd.cpio.gz, ./denovmm) and perf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
cpus=${1:-1}
initrd=.cache/bench/initrd.cpio.gz kernel=.cache/guest/vmlinux bz=.cache/guest/vmlinuz
for f in "$initrd" ./denovmm; do
  [[ -e $f ]] || { echo "boot_timeline: no $f: run deno task bench --rounds 1 --only boot first" >&2; exit 2; }
done
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
base="console=ttyS0 reboot=k panic=-1 pci=noearly i8042.noaux i8042.nomux i8042.dumbkbd cryptomgr.notests quiet bench=boot"
events=sched:sched_process_exec,kvm:kvm_entry,kvm:kvm_exit,kvm:kvm_userspace_exit,kvm:kvm_msr
events+=,kvm:kvm_pio,kvm:kvm_mmio
data=.cache/bench/boot-timeline.$$
./denovmm --version >/dev/null # unpacked before timing
timeline() { # name cmd...
  local name=$1
  shift
  local mark=$data.mark
  rm -f "$mark"
  # CLOCK_MONOTONIC for perf's timestamps; /proc/uptime (boot time, the same clock in a VM that
  # is never suspended) when the marker line arrives.
  perf record -q -a -k mono -e "$events" -o "$data" -- "$@" </dev/null 2>"$data.err" |
    while IFS= read -r line; do
      [[ $line == *BENCH-MARKER* && ! -e $mark ]] && read -r up _ </proc/uptime && echo "$up" >"$mark"
    done || true
  perf script -i "$data" -F tid,time,event,trace 2>/dev/null | awk -v name="$name" \
    -v mark="$(cat "$mark" 2>/dev/null || echo 0)" -v kinds="${DENOVMM_TL_KINDS:-0}" '
    function phase(t) { return t < entry0 ? 1 : (clock == 0 || t < clock) ? 2 : 3 }
    {
      tid = $1; t = $2 + 0; ev = $3
      if (ev ~ /sched_process_exec/) { if (exec0 == 0) exec0 = t; next }
      n++; T[n] = t; E[n] = ev; D[n] = tid; L[n] = $0
      if (ev ~ /kvm_entry/ && entry0 == 0) entry0 = t
      if (ev ~ /kvm_msr/ && $0 ~ /msr_write 4b564d01/ && clock == 0) clock = t
    }
    END {
      if (entry0 == 0) { print name ": no kvm_entry recorded"; exit }
      for (i = 1; i <= n; i++) {
        tid = D[i]; t = T[i]; p = phase(t)
        if (E[i] ~ /kvm_exit/) {
          exits[p]++
          if (tid in inguest) guest[p] += t - inguest[tid]
          delete inguest[tid]; exited[tid] = t; what[tid] = ""
          if (match(L[i], /reason [A-Za-z_0-9]+/)) why[p, substr(L[i], RSTART + 7, RLENGTH - 7)]++
        } else if (E[i] ~ /kvm_pio|kvm_mmio/) {
          sub(/^.*kvm:kvm_/, "", L[i]); what[tid] = L[i]
        } else if (E[i] ~ /kvm_userspace_exit/) {
          user_exits[p]++
          if (what[tid] == "" && match(L[i], /reason .*$/)) what[tid] = substr(L[i], RSTART, RLENGTH)
          if (tid in exited) kvm[p] += t - exited[tid]
          delete exited[tid]; inuser[tid] = t
        } else if (E[i] ~ /kvm_entry/) {
          if (tid in inuser) {
            vmm[p] += t - inuser[tid]
            # by kind of access: the port or MMIO page, or the exit reason with none (EINTR)
            w = what[tid]; kind = w == "" ? "no access" : w
            if (match(w, /pio_(read|write) at 0x[0-9a-f]+/)) kind = substr(w, RSTART, RLENGTH)
            else if (match(w, /mmio (read|write)/)) {
              kind = substr(w, RSTART, RLENGTH)
              if (match(w, /gpa 0x[0-9a-f]+/)) kind = kind " page " substr(w, RSTART + 4, RLENGTH - 7) "000"
            }
            kcount[p, kind]++; ktime[p, kind] += t - inuser[tid]
            # the longest stays in the VMM, and the access that caused each
            for (j = 1; j <= 8; j++) if (t - inuser[tid] > slow[j]) break
            if (j <= 8) {
              for (k = 8; k > j; k--) { slow[k] = slow[k - 1]; slowat[k] = slowat[k - 1] }
              slow[j] = t - inuser[tid]; slowat[j] = sprintf("%.3f s %s", inuser[tid] - exec0, what[tid])
            }
          }
          else if (tid in exited) kvm[p] += t - exited[tid]
          delete inuser[tid]; delete exited[tid]; inguest[tid] = t
        }
      }
      end = mark > 0 ? mark : T[n]
      split("start pre-clock kernel", names, " ")
      bound[1] = exec0; bound[2] = entry0; bound[3] = clock ? clock : end; bound[4] = end
      printf "%s: exec→marker %.2f s%s\n", name, end - exec0, (mark > 0 ? "" : " (no marker: to the last event)")
      for (p = 1; p <= 3; p++) {
        printf "%s:   %-9s %6.2f s  exits %6d (to user space %5d)  vCPU time: guest %.2f s, KVM %.2f s, VMM %.2f s\n",
          name, names[p], bound[p + 1] - bound[p], exits[p], user_exits[p], guest[p], kvm[p], vmm[p]
        top = ""
        for (k in why) {
          split(k, kk, SUBSEP)
          if (kk[1] == p && why[k] * 20 >= exits[p]) top = top sprintf(" %s %d", kk[2], why[k])
        }
        if (top != "") printf "%s:             exits by reason (5%%+):%s\n", name, top
      }
      # DENOVMM_TL_KINDS=N: the N kinds of access whose exits took the most VMM time, per phase
      for (p = 2; p <= 3 && kinds > 0; p++) {
        m = 0
        for (k in ktime) { split(k, kk, SUBSEP); if (kk[1] == p) { m++; KT[m] = ktime[k]; KN[m] = kk[2] } }
        for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (KT[b] > KT[a]) {
          x = KT[a]; KT[a] = KT[b]; KT[b] = x; x = KN[a]; KN[a] = KN[b]; KN[b] = x
        }
        for (a = 1; a <= m && a <= kinds; a++)
          printf "%s:   %-9s VMM %6.1f ms in %4d exits (%.2f ms each): %s\n", name, names[p],
            KT[a] * 1000, kcount[p, KN[a]], KT[a] * 1000 / kcount[p, KN[a]], KN[a]
      }
      for (j = 1; j <= 8 && slow[j] > 0; j++)
        printf "%s:   VMM %6.1f ms at %s\n", name, slow[j] * 1000, slowat[j]
    }'
  grep -aE "after start|enters the guest|ready" "$data.err" | sed "s/^/$name:   /" || true
  rm -f "$data" "$mark" "$data.err"
}
# DENOVMM_TL_RUNS=N boots denovmm N times (the first run writes V8's code cache, the later ones
# read it); DENOVMM_TL_DEBUG=1 adds denovmm's --debug start-up steps; DENOVMM_TL_V8="A;B;..."
# boots it once per set of V8 flags (DENO_V8_FLAGS, "" for none); DENOVMM_TL_QEMU=0 leaves QEMU out;
# DENOVMM_TL_KINDS=N prints, per phase, the N kinds of exit to user space (a port, an MMIO page, or
# the exit's reason where it has no access, as KVM_EXIT_INTR for a signal) that took the VMM longest.
IFS=';' read -r -a v8sets <<<"${DENOVMM_TL_V8-}"
((${#v8sets[@]})) || v8sets=("")
for v8 in "${v8sets[@]}"; do
  for ((run = 1; run <= ${DENOVMM_TL_RUNS:-1}; run++)); do
    timeline "denovmm${v8:+ $v8}" ${v8:+env DENO_V8_FLAGS=$v8} ./denovmm run ${DENOVMM_TL_DEBUG:+--debug} \
      -k "$kernel" -i "$initrd" -m 256M -c "$cpus" -p "quiet bench=boot"
  done
done
[[ ${DENOVMM_TL_QEMU:-1} == 0 ]] && exit 0
qemu=(qemu-system-x86_64 -accel kvm -cpu host -m 256M -smp "$cpus" -initrd "$initrd" -append "$base"
  -nodefaults -no-user-config -display none -serial stdio -monitor none -no-reboot
  -device isa-debug-exit,iobase=0x501,iosize=1)
timeline qemu-pc-pvh "${qemu[@]}" -M pc -kernel "$kernel"
timeline qemu-microvm-pvh "${qemu[@]}" -M microvm -kernel "$kernel"
[[ -e $bz ]] && timeline qemu-pc-bzimage "${qemu[@]}" -M pc -kernel "$bz"
