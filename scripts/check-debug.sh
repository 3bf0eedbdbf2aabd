#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make check-debug`: the guest suite of `make check` on a debug kernel.
#   1. scripts/debug-kernel.sh: Debian's 6.12 source with KASAN, lockdep,
#      kmemleak, DMA-API debugging, DEBUG_VM and fault injection (built
#      once, then cached in /var/cache/kheap);
#   2. kheap.ko built against it (W=1, warning-free), the selftests and
#      libkheap's and kheapctl's guest tests as for `make check`;
#   3. the guests of scripts/guest-suite.sh on that kernel, two at a time
#      (GUEST_SPLIT=1: the main suite shared by three guests, then the
#      IOMMU and ZONE_MOVABLE ones), with kheap_failnth_test running
#      for real (fail-nth exists there); each
#      guest then asks kmemleak for two scans and fails on any
#      unreferenced object of kheap's, and on any KASAN, lockdep,
#      DMA-API or kmemleak complaint in its kernel log (a WARN or BUG
#      already ends the guest: panic_on_warn).
# KTAP on stdout, summed as by `make check`: one last line "N passed, N
# failed, N skipped", non-zero exit status on any failure.  The durations
# (kernel build, each boot, the whole run) are printed as KTAP comments
# and kept in $BUILD/check-debug-times.txt.
#
# No "set -e": a failed step is a test result, and the run goes on.
# Environment: BUILD (default ./build), GUEST_SLOWDOWN (default 12: the
# factor on make check's guest time limits), KHEAP_CACHE (see
# scripts/debug-kernel.sh).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
build=${BUILD:-$top/build}
mkdir -p "$build"
log=$build/check-debug.log
times=$build/check-debug-times.txt
# No foreign modules to stage: only the debug kernel runs.
# shellcheck disable=SC2034	# read by guest_suite
series=""
start=$(date +%s)
: > "$times"

say() { printf '%s\n' "$*"; }
took() { # WHAT SINCE
	say "# check-debug: $1: $(($(date +%s) - $2)) s" | tee -a "$times"
}

# Builds, checkpatch and guest boots as one KTAP block.
. scripts/ktap-checks.sh
checks_init "$build/checks-debug.ktap"

