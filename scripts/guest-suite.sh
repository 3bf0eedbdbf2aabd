#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The guest half of kheap's test run, sourced by scripts/check.sh (Debian's
# kernels) and scripts/check-debug.sh (the debug kernel).  guest_suite
# KREL OUT KSRC stages kheap.ko ($OUT/src/module/kheap.ko), the selftests,
# libkheap's guest tests and kheapctl's, packs an initramfs and boots it
# three times: with a reserved memmap= range and two edu DMA engines (no
# IOMMU) for the whole suite; behind an Intel IOMMU for the device address
# tests; with a large ZONE_MOVABLE for the pool placement tests.  For the
# newest kernel of $series a fourth boot runs over the host's root
# (run-guest.sh --rootfs): scripts/rootfs-tests.sh, tests/rootfs/*.sh.
#
# The caller provides $top (cwd), $build, $series, say and check_result.
# Optional, for another kernel than Debian's:
#   GUEST_KERNEL    the image to boot (default /boot/vmlinuz-KREL)
#   GUEST_MODBASE   root of lib/modules/KREL (default /)
#   GUEST_SLOWDOWN  factor on every guest's time limit (default 1)
#   GUEST_PROLOGUE  shell text run first in every guest run script
#   GUEST_EPILOGUE  shell text run last, before it exits with $status
#   GUEST_MEM       the main suite's guest RAM (default 1G; the IOMMU
#                   and ZONE_MOVABLE guests keep theirs)
#   GUEST_RESERVED_PHYS  where the main suite's guests reserve their
#                   memmap= range (default $reserved_phys below; the IOMMU
#                   guest keeps that)
#   GUEST_SPLIT     1: the main suite in three guests (main_part), booted
#                   with the IOMMU and ZONE_MOVABLE guests GUEST_JOBS
#                   (default 2) at a time
# (shell text: complete lines, each ending with a newline).
# $top, $build, $series are the caller's; "A && B || continue" is meant.
# shellcheck disable=SC2154,SC2015

# Reserved range for the guests' reserved-pool run: 64 MiB at 128 MiB.  With
# nokaslr the kernel image sits at 16 MiB, below it, and QEMU loads the
# initramfs at the top of RAM, so the range between (about 800 MiB) stays
# free for the large runtime pool test.
reserved_phys=0x08000000
reserved_size=64M

# The placement guest's ZONE_MOVABLE, out of 1 GiB: larger than DMA32
# (about 430 MiB), so that a pool too large for DMA32 could only come from
# ZONE_MOVABLE, and small enough to leave DMA32 a free 128 MiB run for the
# pool that must load outside it (kheap_movable_test.c says why not more).
movablecore=576M

# QEMU's edu DMA engines, at fixed slots so the guest can be told which
# is which: the address bits each drives cannot be read from the device.
# dma_mask defaults to 28 bits.
edu_direct="-device edu,addr=10.0 -device edu,addr=11.0,dma_mask=0xffffffff"
edu_direct_env="0000:00:10.0@28 0000:00:11.0@32"
edu_iommu="-device edu,addr=10.0,dma_mask=0xffffffff -device edu,addr=11.0,dma_mask=0xffffffff"
edu_iommu_env="0000:00:10.0@32 0000:00:11.0@32"

# run_guest ARGS...: scripts/run-guest.sh with $GUEST_KERNEL, if set.
run_guest() {
	if [ -n "${GUEST_KERNEL:-}" ]; then
		scripts/run-guest.sh --kernel "$GUEST_KERNEL" "$@"
	else
		scripts/run-guest.sh "$@"
	fi
}

# main_part PART: the guest shell text of one part of the main suite.
#   all     everything, in one guest (make check)
#   rest    kheap.sh without its pools (lifecycle, placement, fail-nth,
#           soak): the longest part
#   contig  kheap.sh's contig pool, then what "all" runs after kheap.sh
#           (their 256 MiB pools need a guest not yet fragmented by rest)
#   pools   kheap.sh's buddy and reserved pools
main_part() {
	case $1 in
	rest) echo 'KHEAP_POOLS= ./kheap.sh || status=1'; return ;;
	pools) echo 'KHEAP_POOLS="buddy reserved" KHEAP_SH_MODULE=0 ./kheap.sh || status=1'; return ;;
	contig) echo 'KHEAP_POOLS=contig KHEAP_SH_MODULE=0 ./kheap.sh || status=1' ;;
	*) echo './kheap.sh || status=1' ;;
	esac
	cat <<'RUN'
