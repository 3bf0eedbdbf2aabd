# SPDX-License-Identifier: MIT
"""Shared helpers for the kheap binding's tests.

Two ways to run them:
  - on the real module, in a guest (tests/rootfs/python.sh): every test;
  - on the host, against userlib's build/libkheap-region.so (the same
    allocator over an ordinary mapping with made-up physical addresses):
    KHEAP_TEST_REGION=1 KHEAP_LIBRARY=.../libkheap-region.so.  Tests
    marked `kernel` (pagemap truth, INFO, real PCI devices) skip there.
"""
import ctypes
import os
import struct

import pytest

REGION = os.environ.get("KHEAP_TEST_REGION") == "1"
PAGE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kernel: needs the real kheap module (not the region "
        "provider)")


def pytest_collection_modifyitems(config, items):
    if not REGION:
        return
    skip = pytest.mark.skip(reason="needs the kheap module (region run)")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def touch(addr):
    """Fault the page in (a load), so pagemap has a frame for it."""
    return ctypes.c_char.from_address(addr).value


def pagemap_phys(addr):
    """The physical address of addr by /proc/self/pagemap, or skip the
    test when frame numbers are hidden (not root)."""
    touch(addr)
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // PAGE * 8)
        (entry,) = struct.unpack("=Q", f.read(8))
    assert entry >> 63 & 1, f"page of {addr:#x} not present"
    pfn = entry & PFN_MASK
    if pfn == 0:
        pytest.skip("pagemap hides frame numbers from this user")
    return pfn * PAGE + addr % PAGE


def check_against_pagemap(arr):
    """Every page's first byte of arr (and its last byte) is where
    arr.physical_address says: arr is physically contiguous."""
    base_v = arr.virtual_address
    base_p = arr.physical_address
    n = arr.nbytes
    if n == 0:
        return
    offsets = list(range(0, n, PAGE)) + [n - 1]
    # The first byte of every page the array touches, too.
    offsets += [PAGE - base_v % PAGE + k * PAGE
                 for k in range((n + PAGE - 1) // PAGE)
                 if PAGE - base_v % PAGE + k * PAGE < n]
    for off in offsets:
        assert pagemap_phys(base_v + off) == base_p + off, \
            f"byte {off} of {n} is not at physical {base_p + off:#x}"
