#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl's failures, in a guest: bad module parameters are refused with
# exit 1, the errno and the kernel's own line about kheap, and leave the
# module unloaded; usage errors exit 2; loading twice, unloading when not
# loaded and a missing module file exit 1 with a clear message.
#
# Environment: KHEAPCTL (default ../kheapctl), KHEAPCTL_MODULE (--module),
# KHEAPCTL_FOREIGN_MODULE: a kheap.ko built for another kernel (else that
# case is skipped).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=${KHEAPCTL_MODULE:+--module $KHEAPCTL_MODULE}

ktap_plan 15
"$K" unload >/dev/null 2>&1

# expect_load_refused NAME ARGS...: exit 1, an errno message, a kernel line,
# and the module is not left behind.
expect_load_refused() {
	name=$1
	shift
	# shellcheck disable=SC2086
	"$K" load "$@" $M > "$T/out" 2>&1
	rc=$?
	ktap_diag "$T/out"
	ok=1
	if [ $rc -eq 1 ] && grep -q '^kheapctl: cannot load .*: ' "$T/out" &&
		grep -q '^  kernel: .*kheap' "$T/out" && [ ! -e /sys/module/kheap ]; then
		ok=0
	fi
	if [ -e /sys/module/kheap ]; then
		echo "# $name: the module was left loaded"
		"$K" unload > /dev/null 2>&1
	fi
	ktap_result $ok "$name"
}

expect_load_refused "load size=0 is refused with the kernel's reason" size=0
expect_load_refused "load size=1T (more than RAM) is refused" size=1T
expect_load_refused "load phys=0x1001 (misaligned) is refused" phys=0x1001 size=2M
expect_load_refused "load source=bogus is refused" source=bogus
grep -q 'Invalid argument' "$T/out"
ktap_result $? "source=bogus reports EINVAL"

expect_usage() { # NAME ARGS...
	name=$1
	shift
	"$K" "$@" > "$T/out" 2>&1
	rc=$?
	[ $rc -eq 2 ] && grep -q "Try 'kheapctl --help'" "$T/out"
	ok=$?
	[ $ok -eq 0 ] || { echo "# exit $rc"; ktap_diag "$T/out"; }
	ktap_result $ok "$name"
}
expect_usage "load foo=1 (unknown parameter) is a usage error" load foo=1
expect_usage "load size (no value) is a usage error" load size
expect_usage "an unknown command is a usage error" frobnicate
expect_usage "status with a stray argument is a usage error" status --yaml

"$K" unload > "$T/out" 2>&1
[ $? -eq 1 ] && grep -q 'not loaded' "$T/out"
ktap_result $? "unload when not loaded exits 1"

"$K" load --module /nonexistent/kheap.ko > "$T/out" 2>&1
[ $? -eq 1 ] && grep -q 'No such file' "$T/out"
ktap_result $? "load --module of a missing file exits 1"

"$K" map > "$T/out" 2>&1
[ $? -eq 1 ] && grep -q 'kheapctl load' "$T/out"
ktap_result $? "map without the module exits 1 and says what to do"

# shellcheck disable=SC2086
"$K" load size=4M $M > "$T/out1" 2>&1 && "$K" load size=4M $M > "$T/out" 2>&1
rc=$?
ktap_diag "$T/out1" "$T/out"
[ $rc -eq 1 ] && grep -q 'already loaded' "$T/out"
ktap_result $? "loading twice: the second load exits 1, already loaded"

"$K" unload > "$T/out" 2>&1
ktap_result $? "unload after that"

# From the module's "vermagic=<release> SMP ..." string (busybox modinfo
# wants a modules.dep even for a file).
foreign_rel=$(strings "${KHEAPCTL_FOREIGN_MODULE:-/nonexistent}" 2>/dev/null |
	sed -n 's/^vermagic=\([^ ]*\).*/\1/p' | head -n 1)
if [ -f "${KHEAPCTL_FOREIGN_MODULE:-}" ] && [ "$foreign_rel" = "$(uname -r)" ]; then
	ktap_result 1 "the foreign module is built for this very kernel ($foreign_rel)"
elif [ -f "${KHEAPCTL_FOREIGN_MODULE:-}" ]; then
	"$K" load --module "$KHEAPCTL_FOREIGN_MODULE" > "$T/out" 2>&1
	rc=$?
	ktap_diag "$T/out"
	[ $rc -eq 1 ] && grep -q 'Exec format error' "$T/out" &&
		grep -q "running kernel is $(uname -r)" "$T/out" && [ ! -e /sys/module/kheap ]
	ktap_result $? "a module built for $foreign_rel is refused, with both versions named"
	"$K" unload > /dev/null 2>&1
else
	ktap_skip "a module built for another kernel is refused" "no KHEAPCTL_FOREIGN_MODULE"
fi

ktap_done
