#!/usr/bin/env bash
# `deno task bench [--arch x86_64|arm64] [ARGS...]`: scripts/bench.ts in the KVM sandbox of the
# architecture (scripts/with-kvm.sh: the host's own /dev/kvm where it is usable), with two CPUs
# (DENOVMM_SANDBOX_CPUS overrides) so that each VMM's threads can run side by side.
#
# The host first builds what is measured (bench.ts --prepare-only): the guest program, the bench
# initramfs and the executable (compile.sh, whose bundler may need the npm registry, which the
# sandbox cannot reach); the sandbox then only measures (--prepared). arm64: the guest program is
# built with the cross compiler (installed on demand), as the arm64 sandbox is a chroot with no
# compiler and no bash.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
arch=x86_64
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
  --arch) arch=${args[i + 1]:-} ;;
  --arch=*) arch=${args[i]#--arch=} ;;
  esac
done
export DENOVMM_SANDBOX_CPUS=${DENOVMM_SANDBOX_CPUS:-2}
# This run's id: when the sandbox's kernel dies and with-kvm.sh starts the run once more, the
# sections the first try finished are kept (scripts/bench/checkpoint.ts).
export DENOVMM_BENCH_RUN=${DENOVMM_BENCH_RUN:-$(date +%s)-$$}
deno=$(command -v deno || echo "$repo/.tools/deno")
case $arch in
x86_64 | amd64 | x86)
  "$deno" run -A scripts/bench.ts "$@" --prepare-only
  exec bash scripts/with-kvm.sh deno run -A scripts/bench.ts "$@" --prepared
  ;;
arm64 | aarch64)
  "$deno" run -A scripts/bench.ts "$@" --prepare-only
  DENOVMM_ARCH=arm64 exec bash scripts/with-kvm.sh deno run -A scripts/bench.ts "$@" --prepared
  ;;
*)
  echo "bench: --arch is x86_64 or arm64, not '$arch'" >&2
  exit 2
  ;;
esac
