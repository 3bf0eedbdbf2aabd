#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl's guest tests.  Runs inside a test guest as root; every program
# prints its own KTAP with one "# Totals:" line.  Exit status 1 if any
# program failed.
#
# Layout it expects under the guest's /kheap (see tools/tests/README):
#   /kheap/tools/kheapctl
#   /kheap/tools/tests/{run.sh,ktap.sh,*.sh,json-check,kheap-hold,kheap-info}
#   /kheap/module/kheap.ko      found by kheapctl itself as ../module/kheap.ko
#   /kheap/dkms/kheap.ko        optional: the module DKMS built for this kernel
#
# Environment:
#   KHEAP_KO        module to use when /kheap/module/kheap.ko is absent
#   KHEAP_RESERVED  "phys=ADDR size=SIZE" of a memmap= reservation: the end
#                   to end test runs a second time on that reserved pool
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 1
export KHEAPCTL="$here/../kheapctl"
if [ ! -f "$here/../../module/kheap.ko" ] && [ -n "${KHEAP_KO:-}" ]; then
	export KHEAPCTL_MODULE="$KHEAP_KO"
fi
status=0

echo "# kheapctl: end to end, runtime pool"
KHEAPCTL_LOAD_ARGS="size=64M" ./kheapctl-e2e.sh || status=1
if [ -n "${KHEAP_RESERVED:-}" ]; then
	echo "# kheapctl: end to end, reserved pool ($KHEAP_RESERVED)"
	KHEAPCTL_LOAD_ARGS="$KHEAP_RESERVED" ./kheapctl-e2e.sh || status=1
fi
echo "# kheapctl: errors"
./kheapctl-errors.sh || status=1
echo "# kheapctl: unload while held"
./kheapctl-holders.sh || status=1
if [ -f "$here/../../dkms/kheap.ko" ]; then
	echo "# kheapctl: the module DKMS built"
	KHEAPCTL_MODULE="$here/../../dkms/kheap.ko" KHEAPCTL_LOAD_ARGS="size=16M" \
		./kheapctl-e2e.sh || status=1
fi
exit $status
