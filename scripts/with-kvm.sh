#!/usr/bin/env bash
# Runs CMD with a usable /dev/kvm: directly when this host has one, otherwise
# (or with DENOVMM_SANDBOX=1) inside the KVM sandbox (scripts/sandbox.sh).
#
#   scripts/with-kvm.sh CMD [ARGS...]     e.g. with-kvm.sh deno test -A tests/kvm/
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
(($#)) || { echo "usage: with-kvm.sh CMD [ARGS...]" >&2; exit 2; }

# `deno task` calls us with a bare `deno`; use the project's pinned one when
# there is none on PATH (the sandbox sees the same path through its 9p root).
if [[ $1 == deno ]] && ! command -v deno >/dev/null; then
  set -- "$repo/.tools/deno" "${@:2}"
fi
# One module cache, inside the writable share, for the host and the sandbox.
export DENO_DIR=${DENO_DIR:-$repo/.cache/deno}

# Usable means: it opens read-write (the node may exist without KVM behind it) and the CPU
# has hardware virtualisation (vmx or svm). Some cloud VMs offer a /dev/kvm without either
# (kvm_pvm, a paravirtual KVM): it runs tiny guests but an unmodified Linux guest crawls
# there, so it counts as unusable. DENOVMM_SANDBOX=1 forces the sandbox, =0 forbids it.
why=""
if ! { : <>/dev/kvm; } 2>/dev/null; then
  why="no usable /dev/kvm here"
elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  why="/dev/kvm here has no hardware virtualisation behind it (no vmx/svm)"
fi
case ${DENOVMM_SANDBOX:-} in
  1) why=${why:-"DENOVMM_SANDBOX=1"} ;;
  0) why="" ;;
esac
[[ -z $why ]] && exec "$@"
echo "denovmm: $why, running in the KVM sandbox (QEMU TCG, slow)" >&2
# --vfio: the same boot also carries the two VFIO-bound NICs the passthrough tests use.
#
# Status 125 means the sandbox's own kernel died under CMD (panicked, or stopped for good; see
# sandbox.sh): a fault of QEMU's emulation of nested virtualisation, not anything CMD did or
# reported. CMD then runs once more, in a fresh sandbox, on the same input. A second death, and
# every status of CMD's own, stands.
# A terminal is read live; piped or redirected input is saved, so a second run gets it again.
input=""
if [[ ! -t 0 ]]; then
  input=$(mktemp /tmp/denovmm-input.XXXXXX)
  trap 'rm -f "$input"' EXIT
  cat >"$input"
fi
attempt() {
  if [[ -n $input ]]; then
    "$repo/scripts/sandbox.sh" --vfio -- "$@" <"$input"
  else
    "$repo/scripts/sandbox.sh" --vfio -- "$@"
  fi
}
attempt "$@" && exit 0 || status=$?
((status == 125)) || exit "$status"
echo "denovmm: the sandbox's kernel died (not a result of the command); running it once more" >&2
attempt "$@"
