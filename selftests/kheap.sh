#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run kheap_test, kheap_fork_test, kheap_dmabuf_test, kheap_resize_test
# and a short kheap_fuzz
# ($KHEAP_FUZZ_SECONDS seconds, default 20) against each pool source, then
# the module lifecycle tests, the pool placement test (kheap_movable_test,
# see there), the allocation failure sweep (kheap_failnth_test: skips on a
# kernel without fault injection) and a short soak (kheap_soak_test,
# $KHEAP_SOAK_CYCLES cycles, default 10000).  `make fuzz` and `make soak`
# run the long versions.
#
#   contig    size=64M source=contig   (taken at load time)
#   buddy     size=2M source=buddy     (one page allocator block)
#   reserved  $KHEAP_RESERVED source=reserved, only when KHEAP_RESERVED is
#             set, e.g. "phys=0x30000000 size=64M" for a kernel booted with
#             memmap=64M$0x30000000
#
# The module is $KHEAP_KO, or kheap.ko next to this script.  Each program
# prints its own KTAP, and a comment with the seconds it took; the exit
# status is non-zero if anything failed.
#
# A part of the run, for guests that share the work (make check-debug):
#   KHEAP_POOLS      the pools to test, default "contig buddy reserved"
#                    (set and empty: none)
#   KHEAP_SH_MODULE  0: leave out what follows the pools (the lifecycle,
#                    placement, fail-nth and soak tests); default 1
# Read by the programs themselves: KHEAP_LARGE_POOL_PERCENT (kheap_module_
# test's large runtime pool, percent of RAM, default 60) and
# KHEAP_MOVABLE_PARAMS (kheap_movable_test's pool, "size=128M source=contig").

dir=$(cd "$(dirname "$0")" && pwd)
: "${KHEAP_KO:=$dir/kheap.ko}"
export KHEAP_KO

ksft_skip=4
status=0

# run_timed LABEL PROGRAM ARGS...: PROGRAM's exit status, and how long it
# took as a KTAP comment (where a debug kernel spends its hours).
run_timed() {
	label=$1
	shift
	t0=$(date +%s)
	"$@"
	rc=$?
	echo "# kheap.sh: $label: $(basename "$1") took $(($(date +%s) - t0)) s"
	return $rc
}

if [ "$(id -u)" -ne 0 ]; then
	echo "# kheap.sh: must be run as root"
	exit $ksft_skip
fi
if [ ! -r "$KHEAP_KO" ]; then
	echo "# kheap.sh: $KHEAP_KO not found (set KHEAP_KO)"
	exit $ksft_skip
fi

# run_pool NAME PARAMS...
run_pool() {
	name=$1
	shift
	echo "# kheap.sh: $name pool: $*"
	"$dir/kheap_modload" unload >/dev/null 2>&1
	if ! "$dir/kheap_modload" load "$@"; then
		echo "# kheap.sh: $name pool: loading the module failed"
		status=1
		return
	fi
	# The module is loaded: skipping (4) would hide a missing device.
	for t in kheap_test kheap_fork_test kheap_dmabuf_test kheap_resize_test; do
		run_timed "$name pool" "$dir/$t"
		rc=$?
		if [ $rc -ne 0 ]; then
			echo "# kheap.sh: $name pool: $t exited with $rc"
			status=1
		fi
	done
	run_timed "$name pool" "$dir/kheap_fuzz" --duration "${KHEAP_FUZZ_SECONDS:-20}"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "# kheap.sh: $name pool: kheap_fuzz exited with $rc"
		status=1
	fi
	if ! "$dir/kheap_modload" unload; then
		echo "# kheap.sh: $name pool: unloading the module failed"
		status=1
	fi
}

for pool in ${KHEAP_POOLS-contig buddy reserved}; do
	case $pool in
	contig) run_pool contig size=64M source=contig ;;
	buddy) run_pool buddy size=2M source=buddy ;;
	reserved)
		if [ -n "${KHEAP_RESERVED:-}" ]; then
			# Word splitting of $KHEAP_RESERVED into parameters is intended.
			# shellcheck disable=SC2086
			run_pool reserved $KHEAP_RESERVED source=reserved
		else
			echo "# kheap.sh: reserved pool skipped (KHEAP_RESERVED not set)"
		fi
		;;
	*)
		echo "# kheap.sh: no pool named $pool (KHEAP_POOLS)"
		status=1
		;;
	esac
done
[ "${KHEAP_SH_MODULE:-1}" -eq 1 ] || exit $status

for t in kheap_module_test kheap_movable_test kheap_failnth_test; do
	"$dir/kheap_modload" unload >/dev/null 2>&1
	run_timed module "$dir/$t"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "# kheap.sh: $t exited with $rc"
		status=1
	fi
done

"$dir/kheap_modload" unload >/dev/null 2>&1
if "$dir/kheap_modload" load size=64M source=contig; then
	run_timed soak "$dir/kheap_soak_test" --cycles "${KHEAP_SOAK_CYCLES:-10000}"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "# kheap.sh: kheap_soak_test exited with $rc"
		status=1
	fi
	"$dir/kheap_modload" unload || status=1
else
	echo "# kheap.sh: soak: loading the module failed"
	status=1
fi

exit $status
