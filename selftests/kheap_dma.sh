#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run the device address tests (kheap_dma_test, kheap_vfio_test,
# kheap_dma_unplug_test) with QEMU edu devices, on the pools their points
# need.  Without an IOMMU:
#
#   near      size=16M max_phys=256M   the pool within 28 bits (small:
#                                      the guests reserve 64 MiB below
#                                      256 MiB with memmap=, and some
#                                      boots had no other free 64 MiB
#                                      run there; the tests take pages);
#                                      and
#             restrict_phys=1          physical addresses withheld from
#                                      openers without CAP_SYS_RAWIO
#   far       size=256M                a pool too large for 28 bits: a
#                                      28-bit device gets ERANGE
#   reserved  $KHEAP_RESERVED          when set; within 28 bits or beyond,
#                                      as its range lies
#
# Behind an IOMMU: size=64M restrict_phys=1 for kheap_dma_test,
# kheap_vfio_test and (when built) kheap_vfio_libkheap_test, then the
# same three on $KHEAP_RESERVED.  kheap_dma_unplug_test runs last.
#
# The test bed describes itself: $KHEAP_EDU lists the edu devices with the
# address bits each drives ("0000:00:10.0@28 0000:00:11.0@32", see
# kheap_dma_lib.h) and $KHEAP_DMA_IOMMU (0 or 1) says whether it booted
# with an IOMMU.  With both set, a test whose precondition this script
# set up must not skip ($KHEAP_DMA_REQUIRE).  $KHEAP_VFIO_MODULES names a
# directory of vfio-pci's modules with an "order" file, loaded with
# insmod when the kernel has no modprobe database.  The module is
# $KHEAP_KO, or kheap.ko next to this script.

dir=$(cd "$(dirname "$0")" && pwd)
: "${KHEAP_KO:=$dir/kheap.ko}"
export KHEAP_KO

ksft_skip=4
status=0

if [ "$(id -u)" -ne 0 ]; then
	echo "# kheap_dma.sh: must be run as root"
	exit $ksft_skip
fi
if [ ! -r "$KHEAP_KO" ]; then
	echo "# kheap_dma.sh: $KHEAP_KO not found (set KHEAP_KO)"
	exit $ksft_skip
fi

# Without a DMA engine to drive there is nothing to test.
have_edu=0
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1234 ] &&
		[ "$(cat "$d/device" 2>/dev/null)" = 0x11e8 ]; then
		have_edu=1
	fi
done
if [ $have_edu -eq 0 ] && [ -z "${KHEAP_EDU:-}" ]; then
	echo "# kheap_dma.sh: no QEMU edu device (-device edu)"
	exit $ksft_skip
fi

# What the test bed promised.
described=0
narrow=0
if [ -n "${KHEAP_EDU:-}" ] && [ -n "${KHEAP_DMA_IOMMU:-}" ]; then
	described=1
	for d in $KHEAP_EDU; do
		bits=${d##*@}
		[ "$bits" != "$d" ] && [ "$bits" -lt 32 ] && narrow=1
	done
fi
if [ -n "${KHEAP_DMA_IOMMU:-}" ]; then
	iommu=$KHEAP_DMA_IOMMU
elif [ -n "$(ls /sys/class/iommu 2>/dev/null)" ]; then
	iommu=1
else
	iommu=0
fi

# require "TEST...": $KHEAP_DMA_REQUIRE for a described test bed.
require() {
	if [ $described -eq 1 ]; then
		KHEAP_DMA_REQUIRE="$1"
	else
		KHEAP_DMA_REQUIRE=""
	fi
	export KHEAP_DMA_REQUIRE
}

# within_28_bits "phys=P size=S ...": does that range end within 2^28?
within_28_bits() {
	phys="" size=""
	for p in $1; do
		case $p in
		phys=*) phys=${p#phys=} ;;
		size=*) size=${p#size=} ;;
		esac
	done
	case $size in
	*[kK]) size=$((${size%?} << 10)) ;;
	*[mM]) size=$((${size%?} << 20)) ;;
	*[gG]) size=$((${size%?} << 30)) ;;
	esac
	[ -n "$phys" ] && [ -n "$size" ] && [ $((phys + size)) -le $((1 << 28)) ]
}

