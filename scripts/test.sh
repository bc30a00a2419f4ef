#!/usr/bin/env bash
# deno task test: every test. First the compile and the host's own tests (no KVM needed), then
# the x86-64 KVM suite and the arm64 one at the same time, each in its own sandbox where this
# host has no KVM of that architecture (scripts/with-kvm.sh).
#
# Why at the same time: CI runs this on 2 cores within 30 minutes, and the x86-64 suite alone
# takes about 22 of them in its one-CPU sandbox, which keeps one core busy; the arm64 sandbox
# (QEMU TCG, one CPU too) takes the other. The arm64 lane (its sandbox's own tests, then
# tests/kvm_arm64/) streams its output with every line prefixed "arm64| "; a summary at the end
# names each lane's status and time. Exit status: 0 only when every step passed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# `deno task` runs us with its own deno, which need not be on PATH: use the pinned one.
deno=$repo/.tools/deno
[[ -x $deno ]] || deno=deno

"$deno" task compile
# The arm64 sandbox's own tests boot it several times: they run in the arm64 lane below.
"$deno" test -A --ignore=tests/kvm,tests/kvm_arm64,tests/scripts/sandbox_arm64_test.ts tests/
# Type-check the KVM tests here, into the module cache each sandbox uses: a cold check of
# tests/kvm/ took 75 s under the sandbox's emulated CPU and takes 2 s on the host; the sandbox's
# deno test then checks nothing. The arm64 Deno finds its check in .cache/deno-arm64 the same way.
DENO_DIR=.cache/deno "$deno" check tests/kvm/
DENO_DIR=.cache/deno-arm64 "$deno" check tests/kvm_arm64/

status_dir=$(mktemp -d /tmp/denovmm-test.XXXXXX)
trap 'rm -rf "$status_dir"' EXIT

# Every step runs, so that one failure does not hide another; the lane fails if any did.
arm64_lane() {
  local s=0
  "$deno" test -A tests/scripts/sandbox_arm64_test.ts || s=1
  # The arm64 executable first: tests/kvm_arm64/compiled_binary_test.ts boots the guest with it
  # (unpacking its payload under the emulated CPU takes about 90 s of that test).
  bash scripts/compile.sh --target aarch64 || s=1
  DENOVMM_ARCH=arm64 DENOVMM_SANDBOX_TIMEOUT=1500 bash scripts/with-kvm.sh deno test -A tests/kvm_arm64/ || s=1
  return $s
}
start=$SECONDS
# stdin from /dev/null: with-kvm.sh saves piped stdin for its command, and only one lane may
# have it (the x86-64 one, as before there were two).
{
  arm64_lane </dev/null 2>&1 && s=0 || s=$?
  echo "$s $((SECONDS - start))" >"$status_dir/arm64"
} | sed -u 's/^/arm64| /' &
arm64=$!

x86=0
DENOVMM_SANDBOX_TIMEOUT=1800 bash scripts/with-kvm.sh deno test -A tests/kvm/ || x86=$?
x86_time=$((SECONDS - start))
wait "$arm64" || true
read -r arm64_status arm64_time <"$status_dir/arm64" 2>/dev/null || arm64_status="no status"

verdict() { [[ $1 == 0 ]] && echo ok || echo "FAILED (status $1)"; }
echo "test: x86-64 KVM suite: $(verdict "$x86") in ${x86_time} s"
echo "test: arm64 lane (sandbox tests, tests/kvm_arm64/; lines marked 'arm64| '): $(verdict "$arm64_status") in ${arm64_time:-?} s"
[[ $x86 == 0 && $arm64_status == 0 ]]
