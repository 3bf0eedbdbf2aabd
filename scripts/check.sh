#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheap's whole test run (`make check`):
#   1. install what is missing (scripts/deps.sh);
#   2. host checks: checkpatch --strict on module/ and include/, and a W=1
#      build of kheap.ko for every kernel that must be warning-free;
#   3. host tests of the user-space library, when it has them;
#   4. for each kernel (Debian's newest 6.1 and 6.12): build kheap.ko and the
#      selftests against that kernel, pack an initramfs and run everything in
#      a QEMU guest booted with a reserved memmap= range (so the suite runs
#      with a runtime contiguous pool, a reserved pool and a buddy pool) and
#      two edu DMA engines (28 and 32 address bits, no IOMMU); then boot it
#      again with an Intel IOMMU and two 32-bit edu devices for the device
#      address tests alone (selftests/kheap_dma.sh, libkheap's guest_dma),
#      and a third time with a large ZONE_MOVABLE (movablecore=) for the
#      pool placement tests alone (selftests/kheap_movable_test).
# All KTAP goes to stdout; the last line sums every "# Totals:" line as
# "N passed, N failed".  Exit status is non-zero on any failure.
#
# Environment: KHEAP_SERIES (default "6.1 6.12"), BUILD (default ./build).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
series=${KHEAP_SERIES:-"6.1 6.12"}
build=${BUILD:-$top/build}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$build"
log=$build/check.log

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

say() { printf '%s\n' "$*"; }

# Our own KTAP block for the checks that are not test programs.
nchecks=0
checks_out=$build/checks.ktap
: > "$checks_out"
check_result() { # NAME STATUS
	nchecks=$((nchecks + 1))
	if [ "$2" -eq 0 ]; then
		echo "ok $nchecks $1" >> "$checks_out"
	else
		echo "not ok $nchecks $1" >> "$checks_out"
	fi
}

