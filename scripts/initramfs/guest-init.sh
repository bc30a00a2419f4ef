#!/bin/sh
# /init of denovmm's default guest (busybox). Needs no kernel command line
# arguments. Ends the VM with the shell's exit status through the debug-exit
# port 0x501, which the VMM turns into its own exit status.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

# Built with their dependencies first (scripts/build_guest.ts); one line per failure. They fit
# only the kernel named in /etc/modules.release: under another (the KVM tests boot Debian's
# cloud and rt kernels with this image) each insmod would fail, so one line says so instead.
modules=$(cat /etc/modules.release 2>/dev/null)
if [ "$modules" != "$(uname -r)" ]; then
  echo "modules are for ${modules:-no kernel named}, not $(uname -r): not loaded"
else
  while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null || echo "insmod $m failed"
  done </etc/modules.order
fi

# With console=hvc0 (denovmm run --console virtio) the console exists only once virtio_console
# is loaded and its port is up: take it as stdin/stdout now.
if grep -qw 'console=hvc0' /proc/cmdline; then
  i=0
  while [ ! -c /dev/hvc0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ -c /dev/hvc0 ] && exec </dev/hvc0 >/dev/hvc0 2>&1
fi

hostname denovmm
echo "denovmm guest ready: Linux $(uname -r)"

# setsid + cttyhack give the shell the console as its controlling TTY, so job
# control and Ctrl-C work; on EOF (Ctrl-D) the shell exits with its last status.
# When the shell, leading its session, exits, the kernel hangs up its terminal, and a hangup
# discards output the UART has not sent yet (the tail of the last command's output). So the
# shell's EXIT trap first waits for the UART: stty sets the mode with TCSADRAIN.
echo "trap 'stty sane 2>/dev/null' EXIT" >/etc/shrc
# busybox's poweroff, reboot and halt without -f signal init (USR2, TERM, USR1): as init, do
# what they ask. A trap runs only once the shell is waited for with `wait` (not while it runs
# in the foreground), so the shell runs in the background, with the console (saved in fd 3)
# as its stdin: an asynchronous command's stdin would otherwise be /dev/null.
# The shell's output may still be queued in the tty when it asks (poweroff right after an echo):
# wait for the UART first, as the EXIT trap does (init's stdin is the console).
trap 'stty sane 2>/dev/null; poweroff -f' USR1 USR2
trap 'stty sane 2>/dev/null; reboot -f' TERM
exec 3<&0
ENV=/etc/shrc setsid cttyhack sh <&3 3<&- &
wait $!
status=$?
# One byte, the status, to port 0x501 (offset 1281 in /dev/port).
printf "$(printf '\\%03o' "$status")" | dd of=/dev/port bs=1 seek=1281 count=1 2>/dev/null
# No debug-exit device: reset (the VMM boots the kernel with reboot=k, so through the i8042).
reboot -f
