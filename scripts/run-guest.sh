#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Boot one Debian kernel under QEMU (TCG) with a kheap initramfs, run a script
# in it, and judge the boot.  The guest passes only if all of these hold:
#   - QEMU exits through isa-debug-exit with status 0 (exit code 1); a panic,
#     a reboot or a hang (host-side timeout) never does;
#   - the console shows the guest's end marker;
#   - the console shows no kernel WARNING, BUG, Oops, Call Trace or panic.
# The kernel runs with panic_on_warn=1 and oops=panic, so any kernel complaint
# also ends the guest at once.
#
# Usage: scripts/run-guest.sh [options] KREL INITRAMFS RUNSCRIPT LOG
#   KREL       kernel release, e.g. 6.12.117+deb12-amd64 (/boot/vmlinuz-KREL)
#   INITRAMFS  from scripts/mkinitramfs.sh
#   RUNSCRIPT  shell script run as /kheap/run.sh inside the guest (cwd /kheap)
#   LOG        where the serial console is written (also echoed to stdout)
# Options:
#   --append ARGS   extra kernel command line (e.g. 'memmap=64M$0x30000000');
#                   may be repeated
#   --timeout SECS  host-side limit for the whole boot (default 600)
#   --mem SIZE      guest RAM (default 1G)
#   --quiet         do not echo the console to stdout
#   --qemu ARGS     extra QEMU arguments, split at white space; may be repeated
#                   (e.g. --qemu '-device edu,addr=10.0')
#   --iommu         an emulated Intel IOMMU (VT-d), enabled in strict mode
#   --kernel IMAGE  boot IMAGE instead of /boot/vmlinuz-KREL (a kernel built
#                   here, e.g. by scripts/debug-kernel.sh)
#   --rootfs        run over the host's root file system: / is shared
#                   read-only over 9p, a tmpfs overlay takes the writes, and
#                   RUNSCRIPT runs chrooted in there (cwd /run/kheap, where the
#                   initramfs's /kheap is copied), so every installed Debian
#                   program is at hand and the repository is at its host path;
#                   guest RAM defaults to 2G
#   --root DIR      as --rootfs, over DIR instead of the host's / (a tree
#                   prepared on the host, e.g. with packages installed)
#   --shell         after RUNSCRIPT, an interactive shell on this terminal
#                   (bash over the host's root with --rootfs); leaving it
#                   powers the guest off, and the console is still logged
set -eu
append=""
here=$(cd "$(dirname "$0")" && pwd)
timeout=600
mem=1G
mem_given=0
quiet=0
qemu_extra=""
iommu=0
kernel=""
rootfs=0
rootdir=/
shell=0
while [ $# -gt 0 ]; do
	case "$1" in
	--append) append="$append $2"; shift 2 ;;
	--timeout) timeout="$2"; shift 2 ;;
	--mem) mem="$2"; mem_given=1; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--qemu) qemu_extra="$qemu_extra $2"; shift 2 ;;
	--iommu) iommu=1; shift ;;
	--kernel) kernel="$2"; shift 2 ;;
	--rootfs) rootfs=1; shift ;;
	--root) rootfs=1; rootdir="$2"; shift 2 ;;
	--shell) shell=1; quiet=1; shift ;;
	--) shift; break ;;
	-*) echo "run-guest.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 4 ] || { sed -n '2,/^set -eu/p' "$0" | sed 's/^# \{0,1\}//;$d' >&2; exit 2; }
krel=$1
initramfs=$2
runscript=$3
log=$4

# A bad root is refused before anything is made: scripts/run-guest-check.sh.
if [ "$rootfs" -eq 1 ]; then
	[ -d "$rootdir" ] || { echo "run-guest.sh: no directory $rootdir" >&2; exit 2; }
	case "$rootdir" in *,* | *' '*) echo "run-guest.sh: $rootdir: no commas or spaces" >&2; exit 2 ;; esac