# Put every edu device back without a driver, as the tests expect to
# find them, after a test that failed half-way.
edu_reset() {
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" != 0x1234 ] ||
			[ "$(cat "$d/device")" != 0x11e8 ]; then
			continue
		fi
		if [ -e "$d/driver" ]; then
			echo "${d##*/}" > "$d/driver/unbind"
		fi
		echo > "$d/driver_override"
	done
}

# run NAME PROGRAM PARAMS...: load the module with PARAMS, run PROGRAM.
run() {
	name=$1
	prog=$2
	shift 2
	echo "# kheap_dma.sh: $name: $prog, module $*"
	"$dir/kheap_modload" unload >/dev/null 2>&1
	if ! "$dir/kheap_modload" load "$@"; then
		echo "# kheap_dma.sh: $name: loading the module failed"
		status=1
		return
	fi
	"$dir/$prog"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "# kheap_dma.sh: $name: $prog exited with $rc"
		status=1
	fi
	edu_reset
	if ! "$dir/kheap_modload" unload; then
		echo "# kheap_dma.sh: $name: unloading the module failed"
		status=1
	fi
}

# vfio-pci, unless it is there already (loaded, or built in).
load_vfio() {
	[ -d /sys/bus/pci/drivers/vfio-pci ] && return 0
	if [ -n "${KHEAP_VFIO_MODULES:-}" ] && [ -r "$KHEAP_VFIO_MODULES/order" ]; then
		while read -r ko; do
			mod=$(echo "${ko%.ko}" | tr - _)
			[ -d "/sys/module/$mod" ] && continue
			insmod "$KHEAP_VFIO_MODULES/$ko" || return 1
		done < "$KHEAP_VFIO_MODULES/order"
	else
		modprobe vfio-pci && modprobe vfio_iommu_type1 || return 1
	fi
	[ -d /sys/bus/pci/drivers/vfio-pci ]
}

direct="direct_addresses_are_physical direct_dma_round_trip direct_wrong_address_control"
iommu_tests="iommu_addresses iommu_physical_address_blocked iommu_dma_round_trip"
iommu_tests="$iommu_tests iommu_other_device_isolated iommu_detach_and_close_revoke"
iommu_tests="$iommu_tests iommu_free_and_devices iommu_vfio_bind"

if [ "$iommu" -eq 0 ]; then
	near="" far=""
	if [ $narrow -eq 1 ]; then
		near=narrow_device_within_reach
		far=narrow_device_out_of_reach
	fi
	require "$direct $near restricted_physical_addresses"
	run near kheap_dma_test size=16M max_phys=256M restrict_phys=1
	require "$direct $far"
	run far kheap_dma_test size=256M
	if [ -n "${KHEAP_RESERVED:-}" ]; then
		if within_28_bits "$KHEAP_RESERVED"; then
			require "$direct $near"
		else
			require "$direct $far"
		fi
		# Word splitting of $KHEAP_RESERVED into parameters is intended.
		# shellcheck disable=SC2086
		run reserved kheap_dma_test $KHEAP_RESERVED source=reserved
	fi
else
	if ! load_vfio; then
		echo "# kheap_dma.sh: vfio-pci could not be loaded"
		[ $described -eq 1 ] && status=1
	fi
	require "$iommu_tests restricted_physical_addresses vfio"
	run contig kheap_dma_test size=64M restrict_phys=1
	run vfio kheap_vfio_test size=64M
	if [ -x "$dir/kheap_vfio_libkheap_test" ]; then
		run libkheap kheap_vfio_libkheap_test size=64M
	fi
	if [ -n "${KHEAP_RESERVED:-}" ]; then
		require "$iommu_tests"
		# shellcheck disable=SC2086
		run reserved kheap_dma_test $KHEAP_RESERVED source=reserved
		# A reserved pool is pages too: VFIO pins and unpins it.
		require "vfio"
		# shellcheck disable=SC2086
		run vfio-reserved kheap_vfio_test $KHEAP_RESERVED source=reserved
		if [ -x "$dir/kheap_vfio_libkheap_test" ]; then
			# shellcheck disable=SC2086
			run libkheap-reserved kheap_vfio_libkheap_test \
				$KHEAP_RESERVED source=reserved
		fi
	fi
fi

# Last: it takes a device away and brings it back.
require ""
run unplug kheap_dma_unplug_test size=64M

"$dir/kheap_modload" unload >/dev/null 2>&1
exit $status