run_all() {
scripts/deps.sh || { echo "not ok 1 scripts/deps.sh"; echo "# Totals: pass:0 fail:1"; return; }

# --- host checks ------------------------------------------------------------
newest_series=$(printf '%s\n' $series | sort -V | tail -n 1)
ksrc_newest=$(scripts/ksrc.sh "$newest_series" "$top/.cache/linux-$newest_series")
if perl "$ksrc_newest/scripts/checkpatch.pl" --strict --no-tree --quiet \
	-f $(ls module/*.c module/*.h | grep -v '\.mod\.c$') include/uapi/linux/kheap.h \
	> "$build/checkpatch.txt" 2>&1; then
	check_result "checkpatch --strict module/ include/" 0
else
	cat "$build/checkpatch.txt"
	check_result "checkpatch --strict module/ include/" 1
fi

for s in $series; do
	krel=$(scripts/kernels.sh "$s") || { check_result "kernel $s installed" 1; continue; }
	out=$build/$krel
	rm -rf "$out/src" && mkdir -p "$out/src"
	cp -a Kbuild module include "$out/src/"
	if make -s -C "/lib/modules/$krel/build" M="$out/src" W=1 -j"$jobs" modules \
		> "$out/module-build.txt" 2>&1 &&
		! grep -E 'warning:|error:' "$out/module-build.txt" >/dev/null &&
		[ -f "$out/src/module/kheap.ko" ]; then
		check_result "kheap.ko W=1 build for $krel" 0
	else
		cat "$out/module-build.txt"
		check_result "kheap.ko W=1 build for $krel" 1
	fi
done

# --- host tests -------------------------------------------------------------
if [ -f userlib/Makefile ] && grep -q '^check:' userlib/Makefile; then
	make -s -C userlib check 2>&1
fi

# --- kheapctl: JSON writer, make install, DKMS (host) --------------------------
make -s -C tools check 2>&1
tools/tests/install-check.sh "$(scripts/kernels.sh "$newest_series")" "$build/install" 2>&1
scripts/dkms-check.sh "$build/dkms" 2>&1

# --- guests -----------------------------------------------------------------
for s in $series; do
	krel=$(scripts/kernels.sh "$s") || continue
	out=$build/$krel
	[ -f "$out/src/module/kheap.ko" ] || { check_result "guest $krel (no module)" 1; continue; }
	ksrc=$(scripts/ksrc.sh "$s" "$top/.cache/linux-$s")
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
		continue
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
			userlib/tests/guest_dma "$stage/userlib/tests/"
		cp -a userlib/libkheap.so.1* "$stage/userlib/"
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
	scripts/mkinitramfs.sh "$krel" "$stage" "$out/initramfs.cpio"

	cat > "$out/run.sh" <<RUN
export KHEAP_KO=/kheap/kheap.ko
export KHEAP_RESERVED="phys=$reserved_phys size=$reserved_size"
export KHEAP_EDU="$edu_direct_env" KHEAP_DMA_IOMMU=0
export KHEAP_VFIO_MODULES=/kheap/modules/vfio
status=0
cd /kheap/selftests && ./kheap.sh || status=1
./kheap_pm.sh || status=1
./kheap_dma.sh || status=1
if [ -d /kheap/userlib/tests ]; then
	/kheap/selftests/kheap_modload unload 2>/dev/null
	/kheap/selftests/kheap_modload load size=256M || status=1
	for t in /kheap/userlib/tests/guest_kheap /kheap/userlib/tests/guest_kheap_shared \
		/kheap/userlib/tests/guest_dma; do
		\$t || status=1
	done
	/kheap/selftests/kheap_modload unload || status=1
fi
if [ -x /kheap/tools/tests/run.sh ]; then
	/kheap/tools/tests/run.sh || status=1
fi
# Last: it poisons a page of RAM for the rest of the boot.
/kheap/selftests/kheap_hwpoison_test || status=1
exit \$status
RUN
	say "# guest $krel"
	scripts/run-guest.sh --quiet --timeout 900 \
		--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
		--qemu "$edu_direct" \
		"$krel" "$out/initramfs.cpio" "$out/run.sh" "$out/console.log"
	rc=$?
	# The guest's KTAP, without the kernel's own console lines.
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console.log" | tr -d '\r'
	check_result "guest run on $krel" "$rc"

	# The same initramfs behind an IOMMU: the device address tests only.
	cat > "$out/run-iommu.sh" <<RUN
export KHEAP_KO=/kheap/kheap.ko
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
exit \$status
RUN
	say "# guest $krel, IOMMU"
	scripts/run-guest.sh --quiet --timeout 900 --iommu \
		--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
		--qemu "$edu_iommu" \
		"$krel" "$out/initramfs.cpio" "$out/run-iommu.sh" "$out/console-iommu.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-iommu.log" | tr -d '\r'
	check_result "guest run with IOMMU on $krel" "$rc"

	# The same initramfs with a large ZONE_MOVABLE: the pool placement
	# tests only (the other guests need 800 MiB of contiguous free RAM).
	cat > "$out/run-movable.sh" <<RUN
export KHEAP_KO=/kheap/kheap.ko
cd /kheap/selftests && ./kheap_movable_test
RUN
	say "# guest $krel, movablecore=$movablecore"
	scripts/run-guest.sh --quiet --timeout 300 \
		--append "nokaslr movablecore=$movablecore" \
		"$krel" "$out/initramfs.cpio" "$out/run-movable.sh" "$out/console-movable.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-movable.log" | tr -d '\r'
	check_result "guest run with movablecore= on $krel" "$rc"
done

# --- our own checks, as one more KTAP block ---------------------------------
npass=$(grep -c '^ok ' "$checks_out")
nfail=$(grep -c '^not ok ' "$checks_out")
echo "TAP version 13"
echo "1..$nchecks"
cat "$checks_out"
echo "# Totals: pass:$npass fail:$nfail xfail:0 xpass:0 skip:0 error:0"
}

run_all 2>&1 | tee "$log"

# --- verdict: every "Totals:" line of every KTAP stream, summed ---------------
scripts/ktap-sum.sh "$log"
