#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of kheapctl's JSON writer (KTAP): json-writer's awkward document
# must parse under json-check's strict parser and give back each value.
# Usage: tools/tests/json-writer-check.sh   (after make -C tools tests)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
jc="$here/json-check"

ktap_plan 9
"$here/json-writer" > "$T/doc.json" && "$jc" "$T/doc.json"
ktap_result $? "the writer's output is valid JSON"

expect() { # NAME PATH VALUE
	got=$("$jc" "$T/doc.json" "$2")
	[ "$got" = "$3" ] || echo "# $2: got [$got], want [$3]"
	[ "$got" = "$3" ]
	ktap_result $? "$1"
}
expect "quotes and backslashes round-trip" .quote 'say "hi" \ bye'
expect "valid UTF-8 is kept" .utf8 "café ✓ 😀"
expect "invalid UTF-8 becomes U+FFFD" .bad_utf8 "a�b�c�d���e"
expect "64-bit extremes are exact" .u64_max 18446744073709551615
expect "negative numbers" .i64_min -9223372036854775808
expect "a NULL string is null" .null_string null
expect "nested arrays in objects in arrays" '.nested[2].deep[0][0]' 20
grep -q 'controls": "tab\\tnl\\ncr\\rbs\\bff\\fbell\\u0007del\\u007f"' "$T/doc.json" &&
	[ "$("$jc" "$T/doc.json" .nul)" = "x" ] && grep -q '"nul": "x\\u0000y"' "$T/doc.json"
ktap_result $? "control characters and NUL are escaped"
ktap_done