# First in every guest run script: how long the boot took, ten minutes of
# kheap_fuzz in all (200 s on each of the three pools of selftests/kheap.sh,
# instead of make check's 20 s), 100 of libkheap's fork loop instead of
# 1000 (under KASAN and TCG each fork costs seconds), and kmemleak told to
# forget what it suspects of the boot itself.  Shell text for the
# guest, not expanded here.
# shellcheck disable=SC2016,SC2089
GUEST_PROLOGUE='echo "# boot: $(cut -d" " -f1 /proc/uptime) s of guest time to the test run"
export KHEAP_FUZZ_SECONDS=200 KHEAP_FORK_LOOPS=100
[ -e /sys/kernel/debug/kmemleak ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null
'
# Last: kmemleak's verdict and the debug detectors' messages, as KTAP.
# (kmemleak's "Cannot allocate a scan area" is an injected failure of its
# own bookkeeping, which it survives by scanning the whole object.)
# An object is kheap's when its allocation backtrace names the module, or
# a frame that no longer resolves (the module is unloaded by then).
# shellcheck disable=SC2016,SC2089
GUEST_EPILOGUE='/kheap/selftests/kheap_modload unload >/dev/null 2>&1
kpass=0
kfail=0
echo "TAP version 13"
echo "1..2"
kml=/sys/kernel/debug/kmemleak
if [ -w $kml ]; then
	echo scan > $kml
	sleep 6
	echo scan > $kml
	cat $kml > /tmp/kmemleak.txt
	all=$(grep -c "^unreferenced object" /tmp/kmemleak.txt)
	ours=$(awk "/^unreferenced object/ { if (o) n++; o = 0 }
		/\\[kheap\\]\$|\\] 0x[0-9a-f]+\$/ { o = 1 }
		END { if (o) n++; print n + 0 }" /tmp/kmemleak.txt)
	sed -n "1,200s/^/# kmemleak: /p" /tmp/kmemleak.txt
	if [ "$ours" -eq 0 ]; then
		echo "ok 1 kmemleak: nothing of kheap unreferenced ($all other objects)"
		kpass=$((kpass + 1))
	else
		echo "not ok 1 kmemleak: $ours unreferenced objects of kheap ($all in all)"
		kfail=$((kfail + 1))
	fi
else
	echo "not ok 1 kmemleak: no $kml"
	kfail=$((kfail + 1))
fi
if dmesg | grep -E "BUG: KASAN|DMA-API: |possible (circular|recursive) locking|inconsistent lock state|suspicious RCU usage|lockdep is turned off|DEBUG_LOCKS_WARN_ON|kmemleak: .*(suspected|disabl|Cannot allocate a kmemleak_object)" |
	grep -v -E "DMA-API: (preallocated|debugging enabled)" > /tmp/detectors.txt; then
	sed "s/^/# /" /tmp/detectors.txt
	echo "not ok 2 dmesg: the debug detectors complained"
	kfail=$((kfail + 1))
else
	echo "ok 2 dmesg: no KASAN, lockdep, DMA-API debug or kmemleak complaint"
	kpass=$((kpass + 1))
fi
echo "# Totals: pass:$kpass fail:$kfail xfail:0 xpass:0 skip:0 error:0"
[ "$kfail" -eq 0 ] || status=1
'
# shellcheck disable=SC2090
export GUEST_PROLOGUE GUEST_EPILOGUE
# 4 was too little: on a 2-core machine at load 10 the first guest
# reached only the reserved pool's kheap_fork_test in its 3600 s.
: "${GUEST_SLOWDOWN:=12}"
GUEST_SPLIT=1
# KASAN's shadow (an eighth of RAM) and kmemleak's and lockdep's records
# leave a 1 GiB guest no free 256 MiB range by the end of the main suite
# (kheap_dma.sh's and libkheap's pools failed to load with ENOMEM).
: "${GUEST_MEM:=2G}"
# The main guests' memmap= range at 1.5 GiB, not 128 MiB: the debug
# kernel's image ends near 76 MiB, and with the range at 128 MiB no free
# 64 MiB was left below 256 MiB for kheap_dma.sh's pool within reach of a
# 28-bit device.  At 1 GiB it cut the RAM below it to 1023 MiB, too
# little for kheap_module_test's pool of 60% of RAM; above it stay the
# initramfs (27 MiB) and the kernel's early allocations.
: "${GUEST_RESERVED_PHYS:=0x60000000}"
# Half of make check's soak: at about 30 cycles a second under KASAN and
# TCG, 5000 cycles take three minutes, and a leak of one object per cycle
# (5000) still exceeds the slab check's allowance (2148) twice over.
# `make soak` is the long one.
# kheap_module_test's large runtime pool: 40% of RAM, not 60%.  A fresh
# debug guest loads 60% (970 MiB) at once, but after the module tests
# before it the debug kernel's own allocations (KASAN's quarantine,
# kmemleak's and lockdep's records) lie scattered through the free range
# and no 970 MiB run was left.
GUEST_PROLOGUE="${GUEST_PROLOGUE}export KHEAP_SOAK_CYCLES=5000
export KHEAP_LARGE_POOL_PERCENT=40
"
export GUEST_SLOWDOWN GUEST_SPLIT GUEST_MEM GUEST_RESERVED_PHYS

# shellcheck disable=SC1091
. scripts/guest-suite.sh

# guest-suite.sh's run_guest, timed: the debug kernel always, with 4-level
# paging (no5lvl): with QEMU's "-cpu max" offering LA57, this KASAN kernel
# reports a wild access in rcu_is_watching() from an interrupt during
# identify_cpu() and panics before the console is up.
run_guest() {
	for last in "$@"; do :; done
	g0=$(date +%s)
	scripts/run-guest.sh --kernel "$GUEST_KERNEL" --append no5lvl "$@"
	grc=$?
	took "guest $(basename "$last" .log)" "$g0"
	return "$grc"
}

steps() {
if ! scripts/deps.sh --debug; then
	check_result "scripts/deps.sh --debug" 1
	return
fi

# --- the debug kernel ---------------------------------------------------------
t=$(date +%s)
if kdir=$(scripts/debug-kernel.sh --cached); then
	took "debug kernel (cached, built in $(cat "$kdir/build-seconds") s)" "$t"
elif kdir=$(scripts/debug-kernel.sh); then
	took "debug kernel build" "$t"
else
	check_result "debug kernel build" 1
	return
fi
check_result "debug kernel build" 0
krel=$(cat "$kdir/krel")
GUEST_KERNEL=$kdir/obj/arch/x86/boot/bzImage
GUEST_MODBASE=$kdir/mod
export GUEST_KERNEL GUEST_MODBASE

# --- kheap.ko against it --------------------------------------------------------
out=$build/$krel
rm -rf "$out/src" && mkdir -p "$out/src"
cp -a Kbuild module include "$out/src/"
if nice -n 19 make -s -C "$kdir/obj" M="$out/src" W=1 -j2 modules \
	> "$out/module-build.txt" 2>&1 &&
	! grep -E 'warning:|error:' "$out/module-build.txt" >/dev/null &&
	[ -f "$out/src/module/kheap.ko" ]; then
	check_result "kheap.ko W=1 build for $krel" 0
else
	cat "$out/module-build.txt"
	check_result "kheap.ko W=1 build for $krel" 1
	return
fi

# --- the guests -----------------------------------------------------------------
ksrc=$(scripts/ksrc.sh 6.12 "$top/.cache/linux-6.12")
t=$(date +%s)
guest_suite "$krel" "$out" "$ksrc"
took "all guests" "$t"
for c in "$out"/console*.log; do
	[ -f "$c" ] || continue
	grep -h '^# boot:' "$c" | tr -d '\r' | sed "s|^# |# $(basename "$c"): |" >> "$times"
done
}

run_all() {
steps
# --- our own checks, as one more KTAP block ---------------------------------
checks_print
took "check-debug in all" "$start"
}

run_all 2>&1 | tee "$log"

scripts/ktap-sum.sh "$log"
