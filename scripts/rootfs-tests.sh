#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Inside a guest booted over the host's root (run-guest.sh --rootfs): run
# every tests/rootfs/*.sh as one test and print KTAP.  Each test gets a
# fresh kheap.ko (a 256 MiB contiguous pool, /dev/kheap open to everyone),
# which is unloaded again after it: a test that leaves the module busy
# fails.  Exit status of a test: 0 pass, 4 skip (KSFT_SKIP), else fail.
# Its output is shown with a "# " prefix.  Each test gets:
#   KHEAP_TOP   the repository (the host's, read-only)
#   KHEAP_KREL  the guest kernel release
#   KHEAP_KO    kheap.ko built for it
#   KHEAP_TMP   an empty writable directory of its own
# Usage: scripts/rootfs-tests.sh KHEAP_KO [TEST...]  (default: all of them)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
ko=$1
shift
if [ $# -gt 0 ]; then
	tests="$*"
else
	tests=$(ls "$top"/tests/rootfs/*.sh 2>/dev/null)
fi
n=$(echo "$tests" | wc -w)
export KHEAP_TOP="$top" KHEAP_KREL="$(uname -r)" KHEAP_KO="$ko"

echo "TAP version 13"
echo "1..$n"
i=0 pass=0 fail=0 skip=0
for t in $tests; do
	i=$((i + 1))
	name=$(basename "$t" .sh)
	rmmod kheap 2>/dev/null
	if ! insmod "$ko" size=256M; then
		echo "not ok $i $name # kheap.ko would not load"
		fail=$((fail + 1))
		continue
	fi
	chmod 0666 /dev/kheap
	KHEAP_TMP=$(mktemp -d /tmp/kheap-test.XXXXXX)
	export KHEAP_TMP
	start=$(date +%s)
	(cd "$KHEAP_TMP" && "$t") > "$KHEAP_TMP.log" 2>&1
	rc=$?
	sed 's/^/# /' "$KHEAP_TMP.log"
	echo "# $name: $(($(date +%s) - start)) s"
	rm -rf "$KHEAP_TMP" "$KHEAP_TMP.log"
	if ! rmmod kheap; then
		echo "# kheap stayed busy after $name"
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		echo "ok $i $name"
		pass=$((pass + 1))
	elif [ "$rc" -eq 4 ]; then
		echo "ok $i $name # SKIP"
		skip=$((skip + 1))
	else
		echo "not ok $i $name # exit status $rc"
		fail=$((fail + 1))
	fi
done
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ "$fail" -eq 0 ]
