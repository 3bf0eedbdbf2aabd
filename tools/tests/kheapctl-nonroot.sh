#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl for a user without privileges, in a guest.  With the device
# opened up to that user (as the udev rule does for group kheap):
#   - map succeeds: pagemap and kcore hide physical frames from it, and
#     those comparisons are reported as hidden, never as a mismatch;
#   - status works, and hides the pool's base (sysfs pool_phys is 0400);
#   - load and unload are refused with exit 1 (no CAP_SYS_MODULE).
# With restrict_phys=1 libkheap gets no physical addresses at all: map
# still succeeds and says so.
#
# Environment: KHEAPCTL (default ../kheapctl), KHEAPCTL_MODULE (--module).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
T=$(mktemp -d)
chmod 0777 "$T"
trap '"$K" unload >/dev/null 2>&1; rm -rf "$T"' EXIT
M=${KHEAPCTL_MODULE:+--module $KHEAPCTL_MODULE}
U=65534
as_user() { run-as "$U" "$@"; }

ktap_plan 9
"$K" unload >/dev/null 2>&1
# shellcheck disable=SC2086
"$K" load size=16M $M > "$T/load" 2>&1 && chmod 0666 /dev/kheap
ktap_result $? "load size=16M, /dev/kheap opened to everyone"
ktap_diag "$T/load"

as_user "$K" map --json > "$T/map.json" 2> "$T/map.err"
rc=$?
ktap_diag "$T/map.err"
[ $rc -eq 0 ] && json-check "$T/map.json" && [ "$(json-check "$T/map.json" .ok)" = true ]
ktap_result $? "map as uid $U succeeds"

[ "$(json-check "$T/map.json" .pages.mismatch)" = 0 ] &&
	[ "$(json-check "$T/map.json" .pages.hidden)" -gt 0 ] &&
	[ -z "$(json-check "$T/map.json" '.buffers[*].pages[*].agree' | grep -vx null)" ]
ktap_result $? "pagemap's frames are hidden from it, and counted as hidden"

# libkheap still knows the physical addresses (restrict_phys=0): the bytes
# are read back through kheap_phys_to_virt, kcore being closed to it.
json-check "$T/map.json" '.buffers[*].read_via' | grep -qx kheap_phys_to_virt &&
	! json-check "$T/map.json" '.buffers[*].read_via' | grep -qx kcore
ktap_result $? "without kcore the text is read back through kheap_phys_to_virt"

as_user "$K" status > "$T/status" 2>&1 && grep -q 'physical base hidden' "$T/status" ||
	grep -q 'at physical 0x' "$T/status"
rc=$?
ktap_diag "$T/status"
ktap_result $rc "status as uid $U works"

as_user "$K" unload > "$T/out" 2>&1
[ $? -eq 1 ] && grep -q 'not permitted' "$T/out" && [ -e /sys/module/kheap ]
ktap_result $? "unload as uid $U is refused: not permitted"
ktap_diag "$T/out"

"$K" unload > /dev/null 2>&1
as_user "$K" load size=16M $M > "$T/out" 2>&1
[ $? -eq 1 ] && grep -q 'not permitted' "$T/out" && [ ! -e /sys/module/kheap ]
ktap_result $? "load as uid $U is refused: not permitted"
ktap_diag "$T/out"

# shellcheck disable=SC2086
"$K" load size=16M restrict_phys=1 $M > "$T/load" 2>&1 && chmod 0666 /dev/kheap
ktap_result $? "load size=16M restrict_phys=1"
as_user "$K" map > "$T/map.txt" 2>&1
rc=$?
ktap_diag "$T/map.txt"
[ $rc -eq 0 ] && grep -q 'hidden from this user' "$T/map.txt" && grep -q 'nothing to check' "$T/map.txt" && ! grep -q MISMATCH "$T/map.txt"
ktap_result $? "with restrict_phys=1, map as uid $U succeeds and says the addresses are hidden"

ktap_done
