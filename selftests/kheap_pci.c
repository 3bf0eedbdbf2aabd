// SPDX-License-Identifier: GPL-2.0
/*
 * PCI plumbing of kheap's device tests, see kheap_pci.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kheap_pci.h"

#define PCI_SYSFS	"/sys/bus/pci"

/* Devices come and go asynchronously to the sysfs write that asked. */
#define PCI_SETTLE_MS	5000

int kheap_pci_iommu_group(const char *bdf)
{
	char path[128], link[PATH_MAX], *slash, *end;
	ssize_t n;
	long group;

	snprintf(path, sizeof(path), PCI_SYSFS "/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	slash = strrchr(link, '/');
	if (!slash)
		return -EINVAL;
	group = strtol(slash + 1, &end, 10);
	if (*end || group < 0 || group > INT_MAX)
		return -EINVAL;
	return group;
}

int kheap_pci_driver(const char *bdf, char *buf, size_t len)
{
	char path[128], link[PATH_MAX], *slash;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_SYSFS "/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		if (errno != ENOENT)
			return -errno;
		n = 0;
	}
	link[n] = '\0';
	slash = strrchr(link, '/');
	snprintf(buf, len, "%s", slash ? slash + 1 : link);
	return 0;
}

bool kheap_pci_present(const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), PCI_SYSFS "/devices/%s", bdf);
	return !access(path, F_OK);
}

static int write_text(const char *path, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

int kheap_pci_write(const char *bdf, const char *attr, const char *text)
{
	char path[160];

	snprintf(path, sizeof(path), PCI_SYSFS "/devices/%s/%s", bdf, attr);
	return write_text(path, text);
}

int kheap_pci_bind(const char *bdf, const char *driver)
{
	char now[64];
	int ret;

	ret = kheap_pci_write(bdf, "driver_override", driver);
	if (ret)
		return ret;
	ret = write_text(PCI_SYSFS "/drivers_probe", bdf);
	/* drivers_probe reports a probe that declined as an error too. */
	if (!ret || ret == -EINVAL || ret == -ENODEV) {
		ret = kheap_pci_driver(bdf, now, sizeof(now));
		if (!ret && strcmp(now, driver))
			ret = -ENXIO;
	}
	if (ret)
		kheap_pci_write(bdf, "driver_override", "\n");
	return ret;
}

int kheap_pci_unbind(const char *bdf)
{
	char drv[64];
	int ret;

	ret = kheap_pci_driver(bdf, drv, sizeof(drv));
	if (ret)
		return ret;
	if (*drv) {
		ret = kheap_pci_write(bdf, "driver/unbind", bdf);
		if (ret)
			return ret;
	}
	/* A lone newline clears the override on every kernel. */
	return kheap_pci_write(bdf, "driver_override", "\n");
}

static int wait_present(const char *bdf, bool present)
{
	struct timespec tick = { .tv_nsec = 10 * 1000000 };
	int waited;

	for (waited = 0; kheap_pci_present(bdf) != present; waited += 10) {
		if (waited >= PCI_SETTLE_MS)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
	return 0;
}

int kheap_pci_remove(const char *bdf)
{
	int ret = kheap_pci_write(bdf, "remove", "1");

	return ret ? ret : wait_present(bdf, false);
}

int kheap_pci_rescan(const char *bdf)
{
	int ret = write_text(PCI_SYSFS "/rescan", "1");

	return ret ? ret : wait_present(bdf, true);
}

/* ioctl() as 0 or -errno */
static int vfio_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

int vfio_dev_open(struct vfio_dev *v, const char *bdf, const char **why)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_region_info bar = { .argsz = sizeof(bar) };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg) };
	const char *step;
	char path[64];
	int group, ret;

	memset(v, 0, sizeof(*v));
	v->container = v->group = v->device = -1;

	step = "IOMMU group";
	group = kheap_pci_iommu_group(bdf);
	if (group < 0) {
		ret = group;
		goto err;
	}
	step = "/dev/vfio/vfio";
	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		goto err_errno;
	step = "VFIO API version";
	ret = -EINVAL;
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		goto err;
	step = "VFIO_TYPE1v2_IOMMU support";
	if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
		goto err;

	step = "group file";
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	v->group = open(path, O_RDWR | O_CLOEXEC);
	if (v->group < 0)
		goto err_errno;
	step = "group status";
	ret = vfio_ioctl(v->group, VFIO_GROUP_GET_STATUS, &status);
	if (ret)
		goto err;
	/* Every device of the group must be with vfio-pci (or no driver). */
	step = "group viability";
	ret = -EBUSY;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		goto err;
	step = "VFIO_GROUP_SET_CONTAINER";
	ret = vfio_ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container);
	if (ret)
		goto err;
	/* EPERM here: no interrupt remapping (allow_unsafe_interrupts). */
	step = "VFIO_SET_IOMMU";
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		goto err_errno;
	step = "device file";
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->device < 0)
		goto err_errno;

	step = "BAR0";
	bar.index = VFIO_PCI_BAR0_REGION_INDEX;
	ret = vfio_ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar);
	if (ret)
		goto err;
	ret = -EINVAL;
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP) || !bar.size)
		goto err;
	v->bar0 = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       v->device, bar.offset);
	if (v->bar0 == MAP_FAILED) {
		v->bar0 = NULL;
		goto err_errno;
	}
	v->bar0_len = bar.size;

	step = "config space";
	cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	ret = vfio_ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg);
	if (ret)
		goto err;
	v->cfg_off = cfg.offset;
	return 0;

err_errno:
	ret = -errno;
err:
	if (why)
		*why = step;
	vfio_dev_close(v);
	return ret;
}

void vfio_dev_close(struct vfio_dev *v)
{
	if (v->bar0)
		munmap(v->bar0, v->bar0_len);
	if (v->device >= 0)
		close(v->device);
	/* Closing the group takes it out of the container. */
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	memset(v, 0, sizeof(*v));
	v->container = v->group = v->device = -1;
}

int vfio_dev_map(struct vfio_dev *v, const void *vaddr, uint64_t iova,
		 uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return vfio_ioctl(v->container, VFIO_IOMMU_MAP_DMA, &map);
}

int vfio_dev_unmap(struct vfio_dev *v, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	return vfio_ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &unmap);
}
