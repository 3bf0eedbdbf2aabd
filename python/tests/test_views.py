# SPDX-License-Identifier: MIT
"""Views and slices keep the right addresses; results and copies are
not kheap memory."""
import pickle

import numpy as np
import pytest

import kheap
from conftest import REGION, check_against_pagemap, pagemap_phys


@pytest.fixture
def grid():
    buf = kheap.allocate((64, 1024), "u4")     # 256 KiB, 64 pages
    buf[:] = np.arange(buf.size, dtype="u4").reshape(buf.shape)
    yield buf
    buf.freebuffer()


def views(buf):
    """(name, view, byte offset of its first element in buf)."""
    row = buf.strides[0]
    return [
        ("row 10", buf[10], 10 * row),
        ("rows 5..", buf[5:], 5 * row),
        ("tail", buf.reshape(-1)[-3:], buf.nbytes - 12),
        ("column 7", buf[:, 7], 7 * 4),
        ("every other", buf[::2, ::3], 0),
        ("reversed", buf[::-1], 63 * row),
        ("reversed cols", buf[3, ::-1], 3 * row + 1023 * 4),
        ("transposed", buf.T, 0),
        ("as bytes", buf.view(np.uint8)[1, 4001:], row + 4001),
        ("as f8", buf.view("f8")[2, 5:], 2 * row + 40),
        ("reshaped", buf.reshape(256, 256)[17:19], 17 * 1024),
        ("element", buf[63, 1023:], buf.nbytes - 4),
        ("ellipsis", buf[..., 100:], 400),
        ("newaxis", buf[np.newaxis, 9], 9 * row),
    ]


def test_views_keep_addresses(grid):
    base_p = grid.physical_address
    base_v = grid.virtual_address
    for name, v, off in views(grid):
        assert isinstance(v, kheap.KheapBuffer), name
        assert v.virtual_address == base_v + off, name
        assert v.physical_address == base_p + off, name
        # libkheap's answer for the same byte, asked directly.
        assert kheap.phys(v) == base_p + off, name
        assert kheap.phys(base_v + off) == base_p + off, name


def test_empty_views(grid):
    # numpy puts an empty slice's data pointer where it likes (at the
    # start here); its address is still one of the buffer's.
    for v in (grid[4:4], grid[:, 9:9], grid[64:]):
        assert v.size == 0
        off = v.virtual_address - grid.virtual_address
        assert 0 <= off <= grid.nbytes
        assert v.physical_address == grid.physical_address + off


def test_views_of_views(grid):
    v = grid[8:][::2][3:, 10:][1]
    off = (8 + 2 * 3 + 2) * grid.strides[0] + 10 * 4
    assert v.physical_address == grid.physical_address + off
    assert v[0] == grid[16, 10]


@pytest.mark.kernel
def test_views_against_pagemap(grid):
    for name, v, off in views(grid):
        if v.size:
            assert pagemap_phys(v.virtual_address) == v.physical_address, name
    check_against_pagemap(grid[13:])


def test_plain_ndarray_views_and_buffers(grid):
    plain = np.asarray(grid[2:])
    assert type(plain) is np.ndarray
    assert kheap.phys(plain) == grid.physical_address + 2 * 4096
    assert kheap.phys(memoryview(grid)[3:]) == grid[3:].physical_address
    assert kheap.phys(np.frombuffer(grid, "u1", offset=5)) == \
        grid.physical_address + 5


def test_copies_and_results_are_not_kheap(grid):
    for what, arr in [("copy", grid.copy()), ("astype", grid.astype("f4")),
                      ("empty_like", np.empty_like(grid)),
                      ("fancy index", grid[[1, 2]])]:
        assert not np.shares_memory(arr, grid), what
        with pytest.raises(ValueError, match="not kheap memory"):
            arr.physical_address
        with pytest.raises(ValueError, match="not kheap memory"):
            arr.flush()
        with pytest.raises(ValueError, match="not kheap memory"):
            kheap.phys(arr)
    # Operations give plain arrays and plain scalars, as numpy's do.
    assert type(grid + 1) is np.ndarray
    assert type(np.sqrt(grid)) is np.ndarray
    assert type(grid.sum()) is np.uint64
    assert type(grid[1:3].max()) is np.uint32
    assert grid.sum() == np.arange(grid.size, dtype="u8").sum()
    # Writing into the buffer keeps it.
    grid += 1
    np.multiply(grid, 2, out=grid)
    assert isinstance(grid, kheap.KheapBuffer) and grid[0, 0] == 2
    assert grid.physical_address == kheap.phys(grid)


def test_not_kheap_memory():
    with pytest.raises(ValueError, match="not kheap memory"):
        kheap.phys(np.zeros(10))
    with pytest.raises(ValueError, match="not kheap memory"):
        kheap.phys(bytearray(100))
    with pytest.raises(ValueError, match="not kheap memory"):
        kheap.phys(0)
    with pytest.raises(TypeError):
        kheap.phys("text")


def test_pickle_carries_bytes(grid):
    back = pickle.loads(pickle.dumps(grid[3:5]))
    assert type(back) is np.ndarray
    assert np.array_equal(back, grid[3:5])


def test_view_outlives_its_array():
    buf = kheap.allocate(1 << 20, "u1")
    buf[:] = 7
    tail = buf[1000:]
    p = tail.physical_address
    held = kheap.stats()["bytes_in_use"]
    del buf
    assert kheap.stats()["bytes_in_use"] == held, "freed under a view"
    assert tail.physical_address == p
    assert (tail == 7).all()
    if not REGION:
        assert pagemap_phys(tail.virtual_address) == p
    del tail
    assert kheap.stats()["bytes_in_use"] < held
