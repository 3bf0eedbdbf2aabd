#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Hibernation and a reserved pool: memmap= memory is not in a hibernation
# image, so while kheap holds a reserved pool the module refuses
# hibernation (PM notifier), with EBUSY and one kernel log line; after
# unloading, the refusal is gone (the request then fails, or not, for the
# kernel's own reasons, which this test does not exercise).
#
# Needs root, $KHEAP_RESERVED ("phys=... size=...") and a kernel with
# hibernation (/sys/power/state lists "disk").  KTAP on stdout.
dir=$(cd "$(dirname "$0")" && pwd)
ksft_skip=4

echo "TAP version 13"
echo "1..2"
if [ -z "${KHEAP_RESERVED:-}" ] || ! grep -qw disk /sys/power/state 2>/dev/null; then
	echo "ok 1 # SKIP no reserved range or no hibernation"
	echo "ok 2 # SKIP no reserved range or no hibernation"
	echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:2 error:0"
	exit $ksft_skip
fi

"$dir/kheap_modload" unload >/dev/null 2>&1
# Word splitting of $KHEAP_RESERVED into parameters is intended.
# shellcheck disable=SC2086
"$dir/kheap_modload" load $KHEAP_RESERVED source=reserved || {
	echo "not ok 1 hibernation refused with a reserved pool # load failed"
	echo "not ok 2 no kernel complaint"
	echo "# Totals: pass:0 fail:2 xfail:0 xpass:0 skip:0 error:0"
	exit 1
}
# complaints: how many kernel complaints the log holds, by the test
# guest's rule (/kernel-complaints.awk, scripts/kernel-complaints.awk)
# when it is there.  Counted from here on: earlier ones are other tests'.
complaints() {
	if [ -r /kernel-complaints.awk ]; then
		dmesg | awk -f /kernel-complaints.awk | wc -l
	else
		dmesg | grep -c -E 'WARNING:|BUG:|Oops|Kernel panic|general protection|Call Trace'
	fi
}
bad_before=$(complaints)
before=$(dmesg | grep -c 'kheap: hibernation refused')
err=$( (echo disk > /sys/power/state) 2>&1 )
rc=$?
after=$(dmesg | grep -c 'kheap: hibernation refused')
echo "# echo disk > /sys/power/state: rc $rc: $err"
pass=0 fail=0
if [ $rc -ne 0 ] && echo "$err" | grep -qi 'busy' && [ $((after - before)) -eq 1 ]; then
	echo "ok 1 hibernation refused with a reserved pool (EBUSY, one log line)"
	pass=$((pass + 1))
else
	echo "not ok 1 hibernation refused with a reserved pool (log lines: $((after - before)))"
	fail=$((fail + 1))
fi
"$dir/kheap_modload" unload >/dev/null 2>&1
if [ "$(complaints)" -ne "$bad_before" ]; then
	echo "not ok 2 no kernel complaint"
	fail=$((fail + 1))
else
	echo "ok 2 no kernel complaint"
	pass=$((pass + 1))
fi
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
