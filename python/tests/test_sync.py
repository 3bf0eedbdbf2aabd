# SPDX-License-Identifier: MIT
"""flush() and invalidate(): kheap_sync over the exact bytes of a view.

In the guest these reach KHEAP_IOC_SYNC, which checks the chunk's token
and that the range lies inside the chunk: a wrong offset or length
(e.g. the view's offset added twice, or the whole buffer's length from
a view's start) fails with EINVAL there."""
import numpy as np
import pytest

import kheap

SIZES = [1, 100, 5000, 70000, 3 << 20, (9 << 20) + 1]


@pytest.mark.parametrize("n", SIZES)
def test_whole_and_parts(n):
    buf = kheap.allocate(n)
    for v in (buf, buf[n // 2:], buf[-1:], buf[:1], buf[::7], buf[::-1],
              buf[n - 1::-3], buf[3:3]):
        v.flush()
        v.invalidate()
        v.sync_to_device()
        v.sync_from_device()
    buf.freebuffer()


def test_strided_2d():
    buf = kheap.allocate((300, 1000), "f8")
    for v in (buf[:, -1], buf[-1], buf[::-1, ::-1], buf.T[5:], buf[299:, 999:]):
        v.flush()
        v.invalidate()
    buf.freebuffer()


def test_after_free_and_not_kheap():
    buf = kheap.allocate(4096)
    view = buf[10:]
    buf.freebuffer()
    for v in (buf, view):
        with pytest.raises(ValueError, match="freed"):
            v.flush()
        with pytest.raises(ValueError, match="freed"):
            v.invalidate()
    with pytest.raises(ValueError, match="not kheap memory"):
        (np.zeros(3) + kheap.allocate(3)).view(kheap.KheapBuffer).flush()


def test_exact_byte_ranges(monkeypatch):
    """Each view syncs exactly the bytes it spans, with the right flag
    (the real kheap_sync still runs underneath)."""
    calls = []
    real = kheap._lib.sync

    def spy(addr, length, flags):
        calls.append((addr, length, flags))
        return real(addr, length, flags)

    monkeypatch.setattr(kheap._lib, "sync", spy)
    buf = kheap.allocate((100, 50), "u2")
    v0 = buf.virtual_address
    cases = [(buf, 0, 10000), (buf[10:], 1000, 9000), (buf[:, 3], 6, 9902),
             (buf[::-1, ::-1], 0, 10000), (buf[99, 49:], 9998, 2),
             (buf[5:7, 10:12], 520, 104)]
    for view, off, length in cases:
        calls.clear()
        view.flush()
        view.invalidate()
        assert calls == [(v0 + off, length, kheap._lib.SYNC_FOR_DEVICE),
                         (v0 + off, length, kheap._lib.SYNC_FOR_CPU)]
    calls.clear()
    buf[3:3].flush()                    # nothing to sync
    assert calls == []
    buf.freebuffer()
