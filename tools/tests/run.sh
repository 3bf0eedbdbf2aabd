#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl's guest tests.  Runs inside a test guest as root; every program
# prints its own KTAP with one "# Totals:" line.  Exit status 1 if any
# program failed.
#
# Layout it expects under the guest's /kheap (see tools/tests/README):
#   /kheap/tools/kheapctl
#   /kheap/tools/tests/{run.sh,ktap.sh,*.sh,json-check,kheap-hold,kheap-info,run-as}
#   /kheap/module/kheap.ko      found by kheapctl itself as ../module/kheap.ko
#   /kheap/dkms/kheap.ko        optional: the module DKMS built for this kernel
#   /kheap/foreign/kheap.ko     optional: kheap.ko built for the other kernel
#   /kheap/installed/lib/modules/KREL/   optional: kheap.ko in updates/ plus
#                               the indices of `depmod -b /kheap/installed KREL`
#   /kheap/install/pc-hello     optional, from install-check.sh: a program
#   /kheap/install/lib/         built with pkg-config against an installed
#                               copy, and that copy's libkheap.so*
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
if [ -f "$here/../../foreign/kheap.ko" ]; then
	export KHEAPCTL_FOREIGN_MODULE="$here/../../foreign/kheap.ko"
fi
./kheapctl-errors.sh || status=1
echo "# kheapctl: unload while held"
./kheapctl-holders.sh || status=1
echo "# kheapctl: as an unprivileged user"
./kheapctl-nonroot.sh || status=1
echo "# kheapctl: devices, and map --device"
./kheapctl-devices.sh || status=1
echo "# kheapctl: the installed module, by name"
./kheapctl-installed.sh || status=1
if [ -f "$here/../../dkms/kheap.ko" ]; then
	echo "# kheapctl: the module DKMS built"
	KHEAPCTL_MODULE="$here/../../dkms/kheap.ko" KHEAPCTL_LOAD_ARGS="size=16M" \
		./kheapctl-e2e.sh || status=1
fi
if [ -x "$here/../../install/pc-hello" ]; then
	echo "# kheapctl: a program built against the installed libkheap"
	if "$KHEAPCTL" load size=16M ${KHEAPCTL_MODULE:+--module "$KHEAPCTL_MODULE"} > /tmp/pc.load 2>&1; then
		LD_LIBRARY_PATH="$here/../../install/lib" "$here/../../install/pc-hello" || status=1
		"$KHEAPCTL" unload > /dev/null 2>&1 || status=1
	else
		sed 's/^/# /' /tmp/pc.load
		echo "TAP version 13"
		echo "1..1"
		echo "not ok 1 kheapctl load for pc-hello"
		echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
		status=1
	fi
fi
exit $status
