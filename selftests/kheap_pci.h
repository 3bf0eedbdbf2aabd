/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PCI plumbing of kheap's device tests, on libc alone so that programs
 * linking libkheap can use it too: driver binding, hot-unplug and rescans
 * through sysfs, and a device opened through a VFIO type1 container.
 */
#ifndef KHEAP_PCI_H
#define KHEAP_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The device's IOMMU group number, or -errno (-ENOENT: none). */
int kheap_pci_iommu_group(const char *bdf);
/* Name of the driver bound to the device ("" for none), or -errno. */
int kheap_pci_driver(const char *bdf, char *buf, size_t len);
/* The device is present in /sys/bus/pci/devices. */
bool kheap_pci_present(const char *bdf);
/* Write @text to /sys/bus/pci/devices/@bdf/@attr: 0 or -errno. */
int kheap_pci_write(const char *bdf, const char *attr, const char *text);
/*
 * Bind the device to @driver through driver_override and drivers_probe,
 * and check that it took: 0, or -errno (-ENXIO: the driver declined).
 */
int kheap_pci_bind(const char *bdf, const char *driver);
/* Unbind whatever driver the device has and clear driver_override. */
int kheap_pci_unbind(const char *bdf);
/* Hot-unplug the device (sysfs "remove"), waiting until it is gone. */
int kheap_pci_remove(const char *bdf);
/* Rescan every PCI bus and wait for @bdf to come back. */
int kheap_pci_rescan(const char *bdf);

/* A device bound to vfio-pci, in a type1 container of its own. */
struct vfio_dev {
	int container;
	int group;
	int device;
	void *bar0;		/* mapped BAR0 */
	size_t bar0_len;
	uint64_t cfg_off;	/* config space, in the device file */
};

/*
 * Open the group of @bdf (bound to vfio-pci), put it in a new container
 * with VFIO_TYPE1v2_IOMMU, get the device file and map BAR0.  0 or
 * -errno; on error @v holds nothing.  @why (may be NULL) names the step
 * that failed.
 */
int vfio_dev_open(struct vfio_dev *v, const char *bdf, const char **why);
void vfio_dev_close(struct vfio_dev *v);
/* VFIO_IOMMU_MAP_DMA (read and write) and VFIO_IOMMU_UNMAP_DMA. */
int vfio_dev_map(struct vfio_dev *v, const void *vaddr, uint64_t iova,
		 uint64_t size);
int vfio_dev_unmap(struct vfio_dev *v, uint64_t iova, uint64_t size);

#endif /* KHEAP_PCI_H */
