#!/usr/bin/env bash
# Runs a command where /dev/kvm exists, on a host where it does not: inside a
# QEMU software-CPU (TCG) VM whose Debian kernel loads kvm-amd, chrooted into
# the host's own root (9p, read-only) with the current git top (or cwd) shared
# writable at the same path. See /work/shared/KVM-ENV.md for the measurements.
#
#   scripts/sandbox.sh [--arch x86_64|arm64] [--vfio] [--mem SIZE] [--cpus N] [--timeout S] -- CMD [ARGS...]
#
# --arch arm64 (or DENOVMM_SANDBOX_ARCH=arm64): an arm64 KVM instead, on QEMU's `virt` machine
# with its virtualisation extensions (EL2, VHE), a GICv3 with an ITS and an SMMUv3, booting
# Debian 13's 16 KiB-page kernel (.cache/arm64/sandbox/, scripts/build_arm64.ts). The host's
# root is of no use to arm64 code, so the command runs chrooted into .cache/arm64/root (arm64
# libc and busybox), again with the git top at its own path, `deno` being .tools/arm64/deno and
# DENO_DIR .cache/deno-arm64 (a cache of its own: two VMs must not share one SQLite file over
# 9p). --vfio passes virtio-net (00:10.0), e1000e (00:11.0) and nvme (00:12.0), each in its own
# IOMMU group behind the SMMUv3, exported as DENOVMM_VFIO_VIRTIO_NET, _E1000E and _NVME.
#
# --timeout S (or DENOVMM_SANDBOX_TIMEOUT=S): a command still running after S seconds is
# stopped: the sandbox's own init prints what each of its processes is doing (and the kernel's
# blocked-task and per-CPU backtraces), then ends the VM with status 124. If the sandbox's
# kernel is too far gone for that, the host stops QEMU a minute later. CI runs under a hard
# limit; a hung guest must fail with a reason instead of running into it.
#
# The sandbox's init touches run/heartbeat every 5 s. A kernel that stops doing so for 30 s
# (QEMU's TCG can lose an interrupt: see watch_heartbeat) gets an NMI and a key press through
# the monitor, which can wake it (arm64: QEMU's virt machine has neither; it just waits). 45 s
# more without a heartbeat and QEMU's view of its CPU and local APIC is printed and the VM
# stopped. (DENOVMM_SANDBOX_STALE_S=S changes the 30 s; the stop follows S + 15 s after the kick.)
# DENOVMM_SANDBOX_APPEND adds to the sandbox kernel's command line, module parameters too
# (kvm_amd.vgif=0, say: the init hands name.param=value to insmod as modprobe would).
#
# Exit status: CMD's; 124 when it timed out; 125 when the VM ended without reporting one (its
# kernel panicked or stopped).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# One CPU unless asked (--cpus, DENOVMM_SANDBOX_CPUS): with two, QEMU's TCG sometimes delivers
# an interrupt (a reschedule IPI from the other CPU) right after VMRUN returns, before KVM has
# restored the host's GS base; the sandbox's kernel then faults on every per-CPU access until it
# runs off its stack and panics ("TASK stack guard page was hit" in __svm_vcpu_run). Seen in
# about 1 of 35 two-vCPU guest boots with heavy console output, and in CI's network test.
# With one CPU there is no cross-CPU interrupt; guests with several vCPUs still run (their
# threads take turns). The benchmark asks for two.
mem="" cpus=${DENOVMM_SANDBOX_CPUS:-1} vfio=0 timeout=${DENOVMM_SANDBOX_TIMEOUT:-0}
arch=${DENOVMM_SANDBOX_ARCH:-x86_64}
while (($#)); do
  case $1 in
  --arch) arch=$2 && shift ;;
  --vfio) vfio=1 ;;
  --mem) mem=$2 && shift ;;
  --cpus) cpus=$2 && shift ;;
  --timeout) timeout=$2 && shift ;;
  --) shift && break ;;
  *) break ;;
  esac
  shift
