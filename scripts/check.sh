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

# The guest runs and their test beds: scripts/guest-suite.sh.
. scripts/guest-suite.sh

say() { printf '%s\n' "$*"; }

# Builds, checkpatch and guest boots as one KTAP block.
. scripts/ktap-checks.sh
checks_init "$build/checks.ktap"

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

# --- the Python binding over libkheap's region provider (host, ~5 s) ----------
if python/tests/host.sh > "$build/python-host.txt" 2>&1; then
	check_result "python/tests/host.sh: $(tail -n 1 "$build/python-host.txt")" 0
else
	sed 's/^/# /' "$build/python-host.txt"
	check_result "python/tests/host.sh (the binding's tests, region provider)" 1
fi

# --- bench/ compiles (-Wall -Wextra -Werror), so that it cannot rot between
# `make bench` runs; nothing of it runs here (timings are never tests) ------
if make -s -C bench clean all > "$build/bench-build.txt" 2>&1; then
	check_result "bench/ builds: kbench, kfork, kpath" 0
else
	sed 's/^/# /' "$build/bench-build.txt"
	check_result "bench/ builds: kbench, kfork, kpath" 1
fi

# --- Debian packages: make deb (dpkg-buildpackage, lintian); about 90 s --------
# Then installed in a chroot (DKMS builds for the newest kernel), used in a
# guest over that chroot, and purged: scripts/deb-install-check.sh, ~3 min.
if scripts/deb.sh "$top/build/deb" > "$build/deb.txt" 2>&1; then
	check_result "make deb: $(ls "$top"/build/deb/*.deb | wc -l) packages, lintian without errors" 0
	scripts/deb-install-check.sh "$top/build/deb" \
		"$(scripts/kernels.sh "$newest_series")" "$build/deb-install" 2>&1
else
	sed 's/^/# /' "$build/deb.txt"
	check_result "make deb (scripts/deb.sh: dpkg-buildpackage, lintian)" 1
fi

# --- kheapctl: JSON writer, make install, DKMS (host) --------------------------
make -s -C tools check 2>&1
tools/tests/install-check.sh "$(scripts/kernels.sh "$newest_series")" "$build/install" 2>&1
scripts/dkms-check.sh "$build/dkms" 2>&1

# --- the syzkaller description against the uapi header (host, 1 s) ----------
python3 syzkaller/check.py 2>&1

# --- run-guest.sh's refusals of what it cannot boot (host, 1 s) --------------
scripts/run-guest-check.sh 2>&1

# --- guests -----------------------------------------------------------------
for s in $series; do
	krel=$(scripts/kernels.sh "$s") || continue
	out=$build/$krel
	[ -f "$out/src/module/kheap.ko" ] || { check_result "guest $krel (no module)" 1; continue; }
	ksrc=$(scripts/ksrc.sh "$s" "$top/.cache/linux-$s")
	guest_suite "$krel" "$out" "$ksrc"
done

# --- our own checks, as one more KTAP block ---------------------------------
checks_print
}

run_all 2>&1 | tee "$log"

# --- verdict: every "Totals:" line of every KTAP stream, summed ---------------
scripts/ktap-sum.sh "$log"
