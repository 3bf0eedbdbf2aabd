#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of kheap's test guests.  Mounts the usual file systems, loads the
# helper modules shipped in /kheap/modules, runs /kheap/run.sh (written by
# the host for this boot), then judges the kernel log itself and reports the
# result through isa-debug-exit.  Markers on the console let the host
# check that the guest really got to the end.  With kheapguest.rootfs=1 on
# the command line the script runs over the host's root instead (see
# run-guest.sh --rootfs), from /run/kheap; with kheapguest.shell=1 a shell
# follows it.  (Not "kheap.": the kernel would hand those to kheap.ko as
# module parameters.)
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

# Over the host's root (run-guest.sh --rootfs): mount the host's / from 9p,
# read-only, under a tmpfs overlay, and run the script chrooted in there,
# so that every installed program is at hand and writes stay in RAM.
rootfs=""
case " $(cat /proc/cmdline) " in
*" kheapguest.rootfs=1 "*) rootfs=/rootfs/root ;;
esac
shell=0
case " $(cat /proc/cmdline) " in
*" kheapguest.shell=1 "*) shell=1 ;;
esac
if [ -n "$rootfs" ]; then
	for ko in $(cat /kheap/modules/rootfs/order); do
		insmod "/kheap/modules/rootfs/$ko"
	done
	mkdir -p /rootfs/host /rootfs/rw "$rootfs"
	# cache=loose: the host side does not change while the guest runs.
	mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose \
		hostroot /rootfs/host &&
	mount -t tmpfs -o mode=0755 tmpfs /rootfs/rw &&
	mkdir -p /rootfs/rw/upper /rootfs/rw/work &&
	mount -t overlay -o lowerdir=/rootfs/host,upperdir=/rootfs/rw/upper,workdir=/rootfs/rw/work \
		overlay "$rootfs" || rootfs=/rootfs/broken
	if [ -d "$rootfs/proc" ]; then
		mount -t proc proc "$rootfs/proc"
		mount -t sysfs sysfs "$rootfs/sys"
		mount -t devtmpfs devtmpfs "$rootfs/dev"
		mkdir -p "$rootfs/dev/shm" "$rootfs/dev/pts"
		mount -t tmpfs tmpfs "$rootfs/dev/shm"
		mount -t devpts devpts "$rootfs/dev/pts"
		# No tmpfs over /tmp: a checkout under the host's /tmp (a CI
		# clone) must stay visible; the overlay keeps writes in RAM.
		mount -t tmpfs tmpfs "$rootfs/run"
		# The staged files (kheap.ko, the run script) under /run/kheap.
		cp -a /kheap "$rootfs/run/kheap"
	else
		echo "KHEAP-GUEST-ROOTFS-FAILED"
	fi
fi

echo "KHEAP-GUEST-START $(uname -r)"
cd /kheap || exit 1
if [ -z "$rootfs" ]; then
	sh /kheap/run.sh
	status=$?
elif [ -d "$rootfs/proc" ]; then
	chroot "$rootfs" /bin/sh -c 'cd /run/kheap && exec sh ./run.sh'
	status=$?
else
	status=1
fi
echo "KHEAP-GUEST-RUN-STATUS $status"
if [ "$shell" -eq 1 ]; then
	echo "kheap guest shell: exit (or Ctrl-D) powers the guest off"
	if [ -n "$rootfs" ] && [ -d "$rootfs/proc" ]; then
		setsid cttyhack chroot "$rootfs" /bin/bash -l
	else
		setsid cttyhack sh -l
	fi
fi

# The kernel's own verdict: any complaint or unexpected taint fails the boot.
# Allowed taints: O (out-of-tree, 4096) and E (unsigned, 8192).
# (/kernel-complaints.awk: scripts/kernel-complaints.awk.)
if [ -n "$(dmesg | awk -f /kernel-complaints.awk)" ]; then
	echo "KHEAP-GUEST-DMESG-BAD"
	dmesg | awk -f /kernel-complaints.awk
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
