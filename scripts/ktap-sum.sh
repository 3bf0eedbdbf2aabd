#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Sum every KTAP "# Totals: pass:N fail:N ... skip:N" line of a log into the
# one closing line "N passed, N failed, N skipped".  A log without any
# Totals line counts as one failure: a run that tested nothing did not pass.
# Exit status 1 when anything failed.  Usage: scripts/ktap-sum.sh LOG
exec awk '
	match($0, /Totals: pass:[0-9]+ fail:[0-9]+/) {
		split(substr($0, RSTART, RLENGTH), f, /[: ]+/)
		pass += f[3]; fail += f[5]; blocks++
		if (match($0, /skip:[0-9]+/))
			skip += substr($0, RSTART + 5, RLENGTH - 5)
	}
	END {
		if (blocks == 0) fail++
		printf "%d passed, %d failed, %d skipped\n", pass, fail, skip
		exit fail != 0
	}' "$1"
