#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# scripts/run-guest.sh refuses what it cannot boot, before it boots or
# makes anything: a --root that is no directory or that QEMU's -virtfs
# option could not take (a comma or a space), an unknown option, a wrong
# number of arguments, a missing kernel image.  Host only, a second;
# KTAP on stdout.  Run by `make check`.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/a,b" "$work/with space" "$work/root"
: > "$work/initramfs.cpio"
: > "$work/run.sh"
n=0
fail=0

# expect NAME STATUS PATTERN ARGS...: run-guest.sh ARGS exits with
# STATUS, says PATTERN on stderr, and started no QEMU (no console log).
expect() {
	name=$1
	want=$2
	pattern=$3
	shift 3
	n=$((n + 1))
	rm -f "$work/console.log"
	"$top/scripts/run-guest.sh" --quiet "$@" > "$work/out.txt" 2> "$work/err.txt" < /dev/null
	rc=$?
	if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$work/err.txt" &&
		[ ! -e "$work/console.log" ]; then
		echo "ok $n run-guest.sh refuses $name (exit $rc)"
	else
		sed 's/^/# /' "$work/err.txt"
		echo "not ok $n run-guest.sh refuses $name (exit $rc, want $want and \"$pattern\")"
		fail=$((fail + 1))
	fi
}

# A kernel image that exists, so that only the case at hand is wrong.
kernel=$work/vmlinuz
: > "$kernel"
args="$work/initramfs.cpio $work/run.sh $work/console.log"

echo "TAP version 13"
echo "1..6"
# shellcheck disable=SC2086	# $args is a word list
expect "a --root that does not exist" 2 "no directory" --kernel "$kernel" --root "$work/none" krel $args
# shellcheck disable=SC2086
expect "a --root that is a file" 2 "no directory" --kernel "$kernel" --root "$kernel" krel $args
# shellcheck disable=SC2086
expect "a --root with a comma" 2 "no commas or spaces" --kernel "$kernel" --root "$work/a,b" krel $args
# shellcheck disable=SC2086
expect "a --root with a space" 2 "no commas or spaces" --kernel "$kernel" --root "$work/with space" krel $args
# shellcheck disable=SC2086
expect "an unknown option" 2 "unknown option --nope" --nope krel $args
# shellcheck disable=SC2086
expect "a missing kernel image" 1 "missing" --kernel "$work/no-vmlinuz" krel $args
echo "# Totals: pass:$((n - fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
