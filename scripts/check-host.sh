#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `sudo make check HOST=1`: what a user runs after installing kheap on a
# machine that can load modules.  Builds kheap.ko for the running kernel,
# the selftests, libkheap's device tests and kheapctl's tests, then runs
# them all right here, against the real kernel: the selftests on a runtime
# and a buddy pool (and a reserved one when KHEAP_RESERVED="phys=ADDR
# size=SIZE" names a memmap= range this machine was booted with), then
# libkheap and kheapctl on a runtime pool.  Ends with "N passed, N failed,
# N skipped"; exit status non-zero on any failure.
#
# The tests load and unload kheap.ko themselves, so kheap must not be
# loaded when this starts.  Environment: KHEAP_RESERVED, BUILD.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
build=${BUILD:-$top/build}/host
krel=$(uname -r)
mkdir -p "$build"
log=$build/check.log

die() { printf 'check HOST=1: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "loads kheap.ko into the running kernel: run as root (sudo make check HOST=1)"
if [ "$(cat /proc/sys/kernel/modules_disabled 2>/dev/null || echo 0)" != 0 ] ||
	[ ! -e /proc/modules ]; then
	die "this kernel ($krel) cannot load modules; run \`make check\` without HOST=1 (QEMU guests)"
fi
[ -e /sys/module/kheap ] && die "kheap is loaded; unload it first (kheapctl unload): the tests load their own"

# The selftests build against Debian's kselftest harness (linux-source-6.12).
scripts/host-deps.sh linux-source-6.12 xz-utils || exit 1
ksrc=$(scripts/ksrc.sh 6.12 "$top/.cache/linux-6.12") || exit 1

run_all() {
	echo "# building for $krel"
	make -s module KERNELRELEASE="$krel" > "$build/build.txt" 2>&1 &&
	make -s -C selftests KSFT_DIR="$ksrc/tools/testing/selftests" \
		OUTPUT="$build/selftests" >> "$build/build.txt" 2>&1 &&
	make -s -C userlib all guest-tests >> "$build/build.txt" 2>&1 &&
	make -s -C tools all tests >> "$build/build.txt" 2>&1 || {
		cat "$build/build.txt"
		echo "not ok 1 build for $krel"
		echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
		return
	}
	cp selftests/*.sh "$build/selftests/"
	export KHEAP_KO="$top/module/kheap.ko"

	(cd "$build/selftests" && ./kheap.sh)

	"$build/selftests/kheap_modload" load size=256M &&
		for t in userlib/tests/guest_kheap userlib/tests/guest_kheap_shared; do
			"$top/$t"
		done
	"$build/selftests/kheap_modload" unload

	tools/tests/run.sh
}

run_all 2>&1 | tee "$log"
scripts/ktap-sum.sh "$log"
