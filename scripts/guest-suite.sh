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
# ZONE_MOVABLE, and small enough to leave DMA32 a free 256 MiB run for the
# pool that must load outside it.
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

	cat > "$out/run.sh" <<RUN
${GUEST_PROLOGUE:-}export KHEAP_KO=/kheap/kheap.ko
export KHEAP_RESERVED="phys=$reserved_phys size=$reserved_size"
export KHEAP_EDU="$edu_direct_env" KHEAP_DMA_IOMMU=0
export KHEAP_VFIO_MODULES=/kheap/modules/vfio
export KHEAP_DMABUF_MODULES=/kheap/modules/dmabuf
status=0
cd /kheap/selftests && ./kheap.sh || status=1
./kheap_pm.sh || status=1
./kheap_dma.sh || status=1
if [ -d /kheap/userlib/tests ]; then
	/kheap/selftests/kheap_modload unload 2>/dev/null
	/kheap/selftests/kheap_modload load size=256M || status=1
	for t in /kheap/userlib/tests/guest_kheap /kheap/userlib/tests/guest_kheap_shared \
		/kheap/userlib/tests/guest_dma /kheap/userlib/tests/guest_retain; do
		\$t || status=1
	done
	# libkheap-preload.so: ENOMEM, then fallback mode
	LD_PRELOAD=/kheap/userlib/libkheap-preload.so /kheap/userlib/tests/test_preload ||
		status=1
	KHEAP_PRELOAD_FALLBACK=1 LD_PRELOAD=/kheap/userlib/libkheap-preload.so \
		/kheap/userlib/tests/test_preload || status=1
	/kheap/selftests/kheap_modload unload || status=1
fi
if [ -x /kheap/tools/tests/run.sh ]; then
	/kheap/tools/tests/run.sh || status=1
fi
# Last: it poisons a page of RAM for the rest of the boot.
/kheap/selftests/kheap_hwpoison_test || status=1
${GUEST_EPILOGUE:-}exit \$status
RUN
	say "# guest $krel"
	run_guest --quiet --timeout $((900 * slow)) \
		--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
		--qemu "$edu_direct" \
		"$krel" "$out/initramfs.cpio" "$out/run.sh" "$out/console.log"
	rc=$?
	# The guest's KTAP, without the kernel's own console lines.
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console.log" | tr -d '\r'
	check_result "guest run on $krel" "$rc"

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
	say "# guest $krel, IOMMU"
	run_guest --quiet --timeout $((900 * slow)) --iommu \
		--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
		--qemu "$edu_iommu" \
		"$krel" "$out/initramfs.cpio" "$out/run-iommu.sh" "$out/console-iommu.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-iommu.log" | tr -d '\r'
	check_result "guest run with IOMMU on $krel" "$rc"

	# The same initramfs with a large ZONE_MOVABLE: the pool placement
	# tests only (the other guests need 800 MiB of contiguous free RAM).
	cat > "$out/run-movable.sh" <<RUN
${GUEST_PROLOGUE:-}export KHEAP_KO=/kheap/kheap.ko
cd /kheap/selftests && ./kheap_movable_test
status=\$?
${GUEST_EPILOGUE:-}exit \$status
RUN
	say "# guest $krel, movablecore=$movablecore"
	run_guest --quiet --timeout $((300 * slow)) \
		--append "nokaslr movablecore=$movablecore" \
		"$krel" "$out/initramfs.cpio" "$out/run-movable.sh" "$out/console-movable.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-movable.log" | tr -d '\r'
	check_result "guest run with movablecore= on $krel" "$rc"

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