fi
[ -n "$kernel" ] || kernel=/boot/vmlinuz-$krel
[ -r "$kernel" ] || { echo "run-guest.sh: $kernel missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A second cpio archive appended to the first adds /kheap/run.sh.
mkdir -p "$work/root/kheap"
cp "$runscript" "$work/root/kheap/run.sh"
(cd "$work/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$work/run.cpio"
cat "$initramfs" "$work/run.cpio" > "$work/initramfs.cpio"

cmdline="console=ttyS0 loglevel=5 panic=-1 oops=panic panic_on_warn=1"
cmdline="$cmdline rdinit=/init mitigations=off $append"
# Under TCG a busy host can starve a vCPU for seconds (seen: "hrtimer:
# interrupt took 1.5 s"), which the default 20 s soft-lockup and 21 s RCU
# stall detectors misread as kernel bugs.  Give them the longest thresholds
# instead of disabling them: a real lockup still shows, and still fails.
cmdline="$cmdline watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=300"

# VT-d must come before the PCI devices it translates.  Interrupt
# remapping on, because VFIO type1 refuses a platform without it (TCG has
# no kernel irqchip, so QEMU needs no kernel-irqchip=split for it).
# Strict mode makes every unmap take effect at once, so a test that
# expects a fault gets one.
iommu_dev=""
if [ "$iommu" -eq 1 ]; then
	iommu_dev="-device intel-iommu,intremap=on"
	cmdline="$cmdline intel_iommu=on iommu.strict=1"
fi

# The host's root for guest-init.sh (kheapguest.rootfs=1).  multidevs=remap
# keeps inode numbers unique across the host's file systems.
rootfs_dev=""
if [ "$rootfs" -eq 1 ]; then
	rootfs_dev="-virtfs local,path=$rootdir,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	cmdline="$cmdline kheapguest.rootfs=1"
	[ "$mem_given" -eq 1 ] || mem=2G
fi

# The serial console: a log file, or this terminal (still logged) for a shell.
serial="-serial file:$log"
if [ "$shell" -eq 1 ]; then
	serial="-chardev stdio,id=con,mux=on,signal=off,logfile=$log -serial chardev:con -mon chardev=con"
	cmdline="$cmdline kheapguest.shell=1"
fi

: > "$log"
if [ "$quiet" -eq 0 ]; then
	tail -n +1 -f "$log" --pid=$$ 2>/dev/null &
	tailpid=$!
fi
set +e
# $serial, $iommu_dev, $rootfs_dev and $qemu_extra are word lists: split
# them, but never glob.  Only a shell reads this terminal.
set -f
stdin=/dev/null
[ "$shell" -eq 0 ] || stdin=/dev/stdin
# shellcheck disable=SC2086
timeout --foreground -k 10 "$timeout" \
	qemu-system-x86_64 -nodefaults -no-user-config -accel tcg \
	-machine q35 -cpu max -smp 2 -m "$mem" \
	-display none $serial -no-reboot \
	$iommu_dev $rootfs_dev \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	$qemu_extra \
	-kernel "$kernel" -initrd "$work/initramfs.cpio" -append "$cmdline" \
	<"$stdin"
rc=$?
set +f
set -e
if [ "$quiet" -eq 0 ]; then
	sleep 0.3
	kill "$tailpid" 2>/dev/null || true
	wait "$tailpid" 2>/dev/null || true
fi

verdict=0
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "run-guest.sh: $krel: timed out after ${timeout}s" >&2
	verdict=1
elif [ "$rc" -ne 1 ]; then
	echo "run-guest.sh: $krel: guest did not exit cleanly (qemu status $rc)" >&2
	verdict=1
fi
if ! grep -q '^KHEAP-GUEST-END status=0' "$log"; then
	echo "run-guest.sh: $krel: no success marker on the console" >&2
	verdict=1
fi
complaints=$(awk -v kernel=1 -f "$here/kernel-complaints.awk" "$log")
if [ -n "$complaints" ]; then
	printf '%s\n' "$complaints" >&2
	echo "run-guest.sh: $krel: the kernel complained (above)" >&2
	verdict=1
fi
exit "$verdict"
