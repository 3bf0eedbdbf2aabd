#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# What a build and test on the running kernel (HOST=1) needs, and no more:
# compiler, pkg-config, libkmod, kmod and the running kernel's headers, plus
# any extra Debian packages named on the command line.  Installs only what
# is missing.  Usage: scripts/host-deps.sh [PACKAGE...]
set -eu
krel=$(uname -r)
missing=""
for p in build-essential pkg-config libkmod-dev kmod "$@"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
		missing="$missing $p"
done
# A self-built kernel has its build tree without a Debian package.
[ -e "/lib/modules/$krel/build/Makefile" ] || missing="$missing linux-headers-$krel"
[ -z "$missing" ] && exit 0

echo "host-deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing; then
	cat >&2 <<MSG
host-deps.sh: could not install:$missing.
Without a Debian headers package for the running kernel ($krel), use the
QEMU guests instead: \`make demo\` and \`make check\` without HOST=1.
MSG
	exit 1
fi
