#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Real Debian programs under kheap-run (libkheap-preload.so): each runs
# once without it and once with it, and the two outputs (stdout, stderr
# and exit status) must be byte for byte the same; every process of the
# kheap run must report (KHEAP_PRELOAD_STATS) that its heap started on the
# pool and took nothing from glibc, and the run as a whole must have held
# at least a program-specific amount of pool memory.  A request the pool
# refused (ENOMEM) is allowed when the program copes with it, as sort does
# (it asks for a buffer sized by the machine's memory, then for half):
# the identical output is the proof; the test says how many refusals.
#   python3   its own regression tests (libpython3.11-testsuite): test_dict,
#             test_list and test_json but its test_tool (which starts 15
#             interpreters), with PYTHONMALLOC=malloc so that every object
#             goes through malloc (CPython otherwise takes small objects
#             from arenas it mmaps itself); the "Ran N tests in T s" line
#             is compared with its time blanked.  test_re is left out for
#             time: with it the pair of runs took 355 s (below)
#   python3   a JSON and regex workload (20,000 records) with CPython's
#             default allocator
#   sqlite3   10^5 generated rows, two indexes, indexed queries, a join
#   gzip      a round trip of 20 MB (compressed bytes compared too)
#   xz        the same with 5 MB at -0 (20 MB at -0 took 175 s for the
#             pair of runs, at -3 several minutes)
#   git       init, add, commit, log --stat, a second commit, log -p,
#             fsck (400 files)
#   sort      10^6 lines (three keys)
#
# Rootfs guest test (run by scripts/rootfs-tests.sh; KHEAP_TOP, KHEAP_TMP).
# The runs without kheap need no kheap, so make check does them on the
# host, before the boot, at native speed:
#   PRELOAD_ONLY=reference PRELOAD_REFERENCE=DIR   (host) writes the inputs
#       and the plain runs' outputs into DIR, and runs nothing under kheap;
#   PRELOAD_REFERENCE=DIR   (guest) takes inputs and plain outputs from DIR
#       (the host's, over 9p) and runs only the kheap side.
# Without PRELOAD_REFERENCE both sides run here, one after the other.
# The plain side is the same programs with the same inputs, environment
# and working directory names, so nothing in the outputs may differ but
# what kheap would change.
# PRELOAD_SCALE=small divides the sizes by 10 (userlib/tests/preload_check.sh
# runs it so on the host over the region provider); PRELOAD_SCALE=full
# (make check-clients) adds test_re and takes xz to 20 MB.
# Time under TCG (6.12 9p-root guest, 2 GiB, 256 MiB pool), measured only
# on a 2-core host shared at load 9, per pair of runs: python regrtest
# 290-355 s, python workload 127-209 s, sqlite3 102 s, xz (20 MB) 175 s,
# gzip 31 s.
set -u
top=${KHEAP_TOP:?KHEAP_TOP unset}
tmp=${KHEAP_TMP:?KHEAP_TMP unset}
run=$top/tools/kheap-run
py=/usr/bin/python3
scale=1
full=0
[ "${PRELOAD_SCALE:-}" = small ] && scale=10
[ "${PRELOAD_SCALE:-}" = full ] && full=1
ref=${PRELOAD_REFERENCE:-}
only=${PRELOAD_ONLY:-}
if [ "$only" = reference ]; then
	[ -n "$ref" ] || { echo "PRELOAD_ONLY=reference needs PRELOAD_REFERENCE=DIR"; exit 1; }
	rm -rf "$ref" && mkdir -p "$ref" || exit 1
fi

fails=0
note() { echo "$*"; }

[ -f "${KHEAP_PRELOAD_LIB:-$top/userlib/libkheap-preload.so}" ] || {
	note "libkheap-preload.so is not built (make -C userlib)"; exit 1; }
for p in $py sqlite3 xz gzip git sort awk cmp; do
	command -v "$p" >/dev/null || { note "$p is missing (scripts/deps.sh)"; exit 1; }
done
$py -c 'import test.test_dict' 2>/dev/null || {
	note "libpython3.11-testsuite is missing (scripts/deps.sh)"; exit 1; }

# Same environment for both runs; nothing from the caller's HOME or locale.
export LC_ALL=C HOME="$tmp/home" TZ=UTC
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=kheap GIT_AUTHOR_EMAIL=k@example.org \
	GIT_COMMITTER_NAME=kheap GIT_COMMITTER_EMAIL=k@example.org \
	GIT_AUTHOR_DATE='2025-01-01T00:00:00Z' GIT_COMMITTER_DATE='2025-01-01T00:00:00Z'
