# SPDX-License-Identifier: GPL-2.0-only
#
# KTAP helpers for kheapctl's guest tests (sourced, busybox sh).  Each test
# program declares its plan, reports every case, and ends with ktap_done,
# which prints exactly one "# Totals:" line and fails if any case failed.
# Cases never reached are reported as failed, so the plan always holds.

KTAP_PLAN=0
KTAP_N=0
KTAP_PASS=0
KTAP_FAIL=0
KTAP_SKIP=0

ktap_plan() { # COUNT
	KTAP_PLAN=$1
	echo "TAP version 13"
	echo "1..$1"
}

ktap_result() { # STATUS NAME
	KTAP_N=$((KTAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $KTAP_N $2"
		KTAP_PASS=$((KTAP_PASS + 1))
	else
		echo "not ok $KTAP_N $2"
		KTAP_FAIL=$((KTAP_FAIL + 1))
	fi
}

ktap_skip() { # NAME REASON
	KTAP_N=$((KTAP_N + 1))
	echo "ok $KTAP_N $1 # SKIP $2"
	KTAP_SKIP=$((KTAP_SKIP + 1))
}

ktap_diag() { # FILE...: show files as KTAP diagnostics
	for f in "$@"; do
		[ -s "$f" ] && sed 's/^/# /' "$f"
	done
	return 0
}

ktap_done() {
	while [ "$KTAP_N" -lt "$KTAP_PLAN" ]; do
		ktap_result 1 "not reached"
	done
	echo "# Totals: pass:$KTAP_PASS fail:$KTAP_FAIL xfail:0 xpass:0 skip:$KTAP_SKIP error:0"
	[ "$KTAP_FAIL" -eq 0 ]
}

# INFO field from kheap-info's output file.
info_get() { # FILE NAME
	awk -v k="$2" '$1 == k { print $2 }' "$1"
}

# Wait until FILE is non-empty, at most SECS seconds.
wait_file() { # FILE SECS
	i=0
	while [ ! -s "$1" ] && [ "$i" -lt $(($2 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -s "$1" ]
}
