# SPDX-License-Identifier: MIT
"""libkheap.so.1 through ctypes: prototypes and errno -> exception.

ctypes rather than cffi or a C extension: every call here is per buffer
(allocate, free, sync, an address), never per element, so the microsecond
a ctypes call costs does not show; the element accesses are numpy's own.
ctypes is part of Python, so the package needs nothing beyond Debian's
python3 and python3-numpy, no compiler at install time, and one build
serves every Python 3 version.  Robustness comes from declaring every
prototype below (argtypes/restype, so a wrong argument is a TypeError,
not a truncated pointer) and from use_errno, which reads errno right
after the call, before Python code can change it.
"""
import ctypes
import ctypes.util
import errno
import os

# KHEAP_LIBRARY names another build (the tests use the tree's own).
_SONAME = "libkheap.so.1"


def _load():
    path = os.environ.get("KHEAP_LIBRARY") or _SONAME
    try:
        return ctypes.CDLL(path, use_errno=True)
    except OSError as e:
        raise ImportError(
            f"kheap: cannot load {path} ({e}); install libkheap1 "
            "(or `make install`), or set KHEAP_LIBRARY to its path") from e


lib = _load()

c_size_t = ctypes.c_size_t
c_void_p = ctypes.c_void_p
c_uint64 = ctypes.c_uint64


class Stats(ctypes.Structure):
    """struct kheap_stats (kheap.h)."""
    _fields_ = [(name, c_uint64) for name in (
        "bytes_in_use", "bytes_cached", "peak_in_use", "bytes_held",
        "chunks_held", "peak_held", "failed_requests", "largest_free",
        "pool_size", "pool_free", "arena_size", "chunks_cached",
        "bytes_chunks_cached", "chunk_reuses")] + [
        ("reserved", c_uint64 * 2)]


# kheap_stats() writes 16 words: the struct must be exactly that.
if ctypes.sizeof(Stats) != 16 * 8:
    raise ImportError("kheap: struct kheap_stats is not 16 words here")


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


calloc = _proto("kheap_calloc", c_void_p, c_size_t, c_size_t)
aligned_alloc = _proto("kheap_aligned_alloc", c_void_p, c_size_t, c_size_t)
free = _proto("kheap_free", None, c_void_p)
usable_size = _proto("kheap_malloc_usable_size", c_size_t, c_void_p)
phys = _proto("kheap_phys", c_uint64, c_void_p)
phys_to_virt = _proto("kheap_phys_to_virt", c_void_p, c_uint64)
stats = _proto("kheap_stats", ctypes.c_int, ctypes.POINTER(Stats))
attach_bits = _proto("kheap_attach_bits", ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint)
detach = _proto("kheap_detach", ctypes.c_int, ctypes.c_int)
dma_addr = _proto("kheap_dma_addr", c_uint64, c_void_p, ctypes.c_int)
try:
    sync = _proto("kheap_sync", ctypes.c_int, c_void_p, c_size_t,
                  ctypes.c_int)
except AttributeError as e:
    raise ImportError("kheap: this libkheap.so.1 predates kheap_sync() "
                      "(libkheap 1.3): install a newer libkheap1") from e
# kheap_trim() (libkheap 1.4) is optional: only kheap.trim() needs it.
try:
    trim = _proto("kheap_trim", c_size_t)
except AttributeError:
    trim = None

# kheap.h
SYNC_FOR_DEVICE = 1
SYNC_FOR_CPU = 2


def device_path():
    """The node libkheap opens, as it chooses it."""
    return os.environ.get("KHEAP_DEVICE") or "/dev/kheap"


def error(what, err=None):
    """The exception for errno err (default: the last call's errno)."""
    if err is None:
        err = ctypes.get_errno()
    msg = f"{what}: {os.strerror(err)}"
    if err == errno.ENOMEM:
        return MemoryError(msg)
    if err == errno.ENODEV:
        msg += (f" (no usable {device_path()}: is the kheap module "
                "loaded? KHEAP_DEVICE names another node)")
    # OSError picks the subclass: EACCES/EPERM give PermissionError.
    return OSError(err, msg)
