// SPDX-License-Identifier: GPL-2.0-only
/*
 * Read-only sysfs attributes of /dev/kheap, in /sys/class/misc/kheap/.
 * One value per file; numbers are decimal except pool_phys, which is
 * hexadecimal and readable by root only, and max_phys (hexadecimal).
 *
 * free_extents is the one list: a line "<offset> <length>" per run of free
 * pages, both hexadecimal ("0x...") bytes relative to the pool's base, in
 * ascending order of offset.  A sysfs file holds at most one page: when
 * more extents exist than fit, the list is truncated and its last line is
 * "...".  A fully allocated pool gives an empty file.
 *
 * Who may read what: everything is readable by everyone but pool_phys
 * (root only) and, with restrict_phys=1, free_extents (root only).  An
 * offset is a physical address minus the pool's base, and the base of a
 * reserved pool is no secret (memmap= is on the kernel command line), so
 * diffing free_extents around an ALLOC would give away the new chunk's
 * physical address.  The other attributes are sizes and counts that no
 * chunk's place can be read from.
 *
 * The quarantine and retirement counters (kheap_retire.c):
 * quarantined_chunks and quarantined_bytes count the released chunks
 * waiting for someone else's page references to go, retired_pages the
 * pages taken out of service for good because the hardware poisoned them.
 * Like every other statistic here they are counters: reading them scans
 * no page.
 *
 * dma-bufs (kheap_dmabuf.c): dmabufs counts the exported dma-bufs that
 * still exist, dmabuf_extents lists where each lies, in the format of
 * free_extents (offset of its first byte in the pool, length), in the
 * order they were exported, truncated the same way.  Overlapping
 * exports are listed each.  dmabuf_extents follows free_extents'
 * visibility rule.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/miscdevice.h>
#include <linux/slab.h>
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

/*
 * The shortest line free_extents can print is "0x0 0x1000\n" (an extent is
 * at least a page), so no more extents than this fit into one page; the
 * longest is two 64-bit numbers.
 */
#define KHEAP_EXTENT_LINE_MIN	(sizeof("0x0 0x1000\n") - 1)
#define KHEAP_EXTENT_LINE_MAX	sizeof("0x0123456789abcdef 0x0123456789abcdef\n")
#define KHEAP_EXTENTS_MAX	(PAGE_SIZE / KHEAP_EXTENT_LINE_MIN)
#define KHEAP_EXTENTS_MORE	"...\n"

/*
 * Print @nr extents, one "0x<offset> 0x<length>" line each, and a last
 * line "..." when @more or when they do not all fit into the page.
 */
static int kheap_extents_emit(char *buf, const struct kheap_extent *ext,
			      unsigned int nr, bool more)
{
	const int more_len = sizeof(KHEAP_EXTENTS_MORE) - 1;
	unsigned int i;
	int at = 0;

	for (i = 0; i < nr; i++) {
		char line[KHEAP_EXTENT_LINE_MAX];
		bool last = i + 1 == nr && !more;
		int len;

		len = scnprintf(line, sizeof(line), "0x%llx 0x%llx\n",
				ext[i].offset, ext[i].length);
		/* sysfs_emit_at() keeps the last byte of the page for a NUL. */
		if (at + len + (last ? 0 : more_len) >= (int)PAGE_SIZE) {
			more = true;
			break;
		}
		at += sysfs_emit_at(buf, at, "%s", line);
	}
	if (more)
		at += sysfs_emit_at(buf, at, KHEAP_EXTENTS_MORE);
	return at;
}

/*
 * An extent list: @snapshot fills a buffer allocated here, never under
 * the device lock, which the snapshot takes.
 */