mkdir -p "$HOME"

# ---- inputs, generated once (deterministic), in $in ----
in=$tmp/in
[ -n "$ref" ] && in=$ref
[ -n "$ref" ] && [ "$only" != reference ] || {
mkdir -p "$in"
n_lines=$((1000000 / scale))
awk -v n=$n_lines 'BEGIN { x = 12345
	for (i = 0; i < n; i++) {
		x = (x * 1103515245 + 12345) % 2147483648
		printf "%08x %d word%d %s\n", x, x % 1000, i % 977, (x % 7 ? "alpha" : "omega")
	} }' > "$in/lines"
# 20 MB: the lines (about 30 MB at full scale) cut to size
head -c $((20000000 / scale)) "$in/lines" > "$in/data"
xz_mb=5
[ $full = 1 ] && xz_mb=20
head -c $((xz_mb * 1000000 / scale)) "$in/data" > "$in/data5"
}
[ -s "$in/data5" ] || { echo "no inputs in $in"; exit 1; }

# compare NAME MIN_HELD COMMAND: COMMAND (sh -c, cwd $tmp/NAME.{plain,kheap})
# without and with kheap-run; outputs identical, stats clean, and the
# kheap run's processes held at least MIN_HELD bytes of pool at their peak.
compare() {
	name=$1 min=$2 cmd=$3 t0=$(date +%s)
	# The same working directory names on both sides and on both hosts.
	for mode in plain kheap; do
		d=$tmp/$name.$mode
		if [ $mode = plain ] && [ -n "$ref" ] && [ "$only" != reference ]; then
			cp "$ref/$name.plain.out" "$ref/$name.plain.err" "$tmp/" || {
				note "not ok - $name (no reference output in $ref)"
				fails=$((fails + 1)); return; }
			continue
		fi
		[ $mode = kheap ] && [ "$only" = reference ] && continue
		rm -rf "$d" && mkdir -p "$d"
		if [ $mode = plain ]; then
			(cd "$d" && sh -c "$cmd") > "$d.out" 2> "$d.err"
		else
			rm -f "$tmp/$name.stats"
			(cd "$d" && "$run" --stats="$tmp/$name.stats" sh -c "$cmd") \
				> "$d.out" 2> "$d.err"
		fi
		echo "status $?" >> "$d.out"
	done
	if [ "$only" = reference ]; then
		cp "$tmp/$name.plain.out" "$tmp/$name.plain.err" "$ref/"
		note "ok - $name (reference run without kheap; $(($(date +%s) - t0)) s)"
		rm -rf "$tmp/$name.plain"
		return
	fi
	ok=1
	for s in out err; do
		if ! cmp -s "$tmp/$name.plain.$s" "$tmp/$name.kheap.$s"; then
			ok=0
			note "# $name: std$s differs:"
			diff "$tmp/$name.plain.$s" "$tmp/$name.kheap.$s" | head -n 10 | sed 's/^/#   /'
		fi
	done
	if [ ! -s "$tmp/$name.stats" ]; then
		ok=0
		note "# $name: no statistics from the kheap run"
	else
		# glibc gave nothing and was asked to free nothing (a process
		# that never allocates does not start the heap: gzip -d)
		bad=$(grep -v ' fallback=0 fallback_bytes=0 enomem=[0-9]* early=0 foreign_free=0 foreign_realloc=0$' \
			"$tmp/$name.stats")
		[ -z "$bad" ] || { ok=0; note "# $name: a process not on kheap alone:"
			echo "$bad" | head -n 5 | sed 's/^/#   /'; }
		# a refusal is fine (sort asks for a large buffer, then for
		# less), as long as the outputs are the same: say so
		refused=$(grep -c -v ' enomem=0 ' "$tmp/$name.stats")
		[ "$refused" = 0 ] || note "# $name: $refused processes had a request refused (ENOMEM) and coped"
		peak=$(sed -n 's/.* peak_held=\([0-9]*\) .*/\1/p' "$tmp/$name.stats" |
			sort -n | tail -n 1)
		[ "${peak:-0}" -ge "$min" ] || { ok=0
			note "# $name: pool peak $peak bytes, expected at least $min"; }
	fi
	procs=$(wc -l < "$tmp/$name.stats" 2>/dev/null || echo 0)
	if [ $ok = 1 ]; then
		note "ok - $name (identical output; $procs processes on kheap, largest peak $peak bytes; $(($(date +%s) - t0)) s)"
	else
		note "not ok - $name"
		fails=$((fails + 1))
	fi
	rm -rf "$tmp/$name.plain" "$tmp/$name.kheap"
}

