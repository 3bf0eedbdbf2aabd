#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Sourced by scripts/check.sh and scripts/check-debug.sh: the steps that are
# not test programs (builds, checkpatch, guest boots) as one KTAP block.
#   checks_init FILE         start an empty block kept in FILE
#   check_result NAME STATUS  one more "ok" (STATUS 0) or "not ok" line
#   checks_print             the block, with its "# Totals:" line

checks_init() {
	nchecks=0
	checks_out=$1
	: > "$checks_out"
}

check_result() {
	nchecks=$((nchecks + 1))
	if [ "$2" -eq 0 ]; then
		echo "ok $nchecks $1" >> "$checks_out"
	else
		echo "not ok $nchecks $1" >> "$checks_out"
	fi
}

checks_print() {
	echo "TAP version 13"
	echo "1..$nchecks"
	cat "$checks_out"
	echo "# Totals: pass:$(grep -c '^ok ' "$checks_out") fail:$(grep -c '^not ok ' "$checks_out") xfail:0 xpass:0 skip:0 error:0"
}