static ssize_t extents_show(struct device *dev, char *buf,
			    unsigned int (*snapshot)(struct kheap_dev *kd,
						     struct kheap_extent *ext,
						     unsigned int max,
						     bool *more))
{
	struct kheap_extent *ext;
	unsigned int nr;
	bool more;
	int at;

	ext = kmalloc_array(KHEAP_EXTENTS_MAX, sizeof(*ext), GFP_KERNEL);
	if (!ext)
		return -ENOMEM;
	nr = snapshot(kheap_dev_from(dev), ext, KHEAP_EXTENTS_MAX, &more);
	at = kheap_extents_emit(buf, ext, nr, more);
	kfree(ext);
	return at;
}

/**
 * free_extents_show() - list the pool's free extents
 * @dev: the misc device
 * @attr: the free_extents attribute
 * @buf: one page, from sysfs
 *
 * One line "0x<offset> 0x<length>" per free extent, in ascending order;
 * a last line "..." when the remaining extents do not fit into the page.
 * The snapshot is taken into a buffer allocated before the device lock is
 * taken, and formatted after it is dropped.
 *
 * Return: bytes written to @buf, or -ENOMEM.
 */
static ssize_t free_extents_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return extents_show(dev, buf, kheap_heap_free_extents);
}
static DEVICE_ATTR_RO(free_extents);

static ssize_t quarantined_chunks_show(struct device *dev,
				       struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.quarantined_chunks);
}
static DEVICE_ATTR_RO(quarantined_chunks);

static ssize_t quarantined_bytes_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.quarantined_bytes);
}
static DEVICE_ATTR_RO(quarantined_bytes);

static ssize_t retired_pages_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	struct kheap_stats stats;

	kheap_heap_stats(kheap_dev_from(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.retired_bytes >> PAGE_SHIFT);
}
static DEVICE_ATTR_RO(retired_pages);

static ssize_t dmabufs_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%llu\n", kheap_dmabuf_count(kheap_dev_from(dev)));
}
static DEVICE_ATTR_RO(dmabufs);

/*
 * One "0x<offset> 0x<length>" line per existing dma-buf, in the order
 * they were exported, in the format of free_extents (and under its
 * visibility rule: offsets give physical addresses away).
 */
static ssize_t dmabuf_extents_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return extents_show(dev, buf, kheap_dmabuf_extents);
}
static DEVICE_ATTR_RO(dmabuf_extents);

/* The max_phys= parameter, hexadecimal; 0x0 when none was given. */
static ssize_t max_phys_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%llx\n", kheap_dev_from(dev)->max_phys);
}
static DEVICE_ATTR_RO(max_phys);

static struct attribute *kheap_attrs[] = {
	&dev_attr_pool_size.attr,
	&dev_attr_pool_phys.attr,
	&dev_attr_pool_source.attr,
	&dev_attr_free_bytes.attr,
	&dev_attr_largest_free.attr,
	&dev_attr_chunks_in_use.attr,
	&dev_attr_free_extents.attr,
	&dev_attr_max_phys.attr,
	&dev_attr_quarantined_chunks.attr,
	&dev_attr_quarantined_bytes.attr,
	&dev_attr_retired_pages.attr,
	&dev_attr_dmabufs.attr,
	&dev_attr_dmabuf_extents.attr,
	NULL
};

/*
 * free_extents is root's alone while physical addresses are restricted
 * (see the top of this file).  restrict_phys is read-only, so deciding
 * once, when misc_register() creates the files, is enough.
 */
static umode_t kheap_attr_visible(struct kobject *kobj, struct attribute *attr,
				  int n)
{
	struct kheap_dev *kd = kheap_dev_from(kobj_to_dev(kobj));

	if ((attr == &dev_attr_free_extents.attr ||
	     attr == &dev_attr_dmabuf_extents.attr) && kd->restrict_phys)
		return 0400;
	return attr->mode;
}

static const struct attribute_group kheap_attr_group = {
	.attrs = kheap_attrs,
	.is_visible = kheap_attr_visible,
};

const struct attribute_group *kheap_attr_groups[] = {
	&kheap_attr_group,
	NULL
};
