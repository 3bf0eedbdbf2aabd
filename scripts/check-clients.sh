#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make check-clients`: tests/rootfs/preload-programs.sh at its full sizes
# (PRELOAD_SCALE=full: python3's test_re too, xz over 20 MB) with both
# sides, with and without kheap-run, in a 6.12 guest over the host's root
# (run-guest.sh --rootfs).  make check runs the same test at its default
# sizes, the side without kheap on the host.  Times are in its KTAP
# comments: well over half an hour on 2 cores.
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
export PRELOAD_SCALE=full
$top/scripts/rootfs-tests.sh $out/src/module/kheap.ko $top/tests/rootfs/preload-programs.sh
RUN
	scripts/run-guest.sh --quiet --rootfs --timeout 5400 \
		"$krel" "$out/clients.cpio" "$out/run-clients.sh" "$out/console-clients.log"
	rc=$?
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-clients.log" | tr -d '\r'
	return $rc
}

run_all 2>&1 | tee "$log"
scripts/ktap-sum.sh "$log"