./kheap_pm.sh || status=1
./kheap_dma.sh || status=1
if [ -d /kheap/userlib/tests ]; then
	/kheap/selftests/kheap_modload unload 2>/dev/null
	if /kheap/selftests/kheap_modload load size=256M; then
		for t in /kheap/userlib/tests/guest_kheap /kheap/userlib/tests/guest_kheap_shared \
			/kheap/userlib/tests/guest_dma /kheap/userlib/tests/guest_retain; do
			$t || status=1
		done
		# libkheap-preload.so: ENOMEM, then fallback mode
		LD_PRELOAD=/kheap/userlib/libkheap-preload.so /kheap/userlib/tests/test_preload ||
			status=1
		KHEAP_PRELOAD_FALLBACK=1 LD_PRELOAD=/kheap/userlib/libkheap-preload.so \
			/kheap/userlib/tests/test_preload || status=1
		/kheap/selftests/kheap_modload unload || status=1
	else
		echo "# libkheap's guest tests not run: no 256 MiB pool"
		status=1
	fi
fi
if [ -x /kheap/tools/tests/run.sh ]; then
	/kheap/tools/tests/run.sh || status=1
fi
# Last: it poisons a page of RAM for the rest of the boot.
/kheap/selftests/kheap_hwpoison_test || status=1
RUN
}

# wait_for_slot: return once fewer than GUEST_JOBS (default 2) guests
# started by start_guest still run.  One guest per host core: more would
# share the cores, and the tests' own time limits (the kselftest
# harness's 30 s) are set for a guest with a core of its own.
wait_for_slot() {
	while :; do
		ws_live=""
		for ws_pid in ${sg_pids:-}; do
			! kill -0 "$ws_pid" 2>/dev/null || ws_live="$ws_live $ws_pid"
		done
		sg_pids=$ws_live
		# shellcheck disable=SC2086	# a word list of pids
		[ "$(set -- $sg_pids; echo $#)" -ge "${GUEST_JOBS:-2}" ] || return 0
		sleep 5
	done
}

# start_guest SUFFIX TITLE LIMIT ARGS...: boot $out/initramfs.cpio with
# $out/runSUFFIX.sh into $out/consoleSUFFIX.log, its status into
# $out/guestSUFFIX.rc, and report it; with GUEST_SPLIT=1 in the
# background, reported by the caller after "wait" ($out/guests.txt).
start_guest() {
	sg_sfx=$1
	sg_title=$2
	sg_limit=$3
	shift 3
	if [ "${GUEST_SPLIT:-0}" -eq 1 ]; then
		echo "$sg_sfx|$sg_title" >> "$out/guests.txt"
		wait_for_slot
		boot_one "$sg_sfx" "$sg_limit" "$@" &
		sg_pids="${sg_pids:-} $!"
		return
	fi
	boot_one "$sg_sfx" "$sg_limit" "$@"
	report_guest "$sg_sfx" "$sg_title"
}

# boot_one SUFFIX LIMIT ARGS...: one guest run of start_guest's, its exit
# status into $out/guestSUFFIX.rc.
boot_one() {
	bo_sfx=$1
	bo_limit=$2
	shift 2
	run_guest --quiet --timeout "$bo_limit" "$@" "$krel" \
		"$out/initramfs.cpio" "$out/run$bo_sfx.sh" "$out/console$bo_sfx.log"
	echo $? > "$out/guest$bo_sfx.rc"
}

report_guest() {
	say "# $2"
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console$1.log" | tr -d '\r'
	check_result "$2" "$(cat "$out/guest$1.rc" 2>/dev/null || echo 1)"
}

