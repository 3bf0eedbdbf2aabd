#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of kheap's test guests.  Mounts the usual file systems, loads the
# helper modules shipped in /kheap/modules, runs /kheap/run.sh (written by
# the host for this boot), then judges the kernel log itself and reports the
# result through isa-debug-exit.  Markers on the console let the host check
# that the guest really got to the end.
/bin/busybox --install -s /bin
export PATH=/kheap/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd 2>/dev/null
hostname kheap-guest

for ko in /kheap/modules/*.ko; do
	[ -e "$ko" ] && insmod "$ko"
done

echo "KHEAP-GUEST-START $(uname -r)"
cd /kheap || exit 1
sh /kheap/run.sh
status=$?
echo "KHEAP-GUEST-RUN-STATUS $status"

# The kernel's own verdict: any complaint or unexpected taint fails the boot.
# Allowed taints: O (out-of-tree, 4096) and E (unsigned, 8192).
if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|Kernel panic|general protection' >/dev/null; then
	echo "KHEAP-GUEST-DMESG-BAD"
	dmesg | grep -E -A20 'WARNING:|BUG:|Oops|Call Trace|Kernel panic|general protection'
	status=1
fi
taint=$(cat /proc/sys/kernel/tainted)
if [ $((taint & ~(4096 | 8192))) -ne 0 ]; then
	echo "KHEAP-GUEST-TAINTED $taint"
	status=1
fi

echo "KHEAP-GUEST-END status=$status"
guest-exit "$status"
poweroff -f
