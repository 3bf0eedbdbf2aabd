# SPDX-License-Identifier: MIT
"""Device addresses: a clear error without a device, attach errors, and
in the guest a real PCI device (no IOMMU there: its addresses are the
physical ones)."""
import errno
import os

import pytest

import kheap
from conftest import REGION


def a_pci_device():
    """A PCI device of the guest with a driver that is not vfio-pci."""
    root = "/sys/bus/pci/devices"
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        drv = os.path.join(root, name, "driver")
        if os.path.islink(drv) and \
                os.path.basename(os.readlink(drv)) != "vfio-pci":
            return name
    return None


@pytest.fixture(autouse=True)
def no_devices_left():
    yield
    for d in kheap._device.attached():
        d.detach()


def test_no_device_is_a_clear_error():
    buf = kheap.allocate(100)
    with pytest.raises(kheap.DeviceError, match="no device is attached"):
        buf.device_address
    with pytest.raises(kheap.DeviceError, match="physical_address"):
        buf[10:].device_address
    buf.freebuffer()


def test_attach_errors():
    with pytest.raises(OSError) as e:
        kheap.attach("missing-0000:99:99.9")
    assert e.value.errno == errno.ENODEV
    assert "no such device" in str(e.value)
    with pytest.raises(OSError) as e:
        kheap.allocate(10, device="missing-device")
    assert e.value.errno == errno.ENODEV
    for bad in ("", None, 7):
        with pytest.raises(ValueError):
            kheap.attach(bad)
    for bits in (-1, 65, 1.5):
        with pytest.raises(ValueError):
            kheap.attach("0000:00:00.0", bits)
    assert kheap._device.attached() == []


def device_name():
    if REGION:
        return "0000:00:03.0"       # the region provider makes devices up
    name = a_pci_device()
    if name is None:
        pytest.skip("no PCI device with a driver in this guest")
    return name


def test_device_addresses():
    name = device_name()
    buf = kheap.allocate((1000, 100), "u8", device=name)
    dev = kheap.attach(name)            # the same attachment
    assert kheap._device.attached() == [dev]
    base = buf.device_address
    for v, off in ((buf[7:], 7 * 800), (buf[:, 3], 24), (buf[::-1], 999 * 800)):
        assert v.device_address == base + off
        assert kheap.dma_addr(v, dev) == base + off
    if REGION:
        assert base != buf.physical_address      # as behind an IOMMU
    else:
        # No IOMMU in the guest: the device sees physical addresses.
        assert base == buf.physical_address
    # A buffer allocated before, without device=: the only device.
    other = kheap.allocate(5000)
    assert other.device_address == kheap.dma_addr(other, name)
    dev.detach()
    assert not dev.attached
    dev.detach()                        # idempotent
    with pytest.raises(kheap.DeviceError, match="detached"):
        buf.device_address
    with pytest.raises(kheap.DeviceError, match="no device"):
        other.device_address
    buf.freebuffer()
    other.freebuffer()


@pytest.mark.skipif(not REGION, reason="the guest has one PCI device "
                    "worth attaching; the region provider has any")
def test_two_devices_need_a_choice():
    a = kheap.attach("0000:00:03.0")
    b = kheap.attach("0000:00:04.0")
    buf = kheap.allocate(64)
    with pytest.raises(kheap.DeviceError, match="2 devices"):
        buf.device_address
    assert kheap.dma_addr(buf, a) != kheap.dma_addr(buf, b)
    mine = kheap.allocate(64, device=b)
    assert mine.device_address == kheap.dma_addr(mine, b)
    with pytest.raises(ValueError, match="dma_bits"):
        kheap.attach("0000:00:03.0", 32)
    buf.freebuffer()
    mine.freebuffer()
