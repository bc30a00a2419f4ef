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

# Opening it read-write is the real test: the node may exist without KVM behind it.
if [[ ${DENOVMM_SANDBOX:-} != 1 ]] && { : <>/dev/kvm; } 2>/dev/null; then
  exec "$@"
fi
echo "denovmm: no usable /dev/kvm here, running in the KVM sandbox (QEMU TCG, slow)" >&2
exec "$repo/scripts/sandbox.sh" -- "$@"
