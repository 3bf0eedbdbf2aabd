# SPDX-License-Identifier: GPL-2.0-only
#
# Prints the kernel's complaints among the log lines it reads (dmesg, or a
# guest's console with kernel=1: then only lines with a kernel timestamp
# count, since test output may quote the kernel): a WARNING, BUG, Oops,
# panic or general protection fault, and every stack dump (Call Trace)
# but one kind: the allocation failure report (warn_alloc(): "page
# allocation failure" or "vmalloc error", then a stack dump) of a failure
# that kheap_failnth_test injected on purpose, which is the kernel
# reporting what was asked of it.  Only that program injects failures,
# and its command name (cut to 15 characters) heads the report.  Also let
# through: the stack dump of schedule_timeout()'s "wrong timeout value" from
# a vivid thread, a race in vivid's capture thread (vivid-kthread-cap.c
# checks that its next frame is ahead, then computes the wait from jiffies
# again; a tick between makes it negative), harmless and not kheap's.
# selftests/kheap_lib.c (kheap_kmsg_scan) applies the same rule.
# Used by scripts/guest-init.sh (in the guest) and scripts/run-guest.sh.
kernel && !/^\[ *[0-9]+\.[0-9]+\]/ { next }
/kheap_failnth_t: (page allocation failure|vmalloc error):/ { injected = 1; next }
/schedule_timeout: wrong timeout value/ { vivid = 1; next }
vivid == 1 && /Comm: vivid-/ { vivid = 2 }
/Call Trace/ {
	if (injected) {
		injected = 0
		next
	}
	if (vivid) {
		ours = vivid == 2
		vivid = 0
		if (ours)
			next
	}
	print
	next
}
/WARNING:|BUG:|Oops|Kernel panic|general protection/ { print }
