#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make shell`: a root shell in a QEMU guest running Debian's kernel over
# the host's root file system (scripts/run-guest.sh --rootfs --shell), with
# this tree's kheap.ko loaded.  Every installed program is there, the
# repository is at its host path (read-only), and writes go to a tmpfs
# overlay that vanishes at power-off.  `exit` powers the guest off; QEMU's
# monitor is on Ctrl-A c, Ctrl-A x quits at once.
#
# Environment:
#   KHEAP_SERIES  kernel series, 6.1 or 6.12 (default 6.12)
#   KHEAP_PARAMS  kheap.ko parameters (default "size=256M")
#   SHELL_ARGS    more run-guest.sh options, e.g. "--iommu --qemu '-device edu'"
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
series=${KHEAP_SERIES:-6.12}
params=${KHEAP_PARAMS:-size=256M}
krel=$(scripts/kernels.sh "$series")
out=$top/build/$krel
mkdir -p "$out"

# The module for this kernel, and the user-space tools the shell may want.
rm -rf "$out/src" && mkdir -p "$out/src"
cp -a Kbuild module include "$out/src/"
make -s -C "/lib/modules/$krel/build" M="$out/src" modules > "$out/module-build.txt" 2>&1 ||
	{ cat "$out/module-build.txt"; exit 1; }
make -s -C userlib all >/dev/null
make -s -C tools all >/dev/null

stage=$out/shell-stage
rm -rf "$stage" && mkdir -p "$stage/bin"
gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" scripts/guest-exit.c
cp "$out/src/module/kheap.ko" "$stage/kheap.ko"
scripts/mkinitramfs.sh "$krel" "$stage" "$out/shell.cpio"

cat > "$out/shell-run.sh" <<RUN
insmod /run/kheap/kheap.ko $params && chmod 0666 /dev/kheap
$top/tools/kheapctl status
cat <<'HINT'

kheap guest shell ($krel).  The repository is at $top (read-only); writes
go to RAM.  kheap.ko is loaded from /run/kheap/kheap.ko ($params).
  $top/tools/kheapctl status | map        the pool and its chunks
  rmmod kheap; insmod /run/kheap/kheap.ko size=64M source=buddy
  dmesg | tail                            the kernel's view
HINT
RUN
# shellcheck disable=SC2086	# SHELL_ARGS is a word list
exec scripts/run-guest.sh --rootfs --shell --timeout 86400 ${SHELL_ARGS:-} \
	"$krel" "$out/shell.cpio" "$out/shell-run.sh" "$out/shell-console.log"
