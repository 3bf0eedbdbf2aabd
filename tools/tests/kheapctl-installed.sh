#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl with an installed module, in a guest: with no build tree next to
# the binary, `load` finds kheap.ko by name under /lib/modules like modprobe,
# applies /etc/modprobe.d options, and lets the command line override them;
# without an installed module it says where it looked.
#
# Needs /kheap/installed/lib/modules/$(uname -r)/: kheap.ko plus depmod's
# indices (`depmod -b DIR KREL` on the host); skipped without it.
# Environment: KHEAPCTL (default ../kheapctl).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
T=$(mktemp -d)
krel=$(uname -r)
tree=$here/../../installed/lib/modules/$krel
mods=/lib/modules/$krel
added=

cleanup() {
	"$T/bin/kheapctl" unload > /dev/null 2>&1
	for f in $added; do rm -rf "${mods:?}/$f"; done
	rm -f /etc/modprobe.d/kheap.conf
	rm -rf "$T"
}
trap cleanup EXIT

ktap_plan 6
if [ ! -d "$tree" ]; then
	for name in "load by name" "modprobe.d options apply" "unload" \
		"the command line overrides modprobe.d" "unload again" "not installed: says so"; do
		ktap_skip "$name" "no installed tree at $tree"
	done
	ktap_done
	exit $?
fi
"$K" unload > /dev/null 2>&1

# A kheapctl with no build tree next to it.
mkdir -p "$T/bin" "$mods" /etc/modprobe.d
cp "$K" "$T/bin/kheapctl"
added=$(ls "$tree")
cp -a "$tree/." "$mods/"
echo "options kheap size=8M" > /etc/modprobe.d/kheap.conf

"$T/bin/kheapctl" load > "$T/out" 2>&1
rc=$?
ktap_diag "$T/out"
[ $rc -eq 0 ] && grep -q "loaded from $mods/updates/kheap.ko" "$T/out"
ktap_result $? "load by name finds $mods/updates/kheap.ko"

"$T/bin/kheapctl" status --json > "$T/st.json" 2>&1
[ "$(json-check "$T/st.json" .pool.size)" = 8388608 ]
ktap_result $? "the size from /etc/modprobe.d/kheap.conf applies (8M)"

"$T/bin/kheapctl" unload > /dev/null 2>&1
ktap_result $? "unload"

"$T/bin/kheapctl" load size=4M > "$T/out" 2>&1 &&
	"$T/bin/kheapctl" status --json > "$T/st.json" 2>&1 &&
	[ "$(json-check "$T/st.json" .pool.size)" = 4194304 ]
rc=$?
[ $rc -eq 0 ] || ktap_diag "$T/out" "$T/st.json"
ktap_result $rc "size=4M on the command line overrides modprobe.d"

"$T/bin/kheapctl" unload > /dev/null 2>&1
ktap_result $? "unload again"

for f in $added; do rm -rf "${mods:?}/$f"; done
added=
"$T/bin/kheapctl" load > "$T/out" 2>&1
rc=$?
ktap_diag "$T/out"
[ $rc -eq 1 ] && grep -q "kheap.ko not found" "$T/out" && grep -q "$krel" "$T/out"
ktap_result $? "without an installed module, load exits 1 and says where it looked"

ktap_done
