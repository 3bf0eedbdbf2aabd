# SPDX-License-Identifier: MIT
"""allocate(): numpy arrays whose memory is one kheap block.

The block is a small object that numpy holds as the base of every array
over it (the first array, its views and slices, np.asarray() of them,
memoryviews), so the memory lives exactly as long as something can reach
it, and is given back when the last of them goes.  freebuffer() gives it
back at once, as PYNQ's does: the array and its views must not be used
after that (this module's own methods refuse; numpy's cannot know).

Addresses are computed, never stored: a view's physical address is that
of its block plus its offset in it, asked of libkheap each time, which
costs no system call and stays right in a fork child (whose copy of the
memory lives elsewhere in the pool).
"""
import ctypes
import errno
import numbers
import operator
import threading

import numpy as np

from . import _device, _lib

_SIZE_MAX = (1 << 64) - 1
_MAX_ALIGN = 1 << 30
_free_lock = threading.Lock()


class _Block:
    """One kheap_calloc'd block; numpy reads it through
    __array_interface__."""

    __slots__ = ("ptr", "nbytes", "freed", "__weakref__")

    def __init__(self, ptr, nbytes):
        self.ptr = ptr
        self.nbytes = nbytes
        self.freed = False

    @property
    def __array_interface__(self):
        return {"data": (self.ptr, False), "shape": (self.nbytes,),
                "typestr": "|u1", "version": 3}

    def release(self, _free=_lib.free, _lock=_free_lock):
        # Defaults bind what interpreter shutdown may already have
        # cleared from the module.
        with _lock:
            if self.freed:
                return
            self.freed = True
        _free(self.ptr)

    def __del__(self):
        self.release()


def _shape(shape):
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"allocate(): shape must be an int or a sequence "
                        f"of ints, not {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"allocate(): negative dimension in {shape}")
    return shape


def _stats_hint():
    st = _lib.Stats()
    if _lib.stats(st):
        return ""
    return (f" (pool of {st.pool_size} bytes, {st.pool_free} free; "
            f"largest request that fits now: {st.largest_free} bytes)")


def allocate(shape, dtype="u1", *, device=None, align=None):
    """A zero-filled KheapBuffer of this shape and dtype.

    As PYNQ's allocate(): the result is a numpy array (an ndarray
    subclass) with .physical_address, .device_address, flush(),
    invalidate(), freebuffer() and close(), usable with `with`.  Its
    memory is physically contiguous.

    device: a Device or a device name (attached now if it is not);
        .device_address then answers for it.
    align: a power of two up to 1 GiB: the first byte's virtual and
        physical alignment (default 16 bytes).

    Raises MemoryError when the pool has no room, OSError(ENODEV) when
    there is no kheap device, PermissionError when it may not be used.
    """
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise TypeError("allocate(): Python objects cannot live in kheap "
                        f"memory (dtype {dt})")
    shape = _shape(shape)
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dt.itemsize
    if align is not None:
        if (not isinstance(align, numbers.Integral) or align < 1 or
                align & (align - 1) or align > _MAX_ALIGN):
            raise ValueError("allocate(): align must be a power of two "
                             f"up to 1 GiB, not {align!r}")
    if nbytes > _SIZE_MAX // 2:
        raise MemoryError(f"allocate(): {nbytes} bytes cannot exist")
    dev = _device.resolve(device)
    if align is None:
        ptr = _lib.calloc(1, nbytes)
    else:
        ptr = _lib.aligned_alloc(int(align), nbytes)
    if not ptr:
        err = _lib.error(f"kheap: cannot allocate {nbytes} bytes")
        if isinstance(err, MemoryError):
            err = MemoryError(f"{err}{_stats_hint()}")
        raise err
    if align is not None:
        ctypes.memset(ptr, 0, nbytes)
    blk = _Block(ptr, nbytes)
    raw = np.asarray(blk)
    arr = np.ndarray.__new__(KheapBuffer, shape, dt, buffer=raw)
    arr._kheap_block = blk
    arr._kheap_device = dev
    return arr


_NOT_KHEAP = ("this array is not kheap memory (a copy, or the result of "
              "an operation): allocate() one and copy into it")


