#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make deb`: the Debian packages (debian/), built by dpkg-buildpackage
# -us -uc in a copy of the tree under build/deb/src, so that neither the
# checkout nor its parent directory (which a fresh clone may not own)
# gets build products.  The source package, the .debs, .buildinfo and
# .changes end in build/deb/; lintian checks them and any error fails.
# Build dependencies: scripts/deps.sh.  About 1 minute on 2 cores.
# scripts/deb-install-check.sh (make check) installs, uses and purges them.
# Usage: scripts/deb.sh [OUTDIR]   (default build/deb)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
version=$(cat "$top/VERSION")
changelog_version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
if [ "$changelog_version" != "$version" ]; then
	echo "deb.sh: debian/changelog says $changelog_version, VERSION $version" >&2
	exit 1
fi

rm -rf "$out"
src=$out/src/kheap-$version
mkdir -p "$src"
# The tree as git knows it (new files included), or without build products.
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | (cd "$src" && tar -xf -)
else
	(cd "$top" && tar --exclude=./.git --exclude=./build --exclude=./.cache \
		--exclude='*.o' --exclude='*.ko' --exclude='*.a' --exclude='*.so*' \
		--exclude='.*.cmd' --exclude='*.mod' --exclude='*.mod.c' -cf - .) |
		(cd "$src" && tar -xf -)
fi

log=$out/build.log
# Debian's tools only: a python3 of pyenv or /usr/local earlier on PATH
# has no dh-python modules.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if ! (cd "$src" && dpkg-buildpackage -us -uc) > "$log" 2>&1; then
	tail -n 60 "$log" >&2
	echo "deb.sh: dpkg-buildpackage failed (log: $log)" >&2
	exit 1
fi
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo \
	"$out"/src/*.dsc "$out"/src/*.tar.* "$out"/
rm -rf "$out/src"
ls -1 "$out"/*.deb

changes=$(ls "$out"/*.changes)
lintian --fail-on error --info --display-level '>=warning' "$changes" \
	> "$out/lintian.txt" 2>&1
rc=$?
cat "$out/lintian.txt"
if [ $rc -ne 0 ]; then
	echo "deb.sh: lintian found errors" >&2
	exit 1
fi
echo "deb.sh: lintian: $(grep -c '^E:' "$out/lintian.txt") errors," \
	"$(grep -c '^W:' "$out/lintian.txt") warnings"

