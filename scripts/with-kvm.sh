#!/usr/bin/env bash
# Runs CMD with a usable /dev/kvm: directly when this host has one, otherwise
# (or with DENOVMM_SANDBOX=1) inside the KVM sandbox (scripts/sandbox.sh).
#
#   scripts/with-kvm.sh CMD [ARGS...]     e.g. with-kvm.sh deno test -A tests/kvm/
#   scripts/with-kvm.sh --where           prints `host`, or `sandbox: ` and why, and runs nothing
#
# DENOVMM_ARCH=arm64 (or --arch arm64 first): an arm64 KVM instead, the host's own on an arm64
# host with a usable /dev/kvm, otherwise the arm64 sandbox (sandbox.sh --arch arm64), where
# `deno` is Deno's arm64 build and DENO_DIR .cache/deno-arm64.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
arch=${DENOVMM_ARCH:-x86_64}
if [[ ${1:-} == --arch ]]; then arch=${2:-} && shift 2; fi
where=""
if [[ ${1:-} == --where ]]; then where=1 && shift; fi
case $arch in
x86_64 | amd64 | x86) arch=x86_64 ;;
arm64 | aarch64) arch=arm64 ;;
*) echo "with-kvm: DENOVMM_ARCH is x86_64 or arm64, not '$arch'" >&2 && exit 2 ;;
esac
((where || $#)) || {
  echo "usage: [DENOVMM_ARCH=arm64] with-kvm.sh [--arch x86_64|arm64] (--where | CMD [ARGS...])" >&2
  exit 2
}
host_arch=$(uname -m)
[[ $host_arch == aarch64 ]] && host_arch=arm64

# `deno task` calls us with a bare `deno`; use the project's pinned one when
# there is none on PATH (the sandbox sees the same path through its 9p root).
if [[ ${1:-} == deno ]] && ! command -v deno >/dev/null; then
  set -- "$repo/.tools/deno" "${@:2}"
fi
# One module cache, inside the writable share, for the host and the sandbox (one per architecture
# of sandbox: the two may run at once, and SQLite's locks do not reach across two VMs' 9p mounts).
if [[ $arch == arm64 ]]; then
  export DENO_DIR=${DENO_DIR:-$repo/.cache/deno-arm64}
else
  export DENO_DIR=${DENO_DIR:-$repo/.cache/deno}
fi

# Usable means: it is a character device that opens read-write (the node may exist without KVM
# behind it; and bash's `<>` creates a missing file, so the type is checked first) and the CPU
# has hardware virtualisation (vmx or svm). Some cloud VMs offer a /dev/kvm without either
# (kvm_pvm, a paravirtual KVM): it runs tiny guests but an unmodified Linux guest crawls
# there, so it counts as unusable. DENOVMM_SANDBOX=1 forces the sandbox, =0 forbids it.
# DENOVMM_KVM_DEVICE names another device node, as for denovmm itself (src/machine/vm.ts).
kvm=${DENOVMM_KVM_DEVICE:-/dev/kvm}
why=""
if [[ $arch != "$host_arch" ]]; then
  why="this host is $host_arch, not $arch"
elif [[ ! -c $kvm ]]; then
  why="no $kvm here"
elif ! { : <>"$kvm"; } 2>/dev/null; then
  why="$kvm here does not open read-write"
elif [[ $arch == x86_64 ]] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  why="$kvm here has no hardware virtualisation behind it (no vmx/svm)"
fi
case ${DENOVMM_SANDBOX:-} in
  1) why=${why:-"DENOVMM_SANDBOX=1"} ;;
  0) why="" ;;
esac
if [[ -n $where ]]; then
  echo "${why:+sandbox: }${why:-host}"
  exit 0
fi
[[ -z $why ]] && exec "$@"
echo "denovmm: $why, running in the $arch KVM sandbox (QEMU TCG, slow)" >&2
# --vfio: the same boot also carries the VFIO-bound devices the passthrough tests use (two NICs;
# on arm64 an NVMe controller too).
#
# Status 125 means the sandbox's own kernel died under CMD (panicked, or stopped for good; see
# sandbox.sh): a fault of QEMU's emulation of nested virtualisation, not anything CMD did or
# reported. CMD then runs again, in a fresh sandbox, on the same input: up to
# DENOVMM_SANDBOX_RETRIES times (default 3; CI saw two deaths in one 17-minute test suite). A
# command that keeps its progress in the work share resumes there (scripts/kvm_suite.sh,
# scripts/bench/checkpoint.ts). Every status of CMD's own, and the last death, stands.
retries=${DENOVMM_SANDBOX_RETRIES:-3}
[[ $retries =~ ^[0-9]+$ ]] || { echo "with-kvm: DENOVMM_SANDBOX_RETRIES is a count, not '$retries'" >&2 && exit 2; }
# A terminal is read live; piped or redirected input is saved, so a second run gets it again.
input=""
if [[ ! -t 0 ]]; then
  input=$(mktemp /tmp/denovmm-input.XXXXXX)
  trap 'rm -f "$input"' EXIT
  cat >"$input"
fi
attempt() {
  if [[ -n $input ]]; then
    "$repo/scripts/sandbox.sh" --arch "$arch" --vfio -- "$@" <"$input"
  else
    "$repo/scripts/sandbox.sh" --arch "$arch" --vfio -- "$@"
  fi
}
for ((try = 1; ; try++)); do
  attempt "$@" && exit 0 || status=$?
  ((status == 125 && try <= retries)) || exit "$status"
  echo "denovmm: the sandbox's kernel died (not a result of the command); running it once more" \
    "(retry $try of $retries)" >&2
done
