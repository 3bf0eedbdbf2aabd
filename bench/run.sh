#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run kbench and print its lines, then the same as a Markdown table with
# the machine it ran on (what bench/README.md shows).
#   bench/run.sh            host: kheap over a region (allocator speed)
#   bench/run.sh --device   guest: kheap over /dev/kheap (end to end)
# Other arguments go to kbench (--quick, --reps N, --pool MiB, --only S).
# The tables come from bench/tables.sh (which also reads a saved output).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$here/kbench" ] || make -s -C "$here" kbench
# The glibc kbench runs with: kbench asks gnu_get_libc_version(); getconf
# as a fallback (ldd is not there in the guest's busybox).
glibc=$("$here/kbench" --libc-version 2>/dev/null) ||
	glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/^glibc //') ||
	glibc=unknown
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/kbench" "$@" | tee "$out"
echo
echo "Machine: $(uname -srm), $(nproc) CPUs," \
	"$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
	"$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo);" \
	"glibc $glibc;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
sh "$here/tables.sh" "$out"
