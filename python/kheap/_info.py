# SPDX-License-Identifier: MIT
"""kheap.info() and kheap.stats(): the pool as the module sees it, and
this process's use of it."""
import fcntl
import os
import struct

from . import _lib

# struct kheap_info: 16 __u64 (include/uapi/linux/kheap.h).
_INFO_FIELDS = ("abi_version", "pool_phys", "pool_size", "page_size",
                "free_bytes", "largest_free", "chunks_in_use",
                "pool_source", "file_chunks", "file_bytes", "max_phys",
                "attachments", "retired_bytes")
_INFO_SIZE = 16 * 8
# _IOWR(0xD8, 0x00, struct kheap_info), as <asm-generic/ioctl.h> encodes it.
_IOC_INFO = (3 << 30) | (_INFO_SIZE << 16) | (0xD8 << 8) | 0x00
_SOURCES = {1: "reserved", 2: "contig", 3: "buddy"}


def info():
    """The module's pool (KHEAP_IOC_INFO), as a dict:

    abi_version, pool_phys (0 when withheld from this process), pool_size,
    page_size, free_bytes, largest_free, chunks_in_use (every process),
    pool_source ('reserved', 'contig' or 'buddy'), max_phys,
    retired_bytes, and device (the node asked).
    """
    path = _lib.device_path()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        hint = (" (is the kheap module loaded?)"
                if isinstance(e, FileNotFoundError) else "")
        raise type(e)(e.errno,
                      f"kheap.info(): {path}: {e.strerror}{hint}") from None
    try:
        buf = bytearray(_INFO_SIZE)
        fcntl.ioctl(fd, _IOC_INFO, buf, True)
    finally:
        os.close(fd)
    values = dict(zip(_INFO_FIELDS, struct.unpack("=16Q", buf)))
    # This file's own chunks and attachments: none, it was just opened.
    for k in ("file_chunks", "file_bytes", "attachments"):
        del values[k]
    values["pool_source"] = _SOURCES.get(values["pool_source"],
                                         str(values["pool_source"]))
    values["device"] = path
    return values


def stats():
    """This process's figures (kheap_stats()), as a dict: bytes_in_use,
    bytes_cached, peak_in_use, bytes_held, chunks_held, peak_held,
    failed_requests, largest_free, pool_size, pool_free, arena_size,
    chunks_cached, bytes_chunks_cached, chunk_reuses."""
    st = _lib.Stats()
    if _lib.stats(st):
        raise _lib.error("kheap_stats")
    return {name: getattr(st, name) for name, _ in _lib.Stats._fields_
            if name != "reserved"}


def trim():
    """Give the pool back what this process only caches (kheap_trim()):
    every thread's cache, spare slabs, empty arenas and cached chunks.
    Returns the bytes given back; buffers still allocated stay."""
    if _lib.trim is None:
        raise RuntimeError("kheap.trim: this libkheap.so.1 predates "
                           "kheap_trim() (libkheap 1.4): install a newer "
                           "libkheap1")
    return _lib.trim()
