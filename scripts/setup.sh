#!/usr/bin/env bash
# Prepares a fresh Debian 12 or 13 machine (as root) for denovmm: QEMU and busybox
# for the KVM sandbox, Deno in .tools/, the default guest in .cache/guest/, the
# kernels the KVM tests boot (Debian's amd64, cloud-amd64 and rt-amd64 bzImages)
# in .cache/kernels/ and the sandbox initramfs in .cache/sandbox/. For arm64: Deno's
# arm64 build in .tools/arm64/, the arm64 sandbox's kernel, initramfs and chroot and the
# default arm64 guest in .cache/arm64/ (scripts/build_arm64.ts). Safe to run
# again: every step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
# npm installs the build for the machine it runs on.
case $(uname -m) in
aarch64) DENO_BIN=.tools/node_modules/@deno/linux-arm64-glibc/deno ;;
*) DENO_BIN=.tools/node_modules/@deno/linux-x64-glibc/deno ;;
esac
export DEBIAN_FRONTEND=noninteractive

step() { printf 'setup: %s\n' "$*"; }

# --- Debian packages: update the lists only when something is missing. gcc and the
# kernel headers let the tests check ffi/'s struct layouts against <linux/kvm.h>;
# bsdutils has script(1), which gives the console test a real terminal; xz-utils
# (priority standard, so not in every image) and zstd unpack the guest's vmlinux and the
# kernel's modules (Debian 12's kernel is xz-compressed, 13's zstd, with .ko.xz modules);
# iproute2 (not in a minimal image) sets up the network test's tap; acpica-tools has iasl, which
# the unit tests use to disassemble (and so check) the ACPI tables denovmm writes;
# qemu-system-arm has qemu-system-aarch64, the arm64 sandbox, and device-tree-compiler (dtc)
# decompiles the device trees an arm64 VMM writes. npm only to fetch Deno, when .tools/ does not
# have the pinned one (or its arm64 build) yet.
want=(qemu-system-x86 busybox-static gcc libc6-dev linux-libc-dev bsdutils xz-utils zstd iproute2
  acpica-tools qemu-system-arm device-tree-compiler)
have_deno() { [[ -x .tools/deno ]] && .tools/deno --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; }
# The arm64 build cannot run here to say its version: a file next to it does.
DENO_ARM64=.tools/arm64/deno
have_deno_arm64() { [[ -x $DENO_ARM64 && $(cat $DENO_ARM64.version 2>/dev/null) == "$DENO_VERSION" ]]; }
{ have_deno && have_deno_arm64; } || command -v npm >/dev/null || want+=(nodejs npm)
# mkfs.minix (the fault tests' crashable file system) is in util-linux on Debian 12 and in
# util-linux-extra on 13, which a minimal image lacks.
command -v mkfs.minix >/dev/null || want+=(util-linux-extra)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
else
  step "packages present (${want[*]})"
fi

# --- Deno, pinned, from npm (the official binary ships as @deno/linux-x64-glibc;
# npm may skip its postinstall script, so we link the binary ourselves).
if have_deno; then
  step "deno $DENO_VERSION present"
else
  step "npm install deno@$DENO_VERSION into .tools/"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --silent "deno@$DENO_VERSION" </dev/null >/dev/null
  ln -sfn "${DENO_BIN#.tools/}" .tools/deno  # relative: the repo may move
  .tools/deno --version | head -1 | grep -q "^deno $DENO_VERSION " ||
    { echo "setup: .tools/deno does not run as deno $DENO_VERSION" >&2; exit 1; }
fi

# --- Deno for arm64 Linux, the same version, for the arm64 sandbox: npm would refuse to install
# a package for another CPU, so `npm pack` fetches its tarball and tar unpacks the binary.
if have_deno_arm64; then
  step "deno $DENO_VERSION for arm64 present"
else
  step "npm pack @deno/linux-arm64-glibc@$DENO_VERSION into .tools/arm64/"
  mkdir -p .tools/arm64
  tgz=$(cd .tools/arm64 && npm pack --silent "@deno/linux-arm64-glibc@$DENO_VERSION" </dev/null)
  tar -xzf ".tools/arm64/$tgz" -C .tools/arm64 --strip-components=1 package/deno
  rm -f ".tools/arm64/$tgz"
  # An ELF (7f 45 4c 46) for e_machine 183, EM_AARCH64 (b7 00 at offset 18, little-endian).
  [[ $(od -An -tx1 -j0 -N4 $DENO_ARM64 | tr -d ' ') == 7f454c46 &&
    $(od -An -tx1 -j18 -N2 $DENO_ARM64 | tr -d ' ') == b700 ]] ||
    { echo "setup: $DENO_ARM64 is not an aarch64 ELF" >&2; exit 1; }
  chmod +x $DENO_ARM64
  echo "$DENO_VERSION" >$DENO_ARM64.version
fi

# --- Guest kernel + initramfs, the KVM tests' kernels, and the sandbox initramfs.
# build_guest.ts decides itself whether its output is up to date (and says so in
# one line per output).
for mode in guest sandbox; do
  .tools/deno run -A scripts/build_guest.ts "$mode" </dev/null
done
# The arm64 sandbox (kernel, initramfs, chroot) and the default arm64 guest, from Debian's arm64
# packages (fetched by the script itself; the host's dpkg gets no foreign architecture).
.tools/deno run -A scripts/build_arm64.ts </dev/null
step "done"
