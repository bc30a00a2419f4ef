#!/usr/bin/env bash
# deno task test: every test. The compile and the type-check of the KVM tests first; then two
# lanes at the same time: the x86-64 KVM suite in one, and in the other the host's own unit
# tests (no KVM needed) followed by the arm64 suite, each KVM suite in its own sandbox where this
# host has no KVM of that architecture (scripts/with-kvm.sh), one file at a time so that a death
# of the sandbox's kernel costs only the file it stopped (scripts/kvm_suite.sh).
#
# Why so: CI runs this on 2 cores within 30 minutes, and the x86-64 suite alone takes about 22
# of them in its one-CPU sandbox, which keeps one core busy, so it starts first; the host's
# tests (about 4 minutes) and then the arm64 sandbox (QEMU TCG, one CPU too) take the other.
# The second lane streams its output with every line prefixed "host| " or "arm64| "; a summary
# at the end names each lane's status and time. Exit status: 0 only when every step passed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# `deno task` runs us with its own deno, which need not be on PATH: use the pinned one.
deno=$repo/.tools/deno
[[ -x $deno ]] || deno=deno

"$deno" task compile
# Type-check the KVM tests here, into the module cache each sandbox uses: a cold check of
# tests/kvm/ took 75 s under the sandbox's emulated CPU and takes 2 s on the host; the sandbox's
# deno test then checks nothing. The arm64 Deno finds its check in .cache/deno-arm64 the same way.
DENO_DIR=.cache/deno "$deno" check tests/kvm/
DENO_DIR=.cache/deno-arm64 "$deno" check tests/kvm_arm64/

status_dir=$(mktemp -d /tmp/denovmm-test.XXXXXX)
trap 'rm -rf "$status_dir"' EXIT

# The host's tests. The arm64 sandbox's own tests boot it several times: they are the arm64
# lane's.
host_tests() {
  "$deno" test -A --ignore=tests/kvm,tests/kvm_arm64,tests/scripts/sandbox_arm64_test.ts tests/
}

# Every step runs, so that one failure does not hide another; the lane fails if any did.
arm64_lane() {
  local s=0
  "$deno" test -A tests/scripts/sandbox_arm64_test.ts || s=1
  # The arm64 executable first: tests/kvm_arm64/compiled_binary_test.ts boots the guest with it.
  # Its first run unpacks its payload (a gzip'd tar) into $HOME/.cache/denovmm/: 90-240 s under
  # the emulated CPU, a second here. So that first run happens here, natively, into a fresh home
  # the test then uses (the launcher's exec of the arm64 Deno fails on this host, after the
  # unpacking); the test still finds no Deno cache there and no Deno on PATH.
  bash scripts/compile.sh --target aarch64 || s=1
  local home=$repo/.cache/arm64-binary-home
  rm -rf "$home" && mkdir -p "$home"
  env -u XDG_CACHE_HOME HOME="$home" ./denovmm-aarch64 --version >/dev/null 2>&1 || true
  export DENOVMM_TEST_BINARY_HOME=$home
  DENOVMM_ARCH=arm64 DENOVMM_SANDBOX_TIMEOUT=1500 sh scripts/kvm_suite.sh tests/kvm_arm64/ || s=1
  return $s
}
start=$SECONDS
# stdin from /dev/null: with-kvm.sh saves piped stdin for its command, and only one lane may
# have it (the x86-64 one, as before there were two).
# Each status is written inside its pipeline, whose left side is a subshell of its own. The
# second lane runs niced: the x86-64 suite is the longer (measured 2026-12-01: 1553 s against
# the second lane's 1177 s, and 22 minutes alone), so it gets a core whenever both want one.
# The lane's subshell renices itself before it starts anything: its children inherit that.
{
  renice -n 10 -p "$BASHPID" >/dev/null || true
  {
    host_tests </dev/null 2>&1 && h=0 || h=$?
    echo "$h $((SECONDS - start))" >"$status_dir/host"
  } | sed -u 's/^/host| /'
  {
    arm64_lane </dev/null 2>&1 && a=0 || a=$?
    echo "$a $((SECONDS - start))" >"$status_dir/arm64"
  } | sed -u 's/^/arm64| /'
} &
second=$!

x86=0
DENOVMM_SANDBOX_TIMEOUT=1800 sh scripts/kvm_suite.sh tests/kvm/ || x86=$?
x86_time=$((SECONDS - start))
wait "$second" || true
read -r host_status host_time <"$status_dir/host" 2>/dev/null || host_status="no status"
read -r arm64_status arm64_time <"$status_dir/arm64" 2>/dev/null || arm64_status="no status"

verdict() { [[ $1 == 0 ]] && echo ok || echo "FAILED (status $1)"; }
echo "test: x86-64 KVM suite: $(verdict "$x86") in ${x86_time} s"
echo "test: host tests (lines marked 'host| '): $(verdict "$host_status"), done at ${host_time:-?} s"
echo "test: arm64 lane (sandbox tests, tests/kvm_arm64/; lines marked 'arm64| '): $(verdict "$arm64_status"), done at ${arm64_time:-?} s"
[[ $x86 == 0 && $host_status == 0 && $arm64_status == 0 ]]
