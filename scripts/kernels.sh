#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Print the release string of the newest installed Debian kernel of a series
# (e.g. "6.1" -> 6.1.0-56-amd64, "6.12" -> 6.12.117+deb12-amd64).  A kernel
# counts only when its image, its modules and its build headers are all here.
# Usage: scripts/kernels.sh SERIES
set -eu
series=$1
best=""
for dir in /lib/modules/*; do
	rel=${dir##*/}
	case "$rel" in
	"$series".*) ;;
	*) continue ;;
	esac
	[ -f "/boot/vmlinuz-$rel" ] && [ -e "$dir/build/Makefile" ] || continue
	best="$best $rel"
done
[ -n "$best" ] || { echo "kernels.sh: no complete $series kernel installed" >&2; exit 1; }
printf '%s\n' $best | sort -V | tail -n 1
