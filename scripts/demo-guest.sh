#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The kheap demo proper: kheapctl load, status, map, unload, each command
# shown before its output.  Runs as root, in a test guest (as /kheap/run.sh,
# through scripts/demo.sh) or on the host (`sudo make demo HOST=1`).  Stops
# at the first failing step, unloading the module if it loaded it, and exits
# non-zero then.
# Usage: scripts/demo-guest.sh KHEAPCTL [LOAD-ARGS...]   (default size=64M)
K=${1:?usage: demo-guest.sh KHEAPCTL [LOAD-ARGS...]}
shift
[ $# -gt 0 ] || set -- size=64M
loaded=0

step() {
	printf '\n$ kheapctl %s\n' "$*"
	"$K" "$@"
	rc=$?
	if [ $rc -ne 0 ]; then
		printf '\ndemo: "kheapctl %s" failed (exit %d)\n' "$*" "$rc"
		[ $loaded -eq 1 ] && [ "$1" != unload ] && "$K" unload >/dev/null 2>&1
		exit 1
	fi
}

step load "$@"
loaded=1
step status
step map
step unload
printf '\ndemo: done\n'
