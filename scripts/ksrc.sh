#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Extract from Debian's linux-source-SERIES tarball the few parts of the kernel
# tree that kheap's build uses: the kselftest harness and lib.mk, tools/include,
# scripts/ (checkpatch.pl) and the DRM uapi headers (kheap_dmabuf_test drives
# vgem; Debian ships them only in libdrm-dev).  The result mirrors a kernel tree, so
# selftests/ builds against it exactly as it would inside a real one.  Cached:
# extracted again only when the tarball changes.  Nothing here is committed.
# Usage: scripts/ksrc.sh SERIES DESTDIR   (prints DESTDIR when done)
set -eu
series=$1
dest=$2
tarball=/usr/src/linux-source-$series.tar.xz
[ -f "$tarball" ] || { echo "ksrc.sh: $tarball missing (scripts/deps.sh)" >&2; exit 1; }

stamp=$(stat -c %Y-%s "$tarball")
# The last file added to the list below: a cache from before it is stale.
if [ -f "$dest/.kheap-stamp" ] && [ "$(cat "$dest/.kheap-stamp")" = "$stamp" ] &&
	[ -f "$dest/include/uapi/drm/drm.h" ]; then
	echo "$dest"
	exit 0
fi

rm -rf "$dest"
mkdir -p "$dest"
top=$(tar -tJf "$tarball" | head -n 1 | cut -d/ -f1)
tar -xJf "$tarball" -C "$dest" --strip-components=1 \
	"$top/scripts" \
	"$top/include/uapi/drm" \
	"$top/tools/include" \
	"$top/tools/scripts" \
	"$top/tools/testing/selftests/lib.mk" \
	"$top/tools/testing/selftests/kselftest.h" \
	"$top/tools/testing/selftests/kselftest_harness.h" \
	"$top/tools/testing/selftests/kselftest"
echo "$stamp" > "$dest/.kheap-stamp"
echo "$dest"
