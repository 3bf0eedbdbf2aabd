#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The rootfs guest itself: a host program runs with its shared libraries,
# writes land in the overlay, the repository is at its host path, and
# /dev/kheap is there for an unprivileged user.  A few seconds under TCG.
set -eu
fail() { echo "FAIL: $*"; exit 1; }

# A host program with its shared libraries, from the 9p root.
out=$(python3 -c 'import sys, json; print(json.dumps({"v": sys.version_info[0]}))')
[ "$out" = '{"v": 3}' ] || fail "python3 said: $out"

# Writes land in the overlay, never on the host.
echo guest > /etc/kheap-rootfs-test || fail "the overlay refused a write"
[ "$(cat /etc/kheap-rootfs-test)" = guest ] || fail "overlay write lost"
[ -w "$KHEAP_TMP" ] || fail "no scratch directory"

# The repository is at its host path, and its kheapctl reads this pool.
ctl=$KHEAP_TOP/tools/kheapctl
[ -x "$ctl" ] || { echo "kheapctl not built"; exit 4; }
"$ctl" status > status.txt || fail "kheapctl status failed"
cat status.txt
grep -q 'pool.*268435456\|256 MiB\|256M' status.txt || fail "kheapctl does not show the 256 MiB pool"

# /dev/kheap answers an unprivileged user.
su -s /bin/sh nobody -c "test -r /dev/kheap && test -w /dev/kheap" ||
	fail "/dev/kheap not open to nobody"
echo "host programs, overlay and /dev/kheap: fine"
