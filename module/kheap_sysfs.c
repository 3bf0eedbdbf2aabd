// SPDX-License-Identifier: GPL-2.0-only
/*
 * Read-only sysfs attributes of /dev/kheap, in /sys/class/misc/kheap/.
 * One value per file; numbers are decimal except pool_phys, which is
 * hexadecimal and readable by root only.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/miscdevice.h>
#include <linux/sysfs.h>

#include "kheap.h"

static struct kheap_dev *kheap_dev_from(struct device *dev)
{
	/* misc_register() sets the device's driver data to the miscdevice. */
	struct miscdevice *misc = dev_get_drvdata(dev);

	return container_of(misc, struct kheap_dev, misc);
}

static ssize_t pool_size_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%zu\n", kheap_dev_from(dev)->pool.size);
}
static DEVICE_ATTR_RO(pool_size);

static ssize_t pool_phys_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%llx\n",
			  (unsigned long long)kheap_dev_from(dev)->pool.phys);
}
static DEVICE_ATTR_ADMIN_RO(pool_phys);

static ssize_t pool_source_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  kheap_pool_source_name(kheap_dev_from(dev)->pool.source));
}
static DEVICE_ATTR_RO(pool_source);

static ssize_t free_bytes_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.free_bytes);
}
static DEVICE_ATTR_RO(free_bytes);

static ssize_t largest_free_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.largest_free);
}
static DEVICE_ATTR_RO(largest_free);

static ssize_t chunks_in_use_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.chunks_in_use);
}
static DEVICE_ATTR_RO(chunks_in_use);

static struct attribute *kheap_attrs[] = {
	&dev_attr_pool_size.attr,
	&dev_attr_pool_phys.attr,
	&dev_attr_pool_source.attr,
	&dev_attr_free_bytes.attr,
	&dev_attr_largest_free.attr,
	&dev_attr_chunks_in_use.attr,
	NULL
};

static const struct attribute_group kheap_attr_group = {
	.attrs = kheap_attrs,
};

const struct attribute_group *kheap_attr_groups[] = {
	&kheap_attr_group,
	NULL
};
