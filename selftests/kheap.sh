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
# prints its own KTAP; the exit status is non-zero if anything failed.

dir=$(cd "$(dirname "$0")" && pwd)
: "${KHEAP_KO:=$dir/kheap.ko}"
export KHEAP_KO

ksft_skip=4
status=0

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
		"$dir/$t"
		rc=$?
		if [ $rc -ne 0 ]; then
			echo "# kheap.sh: $name pool: $t exited with $rc"
			status=1
		fi
	done
	"$dir/kheap_fuzz" --duration "${KHEAP_FUZZ_SECONDS:-20}"
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

run_pool contig size=64M source=contig
run_pool buddy size=2M source=buddy
if [ -n "${KHEAP_RESERVED:-}" ]; then
	# Word splitting of $KHEAP_RESERVED into parameters is intended.
	# shellcheck disable=SC2086
	run_pool reserved $KHEAP_RESERVED source=reserved
else
	echo "# kheap.sh: reserved pool skipped (KHEAP_RESERVED not set)"
fi

for t in kheap_module_test kheap_movable_test kheap_failnth_test; do
	"$dir/kheap_modload" unload >/dev/null 2>&1
	"$dir/$t"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "# kheap.sh: $t exited with $rc"
		status=1
	fi
done

"$dir/kheap_modload" unload >/dev/null 2>&1
if "$dir/kheap_modload" load size=64M source=contig; then
	"$dir/kheap_soak_test" --cycles "${KHEAP_SOAK_CYCLES:-10000}"
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