MIB=1048576

json_slice="test.test_json.test_decode test.test_json.test_default
	test.test_json.test_dump test.test_json.test_encode_basestring_ascii
	test.test_json.test_enum test.test_json.test_fail test.test_json.test_float
	test.test_json.test_indent test.test_json.test_pass1
	test.test_json.test_pass2 test.test_json.test_pass3
	test.test_json.test_recursion test.test_json.test_scanstring
	test.test_json.test_separators test.test_json.test_speedups
	test.test_json.test_unicode"
[ $scale = 1 ] || json_slice="test.test_json.test_decode test.test_json.test_dump"
py_tests="test.test_dict test.test_list"
[ $full = 1 ] && py_tests="$py_tests test.test_re"
[ $scale = 1 ] || py_tests="test.test_list"
json_slice=$(echo $json_slice)	# one line: it goes into a command
compare python-regrtest $((4 * MIB)) "PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1 \
	$py -m unittest -v $py_tests $json_slice 2>&1 |
	sed 's/^\(Ran [0-9]* tests* in \).*/\1T/'"

compare python-default $MIB "PYTHONDONTWRITEBYTECODE=1 $py -c '
import json, re, hashlib
rows = [{\"id\": i, \"name\": \"n%d\" % i, \"tags\": [str(j) for j in range(i % 9)]}
        for i in range(20000 // $scale)]
s = json.dumps(rows, sort_keys=True)
back = json.loads(s)
assert back == rows
words = re.findall(r\"n(\\d+7)\\b\", s)
print(len(s), len(words), hashlib.sha256(s.encode()).hexdigest())
'"

rows=$((100000 / scale))
compare sqlite3 $MIB "sqlite3 db.sqlite '
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, g INTEGER, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO t SELECT i, (i * 7919) % 100003, i % 97, printf(\"row-%08d-%x\", i, i * 2654435761 % 4294967296) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_gv ON t(g, v);
SELECT count(*), sum(k), max(v) FROM t;
SELECT id, k, v FROM t WHERE k BETWEEN 5000 AND 5100 ORDER BY k;
SELECT g, count(*), min(v), max(v) FROM t GROUP BY g ORDER BY g;
SELECT count(*) FROM t a JOIN t b ON a.k = b.id WHERE b.g = 3;
EXPLAIN QUERY PLAN SELECT * FROM t WHERE k = 77;
SELECT v FROM t WHERE g = 42 AND v > \"row-0005\" ORDER BY v LIMIT 20;
PRAGMA integrity_check;
'"

compare xz $((8 * MIB / scale)) "xz -T1 -0 -c $in/data5 > data.xz && xz -dc data.xz | cmp - $in/data5 &&
	ls -l data.xz | awk '{ print \$5 }' && cksum < data.xz"

compare gzip $MIB "gzip -n -6 -c $in/data > data.gz && gzip -dc data.gz | cmp - $in/data &&
	cksum < data.gz"

nfiles=$((400 / scale))
compare git $MIB "git init -q -b main repo && cd repo &&
	mkdir d0 d1 d2 d3 d4 d5 d6 d7 d8 d9 &&
	awk -v n=$nfiles 'BEGIN { for (i = 0; i < n; i++) {
		f = sprintf(\"d%d/f%04d.txt\", i % 10, i)
		for (j = 0; j < 50 + i % 40; j++) print \"file\", i, \"line\", j, (i * j) % 13 > f
		close(f) } }' &&
	git add . && git commit -q -m 'generated tree' &&
	sed -i 's/line 3 /line three /' d1/*.txt && git rm -q d2/f0002.txt &&
	git commit -q -a -m 'second' && git log --stat && git log -p -1 | head -n 200 &&
	git fsck --strict 2>&1 && git count-objects | cut -d, -f1"

compare sort $((8 * MIB / scale)) "sort -k3,3 -k2,2n -k1,1r $in/lines > sorted &&
	cksum < sorted && sort -c -k3,3 -k2,2n -k1,1r sorted && sort -u -k2,2n $in/lines | head -n 5"

[ -n "$ref" ] || rm -rf "$in"
[ $fails = 0 ]
