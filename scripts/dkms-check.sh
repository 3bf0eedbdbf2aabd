#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Prove the DKMS packaging: dkms.conf carries ./VERSION, and `dkms add` and
# `dkms build -k KREL` of a copy of the source tree succeed for Debian's
# newest 6.1 and 6.12 kernels.  DKMS works in private trees under OUTDIR
# (--dkmstree/--sourcetree), so the machine's own /var/lib/dkms and /usr/src
# are not touched (DKMS may create its signing key /var/lib/dkms/mok.key).
# Each built module is left, decompressed, at OUTDIR/<krel>/kheap.ko for a
# guest smoke test (stage it as /kheap/dkms/kheap.ko; tools/tests/run.sh
# then runs kheapctl's end-to-end test on it).  Ends with `dkms remove
# --all`.  Prints KTAP; exit status 1 if any case failed.  Needs root.
# Usage: scripts/dkms-check.sh [OUTDIR]   (default build/dkms)
# Environment: KHEAP_SERIES (default "6.1 6.12").
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
out=${1:-$top/build/dkms}
series=${KHEAP_SERIES:-"6.1 6.12"}
version=$(cat VERSION)
tree=$out/var-lib-dkms
srctree=$out/usr-src
src=$srctree/kheap-$version
dkms() { command dkms --dkmstree "$tree" --sourcetree "$srctree" "$@"; }

# KTAP helpers shared with kheapctl's tests.
. "$top/tools/tests/ktap.sh"

nseries=$(echo "$series" | wc -w)
ktap_plan "$((nseries + 3))"
rm -rf "$out"
mkdir -p "$out" "$tree" "$srctree"
log=$out/log

confv=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
[ "$confv" = "$version" ]
ktap_result $? "dkms.conf PACKAGE_VERSION ($confv) equals VERSION ($version)"

# The copy: what DKMS needs to build the module, as `make dkms` installs it.
mkdir -p "$src/module" "$src/include/uapi/linux"
cp Kbuild Makefile VERSION dkms.conf "$src/"
cp module/Kbuild module/*.c module/*.h "$src/module/"
cp include/uapi/linux/kheap.h "$src/include/uapi/linux/"
if ! command -v dkms > /dev/null; then
	echo "# dkms is not installed (scripts/deps.sh installs it)"
	ktap_result 1 "dkms add kheap/$version"
else
	dkms add "kheap/$version" > "$log" 2>&1
	rc=$?
	[ $rc -eq 0 ] || ktap_diag "$log"
	ktap_result $rc "dkms add kheap/$version"
fi

for s in $series; do
	krel=$(scripts/kernels.sh "$s" 2>/dev/null) || { ktap_result 1 "dkms build for $s (no kernel)"; continue; }
	dkms build "kheap/$version" -k "$krel" > "$log" 2>&1
	rc=$?
	built=$(find "$tree/kheap/$version/$krel" -path '*/module/kheap.ko*' 2>/dev/null | head -n 1)
	mkdir -p "$out/$krel"
	case "$built" in
	*.xz) xz -dc "$built" > "$out/$krel/kheap.ko" ;;
	*.zst) zstd -qdc "$built" > "$out/$krel/kheap.ko" ;;
	*.gz) gzip -dc "$built" > "$out/$krel/kheap.ko" ;;
	?*) cp "$built" "$out/$krel/kheap.ko" ;;
	esac
	if [ $rc -ne 0 ] || [ ! -s "$out/$krel/kheap.ko" ] ||
		! modinfo -F vermagic "$out/$krel/kheap.ko" | grep -q "^$krel "; then
		ktap_diag "$log"
		find "$tree/kheap/$version/$krel" -name make.log -exec sed 's/^/# /' {} \; 2>/dev/null
		ktap_result 1 "dkms build -k $krel"
		continue
	fi
	echo "# $krel: $out/$krel/kheap.ko"
	ktap_result 0 "dkms build -k $krel"
done

dkms remove "kheap/$version" --all > "$log" 2>&1 && [ ! -e "$tree/kheap/$version" ]
rc=$?
[ $rc -eq 0 ] || ktap_diag "$log"
ktap_result $rc "dkms remove kheap/$version --all"
rm -rf "$srctree" "$tree" "$log"

ktap_done