done
(($#)) || { echo "usage: sandbox.sh [--arch x86_64|arm64] [--vfio] [--mem SIZE] [--cpus N] [--timeout S] -- CMD [ARGS...]" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ ]] || { echo "sandbox: --timeout takes whole seconds, not '$timeout'" >&2; exit 2; }
case $arch in
x86_64 | amd64 | x86) arch=x86_64 ;;
arm64 | aarch64) arch=arm64 ;;
*) echo "sandbox: --arch is x86_64 or arm64, not '$arch'" >&2 && exit 2 ;;
esac

if [[ $arch == arm64 ]]; then
  # 3 GiB: Deno and a nested guest of up to 1 GiB, with room for the page cache of the shares.
  mem=${mem:-3G} console=ttyAMA0 rootfs=$repo/.cache/arm64/root
  kernel=$repo/.cache/arm64/sandbox/Image initrd=$repo/.cache/arm64/sandbox/initramfs.cpio.gz
  [[ -d $rootfs/usr && -x $repo/.tools/arm64/deno ]] ||
    { echo "sandbox: run scripts/setup.sh first (no $rootfs or .tools/arm64/deno)" >&2; exit 2; }
  vfio_bdfs="0000:00:10.0 0000:00:11.0 0000:00:12.0"
else
  mem=${mem:-6G} console=ttyS0 rootfs=/
  kernel=$repo/.cache/guest/vmlinuz initrd=$repo/.cache/sandbox/initramfs.cpio.gz
  vfio_bdfs="0000:00:10.0 0000:00:11.0"
fi
[[ -f $kernel && -f $initrd ]] || { echo "sandbox: run scripts/setup.sh first (no $initrd)" >&2; exit 2; }

