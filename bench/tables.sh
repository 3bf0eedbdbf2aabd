#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/tables.sh FILE: kbench's lines in FILE as the Markdown tables of
# bench/README.md: every workload; operations per microsecond at 1, 2, 4
# and 8 threads; system calls at 4 threads; utilisation per size range
# and allocator; the lookups.  A table with no lines in FILE is left out.
set -eu
in=$1
echo "| workload | kheap | glibc | jemalloc | mimalloc | kheap/glibc | kheap/best |"
echo "|---|---:|---:|---:|---:|---:|---:|"
sed -n 's/^workload=\([^ ]*\) kheap=\([^ ]*\) glibc=\([^ ]*\) jemalloc=\([^ ]*\) mimalloc=\([^ ]*\) ratio_glibc=\([^ ]*\) ratio_best=\([^ ]*\)$/| \1 | \2 | \3 | \4 | \5 | \6 | \7 |/p' "$in"
# Scaling: operations per microsecond (1000 / ns per op) at each thread
# count, per allocator, and the 8-thread figure over the 1-thread one.
grep -q '^workload=[a-z_]*_1thr ' "$in" && {
echo
echo "| workload | allocator | 1 thr | 2 thr | 4 thr | 8 thr | 8/1 |"
echo "|---|---|---:|---:|---:|---:|---:|"
awk '
/^workload=[a-z_]*_[0-9]+thr / {
	split($1, w, "="); name = w[2]
	if (!match(name, /_[0-9]+thr$/)) next
	base = substr(name, 1, RSTART - 1)
	n = substr(name, RSTART + 1, RLENGTH - 4)
	if (!(base in seen)) { seen[base] = 1; order[++nb] = base }
	for (i = 2; i <= 5; i++) {
		split($i, kv, "="); v[base, kv[1], n] = kv[2]
	}
}
END {
	split("kheap glibc jemalloc mimalloc", al, " ")
	for (b = 1; b <= nb; b++) for (a = 1; a <= 4; a++) {
		if (!((order[b], "kheap", 1) in v)) continue	# prodcons_2thr
		line = "| " order[b] " | " al[a]
		for (t = 1; t <= 8; t *= 2) {
			x = v[order[b], al[a], t]
			line = line " | " (x + 0 > 0 ? sprintf("%.3g", 1000 / x) : "n/a")
		}
		x1 = v[order[b], al[a], 1]; x8 = v[order[b], al[a], 8]
		line = line " | " (x1 + 0 > 0 && x8 + 0 > 0 ? sprintf("%.2f", x1 / x8) : "n/a") " |"
		print line
	}
}' "$in"
}
grep -q '^futex=' "$in" && {
echo
echo "| at 4 threads | futex kheap | futex glibc | futex jemalloc | futex mimalloc | syscalls kheap | syscalls glibc | vcsw kheap | vcsw glibc |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk '
/^(futex|syscalls|vcsw)=/ {
	split($1, w, "="); k = w[1]; name = w[2]
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 2; i <= 5; i++) { split($i, kv, "="); v[name, k, kv[1]] = kv[2] }
}
END {
	for (i = 1; i <= n; i++) {
		s = order[i]
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
		       v[s, "futex", "kheap"], v[s, "futex", "glibc"],
		       v[s, "futex", "jemalloc"], v[s, "futex", "mimalloc"],
		       v[s, "syscalls", "kheap"], v[s, "syscalls", "glibc"],
		       v[s, "vcsw", "kheap"], v[s, "vcsw", "glibc"]
	}
}' "$in"
}
# Utilisation: one row per size range, one column per allocator (mean of
# the seeds, the worst in brackets), then the best-fit reference (usage.c;
# "-" for the ranges it does not run).
grep -q '^utilisation=' "$in" && {
echo
echo "| utilisation, sizes | kheap | glibc | jemalloc | mimalloc | best fit, reference |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
/^utilisation=/ {
	u = ""; al = ""; sz = ""; mn = ""
	for (i = 1; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == "utilisation") u = kv[2]
		else if (kv[1] == "allocator") al = kv[2]
		else if (kv[1] == "sizes") sz = kv[2]
		else if (kv[1] == "min") mn = kv[2]
	}
	if (!(sz in seen)) { seen[sz] = 1; order[++n] = sz }
	v[sz, al] = u (mn != "" ? " (" mn ")" : "")
}
END {
	for (i = 1; i <= n; i++) {
		s = order[i]
		printf "| %s | %s | %s | %s | %s | %s |\n", s, v[s, "kheap"],
		       v[s, "glibc"], v[s, "jemalloc"], v[s, "mimalloc"],
		       ((s, "bestfit") in v) ? v[s, "bestfit"] : "-"
	}
}' "$in"
}
echo
sed -n 's/^workload=phys_lookup \(.*\)$/- phys lookup: \1/p; s/^workload=dma_lookup \(.*\)$/- device address lookup (ns) and attach cost: \1/p' "$in"
