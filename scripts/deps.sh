#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Install, from Debian's archive, everything kheap needs to build and test:
# the newest 6.1 and 6.12 kernels with their headers and sources, QEMU,
# busybox and libkmod.  Installs only what is missing, so it is cheap to run
# before every `make check`.  Usage: scripts/deps.sh [--check] [--debug]
#   --check  only report whether something is missing (exit 1 if so)
#   --debug  also what building the debug kernel of `make check-debug`
#            takes (scripts/debug-kernel.sh)
set -eu
check=0
debug=0
for arg in "$@"; do
	case "$arg" in
	--check) check=1 ;;
	--debug) debug=1 ;;
	*) echo "deps.sh: unknown option $arg" >&2; exit 2 ;;
	esac
done

# Meta-packages that always point at the newest kernel of each series.
PACKAGES="
	build-essential pkg-config make gcc perl cpio xz-utils zstd kmod
	qemu-system-x86 busybox-static libkmod-dev
	linux-image-amd64 linux-headers-amd64
	linux-image-6.12-amd64 linux-headers-6.12-amd64
	linux-source-6.1 linux-source-6.12
	libjemalloc-dev libmimalloc-dev dkms groff-base
	python3 python3-numpy python3-pytest libpython3.11-testsuite sqlite3 git
	debhelper dh-dkms dh-python python3-all python3-setuptools python3-wheel
	pybuild-plugin-pyproject dpkg-dev lintian
"
# A kernel build from linux-source-6.12.
DEBUG_PACKAGES="flex bison bc libelf-dev libssl-dev"
[ "$debug" -eq 0 ] || PACKAGES="$PACKAGES $DEBUG_PACKAGES"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi
if [ "$check" -eq 1 ]; then
	echo "missing:$missing"
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: need root to install:$missing" >&2
	exit 1
fi

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
