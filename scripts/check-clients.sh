#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make check-clients`: the tests of tests/rootfs-slow/, too slow under TCG
# for `make check`, in a 6.12 guest over the host's root (run-guest.sh
# --rootfs): Debian's own programs under kheap-run compared byte for byte
# with runs without it (preload-programs.sh).  Its time is in its KTAP
# comments: well over half an hour on 2 cores.  (The Debian packages are
# installed, used and purged by make check: scripts/deb-install-check.sh.)
# The last line sums the KTAP as `make check` does.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
build=${BUILD:-$top/build}
krel=$(scripts/kernels.sh 6.12) || exit 1
out=$build/$krel
log=$build/check-clients.log
mkdir -p "$out"

run_all() {
	scripts/deps.sh || return 1
	rm -rf "$out/src" && mkdir -p "$out/src"
	cp -a Kbuild module include "$out/src/"
	make -s -C "/lib/modules/$krel/build" M="$out/src" modules \
		> "$out/module-build.txt" 2>&1 || { cat "$out/module-build.txt"; return 1; }
	make -s -C userlib all guest-tests >/dev/null &&
		make -s -C tools all >/dev/null || return 1
	stage=$out/clients-stage
	rm -rf "$stage" && mkdir -p "$stage/bin"
	gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" scripts/guest-exit.c
	scripts/mkinitramfs.sh "$krel" "$stage" "$out/clients.cpio"
	cat > "$out/run-clients.sh" <<RUN
$top/scripts/rootfs-tests.sh $out/src/module/kheap.ko $top/tests/rootfs-slow/*.sh
RUN
	scripts/run-guest.sh --quiet --rootfs --timeout 5400 \
		"$krel" "$out/clients.cpio" "$out/run-clients.sh" "$out/console-clients.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-clients.log" | tr -d '\r'
	return $rc
}

run_all 2>&1 | tee "$log"
scripts/ktap-sum.sh "$log"
