# SPDX-License-Identifier: MIT
"""kheap.info() against sysfs, kheap.stats() against what was done."""
import pytest

import kheap

SYSFS = "/sys/class/misc/kheap"


def sysfs(name):
    with open(f"{SYSFS}/{name}") as f:
        return f.read().strip()


@pytest.mark.kernel
def test_info_matches_sysfs():
    i = kheap.info()
    assert i["abi_version"] >= 3
    assert i["device"] == "/dev/kheap"
    assert i["pool_size"] == int(sysfs("pool_size"))
    assert i["page_size"] == 4096
    assert i["pool_source"] == sysfs("pool_source")
    assert i["pool_phys"] == int(sysfs("pool_phys"), 0)
    assert 0 < i["largest_free"] <= i["free_bytes"] <= i["pool_size"]
    assert i["retired_bytes"] == 0
    assert set(i) == {"abi_version", "pool_phys", "pool_size", "page_size",
                      "free_bytes", "largest_free", "chunks_in_use",
                      "pool_source", "max_phys", "retired_bytes", "device"}


@pytest.mark.kernel
def test_info_sees_allocations():
    """This process is the pool's only user: what the module counts as
    held is exactly what libkheap holds, before and after a buffer."""
    def agree():
        i, st = kheap.info(), kheap.stats()
        assert i["free_bytes"] == i["pool_size"] - st["bytes_held"]
        assert i["chunks_in_use"] == st["chunks_held"]
        assert i["free_bytes"] == st["pool_free"]
    agree()
    buf = kheap.allocate(9 << 20)       # a chunk of its own
    agree()
    assert kheap.stats()["bytes_held"] >= 9 << 20
    assert 0 <= buf.physical_address - kheap.info()["pool_phys"] < \
        kheap.info()["pool_size"] - (9 << 20) + 1
    buf.freebuffer()
    agree()


@pytest.mark.kernel
def test_info_without_device(monkeypatch):
    monkeypatch.setenv("KHEAP_DEVICE", "/nonexistent/kheap")
    with pytest.raises(FileNotFoundError, match="module loaded"):
        kheap.info()


def test_stats():
    st = kheap.stats()
    assert set(st) == {"bytes_in_use", "bytes_cached", "peak_in_use",
                       "bytes_held", "chunks_held", "peak_held",
                       "failed_requests", "largest_free", "pool_size",
                       "pool_free", "arena_size", "chunks_cached",
                       "bytes_chunks_cached", "chunk_reuses"}
    buf = kheap.allocate(3 << 20)
    st2 = kheap.stats()
    assert st2["bytes_in_use"] >= st["bytes_in_use"] + (3 << 20)
    assert st2["bytes_held"] >= 3 << 20
    assert st2["peak_in_use"] >= st2["bytes_in_use"]
    buf.freebuffer()
    assert kheap.stats()["bytes_in_use"] == st["bytes_in_use"]


def test_trim():
    """Freed small buffers sit in the thread cache; trim() empties every
    cache, says how many bytes of the pool it gave back (those are gone
    from what the process holds), and leaves a live buffer alone."""
    keep = kheap.allocate(100_000)
    keep[:] = 7
    small = [kheap.allocate(64) for _ in range(200)]
    for b in small:
        b.freebuffer()
    before = kheap.stats()
    assert before["bytes_cached"] > 0
    given = kheap.trim()
    after = kheap.stats()
    assert given >= 0
    assert after["bytes_held"] == before["bytes_held"] - given
    assert after["bytes_cached"] == 0 and after["chunks_cached"] == 0
    assert after["bytes_in_use"] == before["bytes_in_use"]
    assert (keep == 7).all()
    assert kheap.trim() == 0
    keep.freebuffer()
