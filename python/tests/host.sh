#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The Python binding's tests on the host, without a kernel: libkheap over
# the region provider (userlib's build/libkheap-region.so: the same
# allocator, made-up physical addresses).  Tests that need the module
# (pagemap truth, INFO, a real PCI device) skip here and run in the guest
# (tests/rootfs/python.sh).  Uses Debian's python3 with python3-numpy and
# python3-pytest.  About 5 s.  Usage: python/tests/host.sh [PYTEST-ARGS...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
make -s -C "$top/userlib" region-lib
export KHEAP_TEST_REGION=1
export KHEAP_LIBRARY="$top/userlib/build/libkheap-region.so"
export PYTHONPATH="$top/python"
export PYTHONDONTWRITEBYTECODE=1
cd "$top/python"
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q "$@" tests
