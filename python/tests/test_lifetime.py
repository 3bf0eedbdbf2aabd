# SPDX-License-Identifier: MIT
"""freebuffer(), close(), `with`, garbage collection, exhaustion, threads
and fork: the memory comes back every time, and nothing is lost."""
import gc
import os
import threading

import numpy as np
import pytest

import kheap
from conftest import REGION, pagemap_phys

MIB = 1 << 20


def in_use():
    gc.collect()        # arrays in reference cycles go back first
    return kheap.stats()["bytes_in_use"]


def test_freebuffer_returns_memory_and_is_idempotent():
    before = in_use()
    buf = kheap.allocate(5 * MIB)
    assert in_use() >= before + 5 * MIB
    buf.freebuffer()
    assert in_use() == before
    buf.freebuffer()                    # PYNQ: a second call is harmless
    buf.close()
    assert in_use() == before
    with pytest.raises(ValueError, match="freed"):
        buf.physical_address
    with pytest.raises(ValueError, match="freed"):
        buf.virtual_address
    with pytest.raises(ValueError, match="freed"):
        kheap.phys(buf)
    assert "freed" in repr(buf) and "freed" in str(buf)


def test_freebuffer_from_a_view_frees_the_block():
    before = in_use()
    buf = kheap.allocate(3 * MIB)
    buf[100:].freebuffer()
    assert in_use() == before
    with pytest.raises(ValueError, match="freed"):
        buf.physical_address


def test_context_manager():
    before = in_use()
    with kheap.allocate((256, 256), "f4") as buf:
        buf[:] = 1.5
        assert buf.sum() == 256 * 256 * 1.5
        assert in_use() > before
    assert in_use() == before
    with pytest.raises(ValueError, match="freed"):
        buf.flush()
    # An exception inside still frees, and is not swallowed.
    with pytest.raises(KeyError):
        with kheap.allocate(MIB) as buf2:
            raise KeyError("x")
    assert in_use() == before
    with pytest.raises(ValueError, match="freed"):
        buf2.physical_address


def test_garbage_collection_frees():
    before = in_use()
    pool = kheap.stats()["pool_size"]
    # Twice the pool, never freed by hand: dropped arrays give back.
    for _ in range(2 * pool // (8 * MIB)):
        b = kheap.allocate(8 * MIB)
        b[::4096] = 1
    del b
    gc.collect()
    assert in_use() == before


def test_exhaustion_raises_memory_error_and_loses_nothing():
    gc.collect()
    st = kheap.stats()
    size = 4 * MIB
    bufs = []
    with pytest.raises(MemoryError) as e:
        # Bounded: the pool cannot hold more than this many.
        for _ in range(st["pool_size"] // size + 2):
            bufs.append(kheap.allocate(size))
    assert "pool" in str(e.value)
    assert len(bufs) >= 1
    got = len(bufs)
    # What the process held stays usable, with distinct memory.
    addrs = {b.physical_address for b in bufs}
    assert len(addrs) == got
    failed = kheap.stats()["failed_requests"]
    assert failed > st["failed_requests"]
    for b in bufs:
        b.freebuffer()
    # Everything came back: as many buffers fit again.
    again = [kheap.allocate(size) for _ in range(got)]
    for b in again:
        b.freebuffer()
    assert kheap.stats()["bytes_in_use"] == st["bytes_in_use"]


def test_threads():
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                n = int(rng.integers(1, 300000))
                with kheap.allocate(n) as b:
                    b[:] = seed
                    b[n // 2:].flush()
                    if b[-1] != seed or \
                            kheap.phys(b[n - 1:]) != b.physical_address + n - 1:
                        errors.append(f"thread {seed}: bad buffer of {n}")
        except Exception as e:          # reported below
            errors.append(repr(e))

    before = in_use()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(1, 5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert in_use() == before


def test_fork_child_has_its_own_copy():
    buf = kheap.allocate(3 * MIB)
    buf[:] = 42
    parent_p = buf.physical_address
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Only os._exit from here: the child must not run pytest's code.
        ok = 0
        try:
            ok = int(buf[0] == 42 and buf[-1] == 42)
            buf[:] = 7
            p = buf.physical_address
            if not REGION:
                ok &= int(p != parent_p and pagemap_phys(buf.virtual_address) == p
                          and pagemap_phys(buf[-1:].virtual_address) == p + buf.nbytes - 1)
            buf.flush()
            buf.freebuffer()
        except BaseException:
            ok = 0
        os.write(w, bytes([ok]))
        os._exit(0)
    os.close(w)
    answer = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"\x01"
    # The parent's bytes and address are untouched.
    assert (buf == 42).all() and buf.physical_address == parent_p
    buf.freebuffer()
