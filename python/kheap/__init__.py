# SPDX-License-Identifier: MIT
"""kheap: numpy arrays in physically contiguous memory, PYNQ's way.

    import numpy as np
    from kheap import allocate

    buf = allocate(shape=(1024,), dtype=np.uint32)
    buf[:] = np.arange(1024)
    buf.flush()                       # CPU wrote: a device may read
    dma = buf.physical_address        # hand this to the device
    buf[512:].physical_address == dma + 2048
    buf.freebuffer()

The memory comes from libkheap (libkheap.so.1, the kheap kernel module's
allocator): every buffer is physically contiguous, and the address of any
byte is one addition away.  A device behind an IOMMU sees other addresses:
allocate(..., device="0000:03:00.0") and read .device_address.
"""
from ._buffer import (KheapBuffer, PynqBuffer, allocate, dma_addr, phys,
                      phys_to_virt)
from ._device import Device, DeviceError, attach
from ._info import info, stats, trim

__version__ = "0.1.0"
__all__ = ["allocate", "KheapBuffer", "PynqBuffer", "phys", "phys_to_virt",
           "dma_addr",
           "attach", "Device", "DeviceError", "info", "stats", "trim"]