class KheapBuffer(np.ndarray):
    """A numpy array over kheap memory; see allocate()."""

    _kheap_block = None
    _kheap_device = None

    def __array_finalize__(self, obj):
        blk = getattr(obj, "_kheap_block", None)
        dev = getattr(obj, "_kheap_device", None)
        if blk is not None:
            lo, hi = np.byte_bounds(self)
            if not blk.ptr <= lo <= hi <= blk.ptr + blk.nbytes:
                blk = dev = None	# new memory: a copy or a result
        self._kheap_block = blk
        self._kheap_device = dev

    def __array_wrap__(self, arr, context=None, *args):
        out = super().__array_wrap__(arr, context, *args)
        # Results of operations are ordinary arrays, or scalars as for
        # plain arrays; out= keeps ours.
        if isinstance(out, KheapBuffer) and out._kheap_block is None:
            out = out.view(np.ndarray)
            return out[()] if out.ndim == 0 else out
        return out

    def __reduce__(self):
        # A pickle carries the bytes, never the memory: a plain array.
        return np.asarray(self).__reduce__()

    def __repr__(self):
        blk = self._kheap_block
        if blk is not None and blk.freed:
            return f"<KheapBuffer freed, {self.shape} {self.dtype}>"
        return super().__repr__()

    def __str__(self):
        blk = self._kheap_block
        if blk is not None and blk.freed:
            return self.__repr__()
        return super().__str__()

    def _block(self):
        """The live block and this array's byte offset in it."""
        blk = self._kheap_block
        if blk is None:
            raise ValueError(_NOT_KHEAP)
        if blk.freed:
            raise ValueError("the buffer was freed (freebuffer() or close())")
        return blk, self.__array_interface__["data"][0] - blk.ptr

    @property
    def virtual_address(self):
        """Address of the first element in this process."""
        self._block()
        return self.__array_interface__["data"][0]

    @property
    def physical_address(self):
        """Physical address of the first element (kheap_phys)."""
        blk, off = self._block()
        return _phys(blk.ptr) + off

    @property
    def device_address(self):
        """The device's address of the first element (kheap_dma_addr):
        the device given to allocate(), else the only attached one."""
        blk, off = self._block()
        dev = self._kheap_device or _device.default()
        return _dma_addr(blk.ptr, dev) + off

    def _sync(self, flags, what):
        self._block()
        if self.size == 0:
            return
        lo, hi = np.byte_bounds(self)
        if _lib.sync(lo, hi - lo, flags):
            raise _lib.error(f"{what}()")

    def flush(self):
        """The CPU wrote this array; a device reads it next."""
        self._sync(_lib.SYNC_FOR_DEVICE, "flush")

    def invalidate(self):
        """A device wrote this array; the CPU reads it next."""
        self._sync(_lib.SYNC_FOR_CPU, "invalidate")

    # PYNQ's other names for the same.
    sync_to_device = flush
    sync_from_device = invalidate

    def freebuffer(self):
        """Give the memory back now (all views of it included); calling
        it again does nothing."""
        blk = self._kheap_block
        if blk is None:
            raise ValueError(_NOT_KHEAP)
        blk.release()

    def close(self):
        """The same as freebuffer()."""
        self.freebuffer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.freebuffer()
        return False


# The name PYNQ code may test with isinstance().
PynqBuffer = KheapBuffer


def _phys(addr):
    p = _lib.phys(addr)
    if not p:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            raise ValueError(f"{addr:#x} is not kheap memory of this process")
        raise _lib.error("kheap_phys", err)
    return p


def _dma_addr(addr, dev):
    a = _lib.dma_addr(addr, dev.handle)
    if not a:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            raise ValueError(f"{addr:#x} is not kheap memory of this process")
        if err == errno.ENODEV:
            raise OSError(err, f"device {dev.name} went away (unbound or "
                          "removed)")
        raise _lib.error(f"kheap_dma_addr({dev.name!r})", err)
    return a


def _address(obj):
    """Address of obj's first byte: an int, an array or any buffer."""
    if isinstance(obj, KheapBuffer) and obj._kheap_block is not None:
        return obj.virtual_address		# refuses a freed buffer
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if not isinstance(obj, np.ndarray):
        obj = np.asarray(memoryview(obj))
    return obj.__array_interface__["data"][0]


def phys(obj):
    """Physical address of the first byte of obj: a kheap array (or any
    view of one, a plain ndarray over kheap memory included), an object
    with the buffer protocol, or an address.  ValueError if it is not
    kheap memory of this process; PermissionError when the module
    withholds physical addresses (restrict_phys=1)."""
    return _phys(_address(obj))


def phys_to_virt(phys_addr):
    """The address in this process of a physical byte of its kheap
    memory (kheap_phys_to_virt); ValueError if it is not one."""
    v = _lib.phys_to_virt(phys_addr)
    if not v:
        raise ValueError(f"{phys_addr:#x} is not in this process's kheap "
                         "memory")
    return v


def dma_addr(obj, device):
    """A device's address of obj's first byte (see phys())."""
    return _dma_addr(_address(obj), _device.resolve(device))