# guest_suite KREL OUT KSRC
guest_suite() {
	krel=$1
	out=$2
	ksrc=$3
	slow=${GUEST_SLOWDOWN:-1}
	stage=$out/stage
	rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/selftests"
	cp "$out/src/module/kheap.ko" "$stage/kheap.ko"
	gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" scripts/guest-exit.c
	# libkheap first: the selftests build their libkheap VFIO test on it.
	userlib_ok=0
	make -s -C userlib all guest-tests > "$out/userlib-build.txt" 2>&1 && userlib_ok=1
	if ! make -s -C selftests KSFT_DIR="$ksrc/tools/testing/selftests" \
		OUTPUT="$out/selftests" \
		KHEAP_USERLIB="$([ $userlib_ok -eq 1 ] && echo "$top/userlib")" \
		> "$out/selftests-build.txt" 2>&1; then
		cat "$out/selftests-build.txt"
		check_result "selftests build for $krel" 1
		return
	fi
	check_result "selftests build for $krel" 0
	cp -a "$out/selftests/." "$stage/selftests/"
	cp selftests/*.sh "$stage/selftests/"
	# libkheap's guest tests: the static one, the shared one that finds
	# libkheap.so.1 one directory above itself ($ORIGIN/..), and the one
	# driving edu at libkheap's device addresses.
	if [ $userlib_ok -eq 1 ]; then
		mkdir -p "$stage/userlib/tests"
		cp userlib/tests/guest_kheap userlib/tests/guest_kheap_shared \
			userlib/tests/guest_dma userlib/tests/guest_retain \
			userlib/tests/test_preload \
			"$stage/userlib/tests/"
		cp -a userlib/libkheap.so.1* userlib/libkheap-preload.so "$stage/userlib/"
	else
		cat "$out/userlib-build.txt"
		check_result "userlib guest tests build" 1
	fi
	# kheapctl and its guest tests; tools/tests/run.sh documents the layout.
	if make -s -C userlib > "$out/tools-build.txt" 2>&1 &&
		make -s -C tools all tests >> "$out/tools-build.txt" 2>&1; then
		mkdir -p "$stage/tools/tests" "$stage/module"
		cp tools/kheapctl "$stage/tools/"
		cp tools/tests/*.sh tools/tests/json-check tools/tests/kheap-hold \
			tools/tests/kheap-info tools/tests/run-as "$stage/tools/tests/"
		cp "$out/src/module/kheap.ko" "$stage/module/kheap.ko"
		if [ -f "$build/dkms/$krel/kheap.ko" ]; then
			mkdir -p "$stage/dkms" && cp "$build/dkms/$krel/kheap.ko" "$stage/dkms/"
		fi
		if [ -x "$build/install/install/pc-hello" ]; then
			mkdir -p "$stage/install" && cp -a "$build/install/install/." "$stage/install/"
		fi
		for s2 in $series; do
			k2=$(scripts/kernels.sh "$s2") || continue
			[ "$k2" != "$krel" ] && [ -f "$build/$k2/src/module/kheap.ko" ] || continue
			mkdir -p "$stage/foreign" && cp "$build/$k2/src/module/kheap.ko" "$stage/foreign/"
		done
		inst=$stage/installed
		mkdir -p "$inst/lib/modules/$krel/updates"
		cp "$out/src/module/kheap.ko" "$inst/lib/modules/$krel/updates/"
		depmod -b "$inst" "$krel" 2>/dev/null
		check_result "kheapctl build for $krel" 0
	else
		cat "$out/tools-build.txt"
		check_result "kheapctl build for $krel" 1
	fi
	KHEAP_MODBASE=${GUEST_MODBASE:-/} scripts/mkinitramfs.sh "$krel" "$stage" "$out/initramfs.cpio"

	# The main suite: one guest, or with GUEST_SPLIT=1 three that share
	# it (see main_part), booted side by side with the other two.
	main_reserved_phys=${GUEST_RESERVED_PHYS:-$reserved_phys}
	if [ "${GUEST_SPLIT:-0}" -eq 1 ]; then
		# Longest first, so that the short ones fill in at the end.
		parts="rest contig pools"
	else
		parts="all"
	fi
	for gs_part in $parts; do
		gs_sfx=$([ "$gs_part" = all ] || echo "-$gs_part")
		{
			printf '%s' "${GUEST_PROLOGUE:-}"
			cat <<RUN
export KHEAP_KO=/kheap/kheap.ko
export KHEAP_RESERVED="phys=$main_reserved_phys size=$reserved_size"
export KHEAP_EDU="$edu_direct_env" KHEAP_DMA_IOMMU=0
export KHEAP_VFIO_MODULES=/kheap/modules/vfio
export KHEAP_DMABUF_MODULES=/kheap/modules/dmabuf
status=0
cd /kheap/selftests || exit 1
RUN
			main_part "$gs_part"
			printf '%s' "${GUEST_EPILOGUE:-}"
			echo "exit \$status"
		} > "$out/run$gs_sfx.sh"
	done

	# The same initramfs behind an IOMMU: the device address tests only.
	cat > "$out/run-iommu.sh" <<RUN
${GUEST_PROLOGUE:-}export KHEAP_KO=/kheap/kheap.ko
export KHEAP_RESERVED="phys=$reserved_phys size=$reserved_size"
export KHEAP_EDU="$edu_iommu_env" KHEAP_DMA_IOMMU=1
export KHEAP_VFIO_MODULES=/kheap/modules/vfio
status=0
cd /kheap/selftests && ./kheap_dma.sh || status=1
if [ -x /kheap/userlib/tests/guest_dma ]; then
	/kheap/selftests/kheap_modload load size=64M || status=1
	/kheap/userlib/tests/guest_dma || status=1
	/kheap/selftests/kheap_modload unload || status=1
fi
${GUEST_EPILOGUE:-}exit \$status
RUN

	# The same initramfs with a large ZONE_MOVABLE: the pool placement
	# tests only (the other guests need 800 MiB of contiguous free RAM).
	cat > "$out/run-movable.sh" <<RUN
${GUEST_PROLOGUE:-}export KHEAP_KO=/kheap/kheap.ko
cd /kheap/selftests && ./kheap_movable_test
status=\$?
${GUEST_EPILOGUE:-}exit \$status
RUN

	# One after the other, or with GUEST_SPLIT=1 GUEST_JOBS at a time
	# (wait_for_slot): each TCG guest keeps about one host core busy.
	: > "$out/guests.txt"
	for gs_part in $parts; do
		gs_sfx=$([ "$gs_part" = all ] || echo "-$gs_part")
		gs_title=$([ "$gs_part" = all ] || echo " ($gs_part)")
		start_guest "$gs_sfx" "guest run on $krel$gs_title" $((900 * slow)) \
			--mem "${GUEST_MEM:-1G}" \
			--append "nokaslr memmap=$reserved_size\$$main_reserved_phys" \
			--qemu "$edu_direct"
	done
	start_guest -iommu "guest run with IOMMU on $krel" $((900 * slow)) --iommu \
		--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
		--qemu "$edu_iommu"
	start_guest -movable "guest run with movablecore= on $krel" $((300 * slow)) \
		--append "nokaslr movablecore=$movablecore"
	if [ "${GUEST_SPLIT:-0}" -eq 1 ]; then
		wait
		while IFS='|' read -r gs_sfx gs_title; do
			report_guest "$gs_sfx" "$gs_title"
		done < "$out/guests.txt"
	fi

	# Over the host's root (9p, tmpfs overlay): tests/rootfs/, programs
	# that nobody here wrote.  Newest Debian kernel only: they test
	# user space, which the kernel series does not change.
	newest=$(printf '%s\n' $series | sort -V | tail -n 1)
	[ -n "$newest" ] && [ "$(scripts/kernels.sh "$newest")" = "$krel" ] || return 0
	# tests/rootfs/preload-programs.sh's runs without kheap, here at
	# native speed; the guest runs only the kheap side against them.
	ref=$out/preload-reference
	reftmp=$(mktemp -d)
	KHEAP_TOP=$top KHEAP_TMP=$reftmp PRELOAD_ONLY=reference PRELOAD_REFERENCE=$ref \
		tests/rootfs/preload-programs.sh > "$out/preload-reference.txt" 2>&1 ||
		sed 's/^/# preload-programs reference: /' "$out/preload-reference.txt"
	rm -rf "$reftmp"
	cat > "$out/run-rootfs.sh" <<RUN
${GUEST_PROLOGUE:-}export PRELOAD_REFERENCE=$ref
$top/scripts/rootfs-tests.sh $out/src/module/kheap.ko
status=\$?
${GUEST_EPILOGUE:-}exit \$status
RUN
	say "# guest $krel, host root over 9p"
	run_guest --quiet --rootfs --timeout $((1800 * slow)) \
		"$krel" "$out/initramfs.cpio" "$out/run-rootfs.sh" "$out/console-rootfs.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-rootfs.log" | tr -d '\r'
	check_result "guest run over the host root on $krel" "$rc"
}
