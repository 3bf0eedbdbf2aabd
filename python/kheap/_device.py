# SPDX-License-Identifier: MIT
"""Devices attached to this process's kheap memory (kheap_attach_bits).

Attaching is per process and covers every block, old and new, so one
Device object per name is kept here and handed to every buffer that
names it.  After fork() the child has no attachments (libkheap forgets
them), and neither does this table.
"""
import ctypes
import errno
import os
import threading

from . import _lib


class DeviceError(RuntimeError):
    """No device to give an address for (none attached, several, or
    detached)."""


class Device:
    """A device that reaches kheap memory at addresses of its own.

    Made by kheap.attach(); .device_address of a buffer is this device's
    address of the buffer's first byte.
    """

    def __init__(self, name, handle, dma_bits):
        self.name = name
        self.dma_bits = dma_bits
        self._handle = handle

    @property
    def attached(self):
        return self._handle is not None

    @property
    def handle(self):
        if self._handle is None:
            raise DeviceError(f"device {self.name} is detached")
        return self._handle

    def detach(self):
        """Unmap kheap memory for the device; idempotent."""
        with _lock:
            h, self._handle = self._handle, None
            if h is None:
                return
            _attached.pop(self.name, None)
            if _lib.detach(h):
                raise _lib.error(f"kheap_detach({self.name!r})")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()
        return False

    def __repr__(self):
        state = "attached" if self.attached else "detached"
        return f"<kheap.Device {self.name!r} {state}>"


_lock = threading.Lock()
_attached = {}		# name -> Device, under _lock


def attach(name, dma_bits=0):
    """Map this process's kheap memory, now and later, for a device.

    name is a PCI address as in /sys/bus/pci/devices ("0000:03:00.0") or
    "platform:NAME"; dma_bits, if not 0, is how many address bits the
    device drives.  Attaching a name twice returns the same Device.
    Raises OSError: ENODEV (no such device, or no kheap), EBUSY (owned by
    vfio-pci), ERANGE (memory held is beyond its reach without an IOMMU),
    ENOSPC (8 devices attached), PermissionError (no IOMMU translates for
    it and physical addresses are withheld).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("attach(): name is a non-empty device name")
    if not isinstance(dma_bits, int) or not 0 <= dma_bits <= 64:
        raise ValueError("attach(): dma_bits is 0 (the driver's mask) "
                         "or 1 to 64")
    with _lock:
        dev = _attached.get(name)
        if dev is not None:
            if dma_bits and dma_bits != dev.dma_bits:
                raise ValueError(f"{name} is attached with dma_bits="
                                 f"{dev.dma_bits}; detach it first")
            return dev
        h = _lib.attach_bits(name.encode(), dma_bits)
        if h < 0:
            err = ctypes.get_errno()
            if err == errno.ENODEV:
                raise OSError(err, f"kheap_attach({name!r}): no such "
                              "device (or no kheap module)")
            raise _lib.error(f"kheap_attach({name!r})", err)
        dev = Device(name, h, dma_bits)
        _attached[name] = dev
        return dev


def attached():
    """The devices attached now."""
    with _lock:
        return list(_attached.values())


def resolve(device):
    """A buffer's device: None, a Device, or a name to attach."""
    if device is None or isinstance(device, Device):
        return device
    return attach(device)


def default():
    """The device of a buffer allocated without one: the only one."""
    devs = attached()
    if len(devs) == 1:
        return devs[0]
    if not devs:
        raise DeviceError(
            "no device is attached, so there is no device address: "
            "allocate(..., device='0000:03:00.0') or kheap.attach() "
            "first; a device without an IOMMU uses .physical_address")
    raise DeviceError(
        f"{len(devs)} devices are attached ("
        + ", ".join(d.name for d in devs)
        + "): allocate(..., device=NAME) says which one; or use "
        "kheap.dma_addr(buffer, device)")


def _forget():
    # libkheap's child has no attachments: neither do we.  Another
    # thread may have held the lock at fork(): the child's is new.
    global _lock
    _lock = threading.Lock()
    for dev in _attached.values():
        dev._handle = None
    _attached.clear()


os.register_at_fork(after_in_child=_forget)
