#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `kheapctl unload` while the module is busy, in a guest: it exits 1 and
# names the process that holds /dev/kheap, first through an open file
# descriptor, then through a mapping alone (descriptor closed); once the
# holder is gone, unload succeeds.
#
# Environment: KHEAPCTL (default ../kheapctl), KHEAPCTL_MODULE (--module).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
T=$(mktemp -d)
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$T"' EXIT

ktap_plan 8
"$K" unload >/dev/null 2>&1
# shellcheck disable=SC2086
"$K" load size=8M ${KHEAPCTL_MODULE:+--module "$KHEAPCTL_MODULE"} > "$T/load" 2>&1
ktap_result $? "load size=8M"
ktap_diag "$T/load"

hold() { # fd|map
	rm -f "$T/ready"
	kheap-hold "$1" "$T/ready" &
	holder=$!
	wait_file "$T/ready" 10
}

stop_holder() {
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	holder=
}

hold fd
ktap_result $? "a process opens /dev/kheap"
"$K" unload > "$T/out" 2>&1
rc=$?
ktap_diag "$T/out"
[ $rc -eq 1 ] && grep -q "in use" "$T/out" &&
	grep -q "pid $holder (kheap-hold): /dev/kheap open as fd [0-9]" "$T/out" &&
	[ -e /sys/module/kheap ]
ktap_result $? "unload refuses and names pid $holder with its open fd"
stop_holder

hold map
ktap_result $? "a process maps a chunk and closes its descriptor"
"$K" unload > "$T/out" 2>&1
rc=$?
ktap_diag "$T/out"
[ $rc -eq 1 ] && grep -q "pid $holder (kheap-hold): 1 mapping of /dev/kheap" "$T/out" &&
	! grep -q "pid $holder (kheap-hold): /dev/kheap open" "$T/out"
ktap_result $? "unload refuses and names pid $holder with its mapping"

"$K" status --json > "$T/st.json" 2>&1 &&
	[ "$(json-check "$T/st.json" .pool.chunks_in_use)" -ge 1 ]
ktap_result $? "status shows the held chunk"
stop_holder

i=0
while ! "$K" unload > "$T/out" 2>&1 && [ $i -lt 20 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ ! -e /sys/module/kheap ]
ktap_result $? "unload succeeds once the holder is gone"
ktap_diag "$T/out"

"$K" status | grep -qx 'kheap: not loaded'
ktap_result $? "status says not loaded"

ktap_done
