#!/bin/sh
# Runs a directory of KVM tests (tests/kvm/ or tests/kvm_arm64/) where KVM is (with-kvm.sh), one
# test file at a time in one sandbox, and resumes after a death of the sandbox's kernel instead of
# starting over.
#
#   scripts/kvm_suite.sh DIR            DENOVMM_ARCH=arm64 for the arm64 suite
#
# Why: QEMU's emulation of nested virtualisation sometimes stops the sandbox's kernel for good
# (sandbox.sh). CI saw that twice in one run of the 17-minute x86-64 suite (2026-12-02: before the
# first test, then in tests/kvm/linux_guest_test.ts at 1013 s), and with-kvm.sh's one retry of
# the whole suite could not cover the second. Here each file's status goes to a file in the work
# share as soon as the file is done; the next sandbox runs only the files with no status yet, the
# one that was running when the kernel died among them, for as long as sandboxes finish files (see
# below). A file whose tests fail is not run again: only the sandbox's death is. On 2026-12-03 the
# sandbox died three times in the first 12 minutes of a suite, each time while the host was loaded
# by other work (a compile, a bench's build).
#
# The files run with --no-check: scripts/test.sh type-checks the whole directory on the host
# first (into the DENO_DIR the sandbox uses), and a check of one file's graph would not find that
# check in the cache (75 s a directory under the emulated CPU). Run alone, this checks on the host
# itself before the sandbox boots.
#
# Exit status: 0 when every file passed; 1 when one failed; 124 when a sandbox timed out; 125 when
# the sandbox's kernel died too often (below).
set -eu

if [ "${1:-}" = --in ]; then
  # Inside the sandbox (POSIX sh: the arm64 chroot has busybox's). $2: the status file.
  state=$2 && shift 2
  repo=$(cd "$(dirname "$0")/.." && pwd)
  deno=$(command -v deno || echo "$repo/.tools/deno")
  touch "$state"
  for f in "$@"; do
    if grep -qF " $f" "$state"; then
      echo "kvm suite: $f done in an earlier sandbox ($(grep -F " $f" "$state" | cut -d' ' -f1 | sed 's/^0$/ok/;s/^[1-9].*/failed/'))"
      continue
    fi
    s=0
    "$deno" test -A --no-check "$f" || s=$?
    echo "$s $f" >>"$state"
    sync
  done
  failed=$(grep -v '^0 ' "$state" | cut -d' ' -f2- | tr '\n' ' ')
  echo "kvm suite: $# files, $(grep -c '^0 ' "$state") passed${failed:+, failed: $failed}"
  [ -z "$failed" ]
  exit
fi

[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: [DENOVMM_ARCH=arm64] kvm_suite.sh DIR" >&2 && exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
dir=${1%/}
deno=$repo/.tools/deno
[ -x "$deno" ] || deno=deno
files=$(find "$dir" -name '*_test.ts' | sort)
[ -n "$files" ] || { echo "kvm suite: no *_test.ts in $dir" >&2 && exit 2; }
# The check that the sandbox's runs skip (test.sh has done it already: then this is a cache hit).
if [ "${DENOVMM_ARCH:-x86_64}" = arm64 ] || [ "${DENOVMM_ARCH:-}" = aarch64 ]; then
  DENO_DIR=${DENO_DIR:-.cache/deno-arm64} "$deno" check "$dir/"
else
  DENO_DIR=${DENO_DIR:-.cache/deno} "$deno" check "$dir/"
fi
mkdir -p .cache/kvm-suite
state=$(mktemp "$repo/.cache/kvm-suite/status.XXXXXX")
trap 'rm -f "$state"' EXIT
n=$(echo "$files" | wc -l)
# A death costs the file it stopped; the suite goes on while the sandboxes finish files. Three
# deaths in a row with no file finished (a file that kills the sandbox's kernel every time), or
# eight in all, end it with 125.
deaths=0 stalls=0
while :; do
  before=$(wc -l <"$state")
  s=0
  # shellcheck disable=SC2086 # the file names have no spaces (find above, our own tree)
  DENOVMM_SANDBOX_RETRIES=0 bash scripts/with-kvm.sh sh scripts/kvm_suite.sh --in "$state" $files \
    </dev/null || s=$?
  [ "$s" -eq 125 ] || exit "$s"
  deaths=$((deaths + 1))
  if [ "$(wc -l <"$state")" -gt "$before" ]; then stalls=0; else stalls=$((stalls + 1)); fi
  if [ "$stalls" -ge 3 ] || [ "$deaths" -ge 8 ]; then
    echo "kvm suite: the sandbox's kernel died $deaths times, the last $stalls with no file finished; giving up" >&2
    exit 125
  fi
  echo "kvm suite: the sandbox's kernel died (not a result of the tests; death $deaths); $(wc -l <"$state") of $n files done, going on in a new sandbox" >&2
done
