#!/bin/sh
# /init of the KVM sandbox (scripts/sandbox.sh), x86-64 and arm64 alike: loads the modules
# (kvm-amd on x86-64; arm64's KVM is built in), chroots into the root share (9p, read-only:
# the host's own root on x86-64, .cache/arm64/root on arm64) with the work folder shared
# writable, runs the command that sandbox.sh left in the run share, and writes its exit status
# back there. See shared KVM-ENV.md for why each piece is needed.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
fail() {
  echo "sandbox: $*" >&2
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev


# The emulated IOMMU runs without interrupt remapping (intremap=off boots faster under TCG),
# so type1 must be told to accept devices whose MSIs are not isolated: fine in a sandbox.
# A module's parameters on the kernel command line (name.param=value), as modprobe would pass
# them: sandbox.sh sets kvm_amd's there.
while read -r m; do
  args=""
  case $m in *vfio_iommu_type1.ko) args="allow_unsafe_interrupts=1" ;; esac
  name=$(basename "$m" | sed 's/\.ko.*//' | tr - _)
  for w in $(cat /proc/cmdline); do
    case $w in "$name".*=*) args="$args ${w#"$name".}" ;; esac
  done
  insmod "/lib/modules/$m" $args 2>/dev/null || echo "sandbox: insmod $m failed" >&2
done </etc/modules.order

# The run share: config (written by sandbox.sh), cmd.sh, stdin, status.
mkdir -p /run/sandbox
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 run /run/sandbox || fail "no run share"
. /run/sandbox/config # ARCH, CONSOLE, WORK, TTY, OPOST, ROWS, COLS, VFIO, VFIO_BDFS

# The root share, read-only; writable tmpfs where programs expect to write.
H=/host
mkdir -p $H
if [ "$ARCH" = arm64 ]; then
  # arm64: a small tree of arm64 libraries and busybox, not a whole root. The chroot's top is
  # a tmpfs, so that the mount points below (the work folder's path) can be made; its /usr and
  # /etc are the share's.
  mkdir -p /sysroot
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root /sysroot ||
    fail "cannot mount the arm64 root share"
  mount -t tmpfs tmpfs $H
  for d in usr etc; do mkdir $H/$d && mount --bind /sysroot/$d $H/$d; done
  for l in bin sbin lib; do ln -s usr/$l $H/$l; done
  mkdir -p $H/tmp $H/root $H/run $H/proc $H/sys $H/dev
else
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root $H ||
    fail "cannot mount the host's root"
  for d in tmp root run; do mount -t tmpfs tmpfs $H/$d; done
fi
chmod 1777 $H/tmp
mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t devtmpfs devtmpfs $H/dev
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts devpts $H/dev/pts
mount -t tmpfs tmpfs $H/dev/shm
# The run share again inside the chroot; then the work folder, writable, at its own path.
mkdir -p $H/run/sandbox
mount --bind /run/sandbox $H/run/sandbox
if [ -n "$WORK" ]; then
  mkdir -p "$H$WORK"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=mmap work "$H$WORK" ||
    fail "cannot mount the work share at $WORK"
fi

if [ "$ARCH" = arm64 ]; then
  [ -c /dev/kvm ] || fail "no /dev/kvm in the sandbox (does QEMU's -M virt have virtualization=on?)"
else
  [ -c /dev/kvm ] || fail "no /dev/kvm in the sandbox (kvm_amd did not load; does QEMU's -cpu max offer svm?)"
fi

# --vfio: hand the devices to vfio-pci; sandbox.sh exports their BDFs to the command.
if [ "$VFIO" = 1 ]; then
  for bdf in $VFIO_BDFS; do
    dev=/sys/bus/pci/devices/$bdf
    [ -e $dev ] || fail "no PCI device $bdf"
    [ -e $dev/driver ] && echo $bdf >$dev/driver/unbind
    echo vfio-pci >$dev/driver_override
    echo $bdf >/sys/bus/pci/drivers_probe
  done
fi

# The console: no \r\n when the host's stdout is not a terminal, no echo unless
# the host's stdin is one, and the host terminal's size.
tty=/dev/${CONSOLE:-ttyS0}
stty -F $tty sane
[ "$OPOST" = 1 ] || stty -F $tty -opost
[ "$TTY" = 1 ] || stty -F $tty -echo
[ -n "$ROWS" ] && stty -F $tty rows "$ROWS" cols "$COLS"

# A sign of life for sandbox.sh, which wakes or stops a kernel that stops giving one.
(while :; do : >/run/sandbox/heartbeat; sleep 5; done) &

# --timeout: past it, say what every process is doing, then end the VM with status 124.
# The chroot's /proc is the same as ours, so this sees the command's processes.
if [ "${TIMEOUT:-0}" -gt 0 ]; then
  (
    sleep "$TIMEOUT"
    {
      echo "sandbox: the command ran past ${TIMEOUT} s; its threads (state, kernel function, system call):"
      for p in /proc/[0-9]*; do
        [ -n "$(head -c 1 "$p/cmdline" 2>/dev/null)" ] || continue # a kernel thread: see sysrq w
        for t in "$p"/task/*; do
          read -r comm <"$t/comm" 2>/dev/null || continue
          st=$(sed 's/^.*) //' "$t/stat" 2>/dev/null | cut -d' ' -f1)
          sc=$(cut -d' ' -f1-3 "$t/syscall" 2>/dev/null)
          echo "  ${p#/proc/}/${t##*/} $comm $st $(cat "$t/wchan" 2>/dev/null) [$sc]"
        done
      done
    } >$tty 2>&1
    {
      echo "sandbox: the kernel's last warnings and errors:"
      dmesg -r | grep '^<[0-4]>' | tail -n 40
    } >$tty 2>&1
    echo 7 >/proc/sys/kernel/printk # sysrq prints its dumps at KERN_INFO
    echo w >/proc/sysrq-trigger     # tasks blocked in the kernel, with their stacks
    echo l >/proc/sysrq-trigger     # what each CPU is running
    sleep 2
    echo 124 >/run/sandbox/status
    sync
    poweroff -f
  ) &
fi

# With a TTY the command leads its own session with the console as its
# controlling terminal, so Ctrl-C reaches it; otherwise stdin is the saved file.
if [ "$TTY" = 1 ]; then
  setsid -c chroot $H /usr/bin/env -i /bin/sh /run/sandbox/cmd.sh <>$tty >&0 2>&0
elif [ "$OPOST" = 1 ]; then
  chroot $H /usr/bin/env -i /bin/sh /run/sandbox/cmd.sh </run/sandbox/stdin >$tty 2>&1
else
  # The host's stdout is no terminal: neither is the command's (no colours, no \r).
  set -o pipefail
  chroot $H /usr/bin/env -i /bin/sh /run/sandbox/cmd.sh </run/sandbox/stdin 2>&1 | cat >$tty
fi
echo $? >/run/sandbox/status
sync
stty -F $tty sane # waits until the console's output has drained (TCSADRAIN)
poweroff -f
