# SPDX-License-Identifier: MIT
"""allocate(): dtypes, shapes, contents, alignment, bad arguments."""
import numpy as np
import pytest

import kheap
from conftest import check_against_pagemap

DTYPES = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4",
          "f8", "g", "c8", "c16", "G", "S7", "U3", "M8[ns]", "m8[s]", "V5",
          np.dtype([("x", "<u2"), ("y", "<f8"), ("tag", "S3")]),
          np.dtype([("a", "u1"), ("b", "<u4")], align=True), "(3,)f4"]
SHAPES = [(), 0, 1, 7, (3, 4), (2, 3, 5), (0, 5), (4097,), (3, 1000, 2)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_dtype_and_shape(dtype, shape):
    dt = np.dtype(dtype)
    buf = kheap.allocate(shape, dtype)
    want = np.zeros(shape, dt)      # numpy's own idea of shape and dtype
    assert isinstance(buf, kheap.KheapBuffer)
    assert isinstance(buf, np.ndarray)
    assert buf.shape == want.shape and buf.dtype == want.dtype
    assert buf.nbytes == want.nbytes
    assert buf.flags.c_contiguous and buf.flags.writeable
    assert buf.flags.aligned
    assert buf.tobytes() == want.tobytes(), "not zero-filled"
    if buf.size:
        fill = np.frombuffer(np.random.default_rng(1).bytes(buf.nbytes),
                             np.uint8)
        raw = buf.reshape(-1).view(np.uint8)
        raw[:] = fill
        assert buf.tobytes() == fill.tobytes()
    assert kheap.phys(buf) == buf.physical_address
    buf.freebuffer()


def test_pynq_call_forms():
    """The ways PYNQ notebooks call allocate()."""
    a = kheap.allocate(shape=(5,), dtype=np.uint32)
    b = kheap.allocate((2, 3), np.int16)
    c = kheap.allocate(shape=(8,), dtype="u4")
    d = kheap.allocate(16)
    assert (a.shape, a.dtype) == ((5,), np.uint32)
    assert (b.shape, b.dtype) == ((2, 3), np.int16)
    assert (c.shape, c.dtype) == ((8,), np.uint32)
    assert (d.shape, d.dtype) == ((16,), np.uint8)    # default dtype u1
    assert kheap.PynqBuffer is kheap.KheapBuffer
    for x in (a, b, c, d):
        x.close()


@pytest.mark.parametrize("nbytes", [1, 4095, 4096, 70000, 3 << 20,
                                    (9 << 20) + 123])
@pytest.mark.kernel
def test_physically_contiguous(nbytes):
    buf = kheap.allocate(nbytes)
    buf[:] = 0x5A
    check_against_pagemap(buf)
    buf.freebuffer()


@pytest.mark.parametrize("align", [1, 2, 16, 64, 4096, 65536, 1 << 21,
                                   1 << 22])
def test_alignment(align):
    bufs = [kheap.allocate(n, "u1", align=align) for n in (1, 100, 5000)]
    for b in bufs:
        assert b.virtual_address % align == 0
        assert b.physical_address % align == 0
        assert not b.any(), "aligned allocations are zero-filled too"
    for b in bufs:
        b.freebuffer()


def test_alignment_zero_fill_over_dirty_memory():
    """Aligned blocks come from kheap_aligned_alloc, which does not
    clear: the binding must, also where a freed buffer left bytes."""
    for _ in range(3):
        b = kheap.allocate(70000, align=4096)
        assert not b.any()
        b[:] = 0xFF
        b.freebuffer()


@pytest.mark.parametrize("align", [0, 3, -4, 12, 1 << 31, 2.0, "16"])
def test_bad_alignment(align):
    with pytest.raises(ValueError, match="align"):
        kheap.allocate(10, align=align)


def test_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match="negative"):
        kheap.allocate(-1)
    with pytest.raises(ValueError, match="negative"):
        kheap.allocate((3, -2))
    with pytest.raises(TypeError, match="shape"):
        kheap.allocate("ten")
    with pytest.raises(TypeError, match="shape"):
        kheap.allocate((2, None))
    with pytest.raises(TypeError, match="objects"):
        kheap.allocate(3, object)
    with pytest.raises(TypeError, match="objects"):
        kheap.allocate(3, [("a", "u1"), ("o", "O")])
    with pytest.raises(TypeError):
        kheap.allocate(3, "no-such-dtype")
    with pytest.raises(TypeError):
        kheap.allocate(3, target="HP0")       # PYNQ's memory banks: none


def test_too_big_is_memory_error():
    pool = kheap.stats()["pool_size"]
    with pytest.raises(MemoryError, match="pool"):
        kheap.allocate(pool + 1)
    with pytest.raises(MemoryError):
        kheap.allocate((1 << 40, 1 << 30), "u8")   # more than can exist
    with pytest.raises(MemoryError):
        kheap.allocate(1 << 62)
    # The failures cost nothing: a buffer still comes.
    kheap.allocate(4096).freebuffer()