# POSIX single quotes, which the chroot's /bin/sh (dash) reads back verbatim.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# The run share: what /init needs to know, the command, its stdin, its status.
run=$(mktemp -d /tmp/denovmm-sandbox.XXXXXX)
trap 'rm -rf "$run"' EXIT
work=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
[[ $work == / ]] && work=""
{
  echo "ARCH=$arch CONSOLE=$console WORK=$(quote "$work") VFIO=$vfio TIMEOUT=$timeout"
  echo "VFIO_BDFS='$vfio_bdfs'"
  if [[ -t 0 ]]; then echo "TTY=1" && stty size | { read -r r c && ((r > 0)) && echo "ROWS=$r COLS=$c" || true; }; fi
  if [[ -t 1 ]]; then echo "OPOST=1"; fi
} >"$run/config"
{
  for name in PATH HOME CI TERM DENO_DIR NO_COLOR $(compgen -e | grep '^DENOVMM_' || true); do
    [[ -v $name ]] && echo "export $name=$(quote "${!name}")"
  done
  if [[ $arch == arm64 ]]; then
    # The host's PATH names x86-64 programs; the chroot has busybox and the arm64 Deno. A
    # DENO_DIR outside the work share would not exist in there.
    echo "export PATH=$(quote "$work/.tools/arm64:/usr/local/bin:/usr/bin:/usr/sbin")"
    deno_dir=${DENO_DIR:-}
    [[ -n $work && $deno_dir == "$work"/* ]] || deno_dir=$work/.cache/deno-arm64
    echo "export DENO_DIR=$(quote "$deno_dir")"
    # The pinned x86-64 Deno, as with-kvm.sh and `deno task` name it, becomes its arm64 build.
    case $1 in "$repo/.tools/deno" | .tools/deno) set -- "$repo/.tools/arm64/deno" "${@:2}" ;; esac
  fi
  if ((vfio)); then
    echo "export DENOVMM_VFIO_VIRTIO_NET=0000:00:10.0 DENOVMM_VFIO_E1000E=0000:00:11.0"
    [[ $arch == arm64 ]] && echo "export DENOVMM_VFIO_NVME=0000:00:12.0"
  fi
  echo "cd $(quote "$PWD") || exit 125"
  printf 'exec'
  for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
  echo
} >"$run/cmd.sh"
# Without a TTY, the command reads a copy of our stdin and so sees its EOF.
[[ -t 0 ]] || cat >"$run/stdin" 2>/dev/null || true
touch "$run/stdin"

# loglevel=3: quiet, except what is critical (a panic, a soft lockup). Errors (an RCU stall, a
# hung task) stay in the kernel log, which --timeout prints; live they would be drowned in
# KVM's complaints about the nested guests' performance-counter MSRs.
append="console=$console quiet loglevel=3 panic=-1"
# rodata=off: the arm64 kernel's W+X page-table walk after marking its text read-only took about
# 1 s of an 8-9 s boot under TCG; the sandbox's own kernel needs no such hardening.
[[ $arch == arm64 ]] && append+=" rodata=off"
args=()
if [[ $arch == arm64 ]]; then
  # virtualization=on: EL2 for the sandbox's kernel, so that KVM loads (with VHE, as -cpu max
  # has it). The SMMUv3 puts every PCI device in an IOMMU group of its own (checked in
  # /sys/kernel/iommu_groups) and the GICv3's ITS gives them MSIs. Unlike the x86 sandbox's
  # IOMMU they are there with or without --vfio: one machine, whatever the command.
  args+=(-machine virt,virtualization=on,gic-version=3,iommu=smmuv3)
  if ((vfio)); then
    # Fixed slots, or the 9p devices, added later, would take them. virtio-net: MSI-X table and
    # PBA in one 4 KiB BAR; e1000e: table at 0 and PBA at 0x2000 of its 16 KiB BAR 3; nvme:
    # both inside its register BAR 0. The nvme disk is a sparse file that dies with the run.
    truncate -s 64M "$run/nvme.img"
    args+=(
      -netdev user,id=n0 -device virtio-net-pci,netdev=n0,vectors=3,disable-legacy=on,iommu_platform=on,addr=10.0
      -netdev user,id=n1 -device e1000e,netdev=n1,addr=11.0
      -drive "file=$run/nvme.img,if=none,id=nvm,format=raw" -device nvme,drive=nvm,serial=denovmm-nvme,addr=12.0
    )
  fi
elif ((vfio)); then
  # The IOMMU comes before every PCI device so they all sit behind it; addresses from 10.0 up,
  # because q35 puts the 9p devices in the low slots.
  args+=(
    -machine q35 -device intel-iommu,intremap=off
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,vectors=3,disable-legacy=on,iommu_platform=on,ats=on,addr=10.0
    -netdev user,id=n1 -device e1000e,netdev=n1,addr=11.0
  )
  append+=" intel_iommu=on iommu=pt"
fi
# tb-size: TCG's translation buffer, 128 MiB instead of QEMU's 1 GiB. Every VM the tests start
# brings new code to translate (a fresh guest kernel image, V8's machine code), so the buffer
# fills within half a minute either way; the smaller one is flushed more often but stays in the
# host's caches. Measured (8 boots of the default guest under denovmm, two sandbox CPUs): guest
# uptime at /init 0.94-1.11 s against 1.14-2.41 s, denovmm's wall time to /init 3.6-5.0 s against
# 4.0-5.8 s; 64 MiB was slower again. DENOVMM_SANDBOX_TB_MB=N sets another size.
args+=(
  -accel "tcg,thread=multi,tb-size=${DENOVMM_SANDBOX_TB_MB:-128}" -cpu max -smp "$cpus" -m "$mem"
  -display none -vga none -monitor none -no-reboot -nodefaults
  -kernel "$kernel" -initrd "$initrd"
  -chardev stdio,id=con,signal=off -serial chardev:con
  -virtfs "local,path=$run,mount_tag=run,security_model=none"
  -virtfs "local,path=$rootfs,mount_tag=root,security_model=none,readonly=on,multidevs=remap"
)
[[ -n $work ]] && args+=(-virtfs "local,path=$work,mount_tag=work,security_model=none")
[[ ${DENOVMM_SANDBOX_DEBUG:-} == 1 ]] && append=${append/quiet loglevel=3/}
# More for the sandbox's kernel and its modules' parameters (module.param=value, which its init
# passes to insmod), e.g. to try a kvm_amd setting.
append+=${DENOVMM_SANDBOX_APPEND:+ $DENOVMM_SANDBOX_APPEND}

# The monitor, on a pipe pair (QEMU opens both ends read-write, and its few replies fit in the
# pipe), for the watcher's NMI; QEMU's pid for the watcher.
mkfifo "$run/monitor.in" "$run/monitor.out"
args+=(-chardev "pipe,id=mon,path=$run/monitor" -mon chardev=mon,mode=readline -pidfile "$run/qemu.pid")

# Runs beside QEMU (which keeps the terminal in the foreground): see the header.
watch_heartbeat() {
  local kicked=0 now age pid stale=${DENOVMM_SANDBOX_STALE_S:-30}
  while sleep 5; do
    pid=$(cat "$run/qemu.pid" 2>/dev/null) || continue
    kill -0 "$pid" 2>/dev/null || return 0
    [[ -e $run/heartbeat ]] || continue # still booting
    now=$(date +%s)
    age=$((now - $(stat -c %Y "$run/heartbeat")))
    if ((age < stale)); then
      ((kicked == 0)) || echo "sandbox: the VM's heartbeat is back, $((now - kicked)) s after the kick" >&2
      kicked=0
    elif ((kicked == 0)); then
      if [[ $arch == arm64 ]]; then
        # QEMU's virt machine answers `nmi` with "not supported": there is nothing to wake it with.
        echo "sandbox: no heartbeat from the VM for $age s (arm64: no NMI to send)" >&2
      else
        # A stopped x86 sandbox (QEMU's monitor, below, 2026-12-03) was running with interrupts
        # on and its timer's vector pending in the local APIC's IRR, above the processor
        # priority, never delivered: QEMU had lost its note that the APIC wants the CPU. Any
        # new interrupt makes it look at the APIC again; a key press on the i8042 (IRQ 1) is one
        # nothing in the sandbox reads.
        echo "sandbox: no heartbeat from the VM for $age s; sending it an NMI and a key press" >&2
        printf 'nmi\nsendkey shift\n' >"$run/monitor.in"
      fi
      kicked=$now
    elif ((now - kicked > stale + 15)); then
      echo "sandbox: the VM's kernel stopped (no heartbeat for $age s$([[ $arch == arm64 ]] || echo ", an NMI did not help"))" >&2
      # QEMU's view of the stopped CPU, for whoever looks into these deaths: is it halted, with
      # interrupts on, and is its local APIC's timer armed, an interrupt pending (IRR) or in
      # service (ISR)? The replies go to the monitor's pipe, which nothing else reads.
      {
        echo "info registers"
        [[ $arch == arm64 ]] || echo "info lapic"
      } >"$run/monitor.in"
      sleep 2
      echo "sandbox: QEMU's monitor on the stopped VM:" >&2
      # Less the vector, x87 and SVE registers (arm64's alone run to hundreds of lines).
      timeout 2 cat "$run/monitor.out" | tr -d '\r' | sed -E 's/^\(qemu\) ?//' |
        grep -vE '^(info |nmi$|sendkey |YMM|FPR|XMM|Z[0-9]|P[0-9]|FFR| +\[|$)' | head -n 80 >&2 || true
      kill "$pid"
      sleep 10
      kill -KILL "$pid" 2>/dev/null
      return 0
    fi
  done
}
watch_heartbeat &
watcher=$!
trap 'kill $watcher 2>/dev/null; rm -rf "$run"' EXIT

# The host's backstop, for a sandbox kernel that cannot even run its own watchdog.
hard=()
((timeout)) && hard=(timeout --kill-after=10 $((timeout + 60)))
qemu_status=0
qemu=qemu-system-x86_64
[[ $arch == arm64 ]] && qemu=qemu-system-aarch64
if [[ -t 0 ]]; then
  "${hard[@]}" "$qemu" "${args[@]}" -append "$append" || qemu_status=$?
else
  "${hard[@]}" "$qemu" "${args[@]}" -append "$append" </dev/null || qemu_status=$?
fi
if ((timeout)) && ((qemu_status == 124 || qemu_status == 137)); then
  echo "sandbox: the VM stopped responding; QEMU was stopped $((timeout + 60)) s after it started" >&2
  exit 124
fi

if [[ -s $run/status ]]; then
  exit "$(cat "$run/status")"
fi
echo "sandbox: the VM ended without the command's exit status (DENOVMM_SANDBOX_DEBUG=1 shows the kernel log)" >&2
exit 125
