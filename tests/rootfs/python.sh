#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The Python binding's pytest suite (python/tests) on the real module, from
# the repository: the tree's python/kheap over the tree's libkheap.so.1
# (both built on the host before the boot), Debian's python3, numpy and
# pytest.  Adds what the host run over the region provider cannot check:
# every address against /proc/self/pagemap, info() against sysfs, a real
# PCI device's addresses, flush/invalidate through KHEAP_IOC_SYNC.
# Under TCG: 274 tests, about 2 minutes (pytest itself 63 s; numpy's import
# over 9p is most of the rest).
set -u
lib=$KHEAP_TOP/userlib/libkheap.so.1
if [ ! -e "$lib" ]; then
	echo "FAIL: $lib is not built (make -C userlib, before the boot)"
	exit 1
fi
if ! /usr/bin/python3 -c 'import numpy, pytest' 2>/dev/null; then
	echo "FAIL: python3-numpy or python3-pytest missing (scripts/deps.sh)"
	exit 1
fi
export KHEAP_LIBRARY="$lib" PYTHONPATH="$KHEAP_TOP/python" PYTHONDONTWRITEBYTECODE=1
unset KHEAP_TEST_REGION
# The repository is read-only: pytest's cache and rootdir go to scratch.
cd "$KHEAP_TMP" || exit 1
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rs --durations=5 --rootdir="$KHEAP_TMP" \
	"$KHEAP_TOP/python/tests"
