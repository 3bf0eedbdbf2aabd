// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheap: physically contiguous memory for user space.
 *
 * Module parameters, load and unload, and the /dev/kheap misc device.
 * Reading order for the rest: kheap_ioctl.c (commands) -> kheap_chunk.c
 * (allocation and lifetime) -> kheap_retire.c (where released pages go)
 * -> kheap_mmap.c (mappings and faults); kheap_pool.c obtains the memory
 * and kheap_sysfs.c reports on it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "kheap.h"

static char *kheap_param_size;
module_param_named(size, kheap_param_size, charp, 0444);
MODULE_PARM_DESC(size,
		 "Pool size in bytes, K/M/G suffixes allowed, rounded up to whole pages (default: 64M; required with phys=)");

static char *kheap_param_phys;
/* Root only: the base of a reserved pool is a physical address. */
module_param_named(phys, kheap_param_phys, charp, 0400);
MODULE_PARM_DESC(phys,
		 "Physical address of a range reserved at boot with memmap=SIZE$ADDR; the pool is then that range (default: none)");

static char *kheap_param_source = "auto";
module_param_named(source, kheap_param_source, charp, 0444);
MODULE_PARM_DESC(source,
		 "Where the pool comes from: auto, reserved, contig or buddy (default: auto = reserved if phys is given, else contig, then buddy)");

static char *kheap_param_max_phys;
module_param_named(max_phys, kheap_param_max_phys, charp, 0444);
MODULE_PARM_DESC(max_phys,
		 "Place the pool below this physical address, for devices with a narrow DMA mask and no IOMMU, e.g. 4G or 256M (default: anywhere)");

static bool kheap_param_restrict_phys;
module_param_named(restrict_phys, kheap_param_restrict_phys, bool, 0444);
MODULE_PARM_DESC(restrict_phys,
		 "Report physical addresses only to openers with CAP_SYS_RAWIO (default: 0)");

static int kheap_open(struct inode *inode, struct file *file)
{
	/* misc_open() points private_data at our struct miscdevice. */
	struct kheap_dev *kd = container_of(file->private_data,
					    struct kheap_dev, misc);
	struct kheap_file *kf;

	kf = kzalloc(sizeof(*kf), GFP_KERNEL);
	if (!kf)
		return -ENOMEM;
	kf->mapfile = kheap_mapfile_create(kf);
	if (IS_ERR(kf->mapfile)) {
		int ret = PTR_ERR(kf->mapfile);

		kfree(kf);
		return ret;
	}

	kheap_file_init(kf, kd,
			!kd->restrict_phys || capable(CAP_SYS_RAWIO));
	file->private_data = kf;
	return 0;
}

static int kheap_release(struct inode *inode, struct file *file)
{
	struct kheap_file *kf = file->private_data;

	kheap_dma_file_release(kf);
	kheap_file_release(kf);
	/* Mappings keep their own references on it. */
	kheap_mapfile_release(kf);
	kfree(kf);
	return 0;
}

static const struct file_operations kheap_fops = {
	.owner		= THIS_MODULE,
	.open		= kheap_open,
	.release	= kheap_release,
	.unlocked_ioctl	= kheap_ioctl,
	/* Every argument is made of __u64 fields: same layout for compat. */
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= kheap_mmap,
	.llseek		= noop_llseek,
};

static struct kheap_dev kheap_dev = {
	.misc = {
		.minor	= MISC_DYNAMIC_MINOR,
		.name	= KBUILD_MODNAME,
		.fops	= &kheap_fops,
		.mode	= 0600,
		.groups	= kheap_attr_groups,
	},
};

/* Parse a size or address parameter: a number with an optional suffix. */
static int kheap_parse_number(const char *name, const char *str, u64 *val)
{
	char *end;

	*val = memparse(str, &end);
	if (end == str || *end) {
		pr_err("%s=%s is not a number\n", name, str);
		return -EINVAL;
	}
	return 0;
}

static int kheap_parse_params(struct kheap_pool_params *params)
{
	const char *source = kheap_param_source ?: "";
	int ret;

	if (kheap_param_phys && *kheap_param_phys) {
		ret = kheap_parse_number("phys", kheap_param_phys,
					 &params->phys);
		if (ret)
			return ret;
		params->has_phys = true;
	}

	params->size = SZ_64M;
	if (kheap_param_size && *kheap_param_size) {
		ret = kheap_parse_number("size", kheap_param_size,
					 &params->size);
		if (ret)
			return ret;
	} else if (params->has_phys) {
		/* A default could claim someone else's memory past the end. */
		pr_err("phys= needs size=, the size of the range reserved with memmap=SIZE$ADDR\n");
		return -EINVAL;
	}

	if (kheap_param_max_phys && *kheap_param_max_phys) {
		ret = kheap_parse_number("max_phys", kheap_param_max_phys,
					 &params->max_phys);
		if (ret)
			return ret;
		if (!params->max_phys) {
			pr_err("max_phys=0 leaves no memory\n");
			return -EINVAL;
		}
	}

	ret = kheap_pool_parse_source(source);
	if (ret < 0) {
		pr_err("source=%s is not one of auto, reserved, contig, buddy\n",
		       source);
		return -EINVAL;
	}
	params->source = ret;
	return 0;
}

static int __init kheap_init(void)
{
	struct kheap_dev *kd = &kheap_dev;
	struct kheap_pool_params params = {};
	int ret;

	ret = kheap_parse_params(&params);
	if (ret)
		return ret;

	ret = kheap_pool_create(&kd->pool, &params);
	if (ret)
		return ret;

	ret = kheap_heap_init(kd);
	if (ret)
		goto err_pool;

	kd->restrict_phys = kheap_param_restrict_phys;
	kd->max_phys = params.max_phys;

	ret = kheap_dma_init(kd);
	if (ret)
		goto err_heap;
	kheap_dmabuf_init(kd);

	/* Last: from here on user space can open the device. */
	ret = misc_register(&kd->misc);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", kd->misc.name, ret);
		goto err_dma;
	}

	pr_info("%zu KiB pool from %s\n", kd->pool.size / SZ_1K,
		kheap_pool_source_name(kd->pool.source));
	return 0;

err_dma:
	kheap_dmabuf_fini(kd);
	kheap_dma_fini(kd);
err_heap:
	kheap_heap_fini(kd);
err_pool:
	kheap_pool_destroy(&kd->pool);
	return ret;
}

static void __exit kheap_exit(void)
{
	struct kheap_dev *kd = &kheap_dev;

	misc_deregister(&kd->misc);
	kheap_dmabuf_fini(kd);
	kheap_dma_fini(kd);
	/* Should chunks somehow remain, leak the pool rather than free it. */
	if (kheap_heap_fini(kd))
		return;
	kheap_pool_destroy(&kd->pool);
}

module_init(kheap_init);
module_exit(kheap_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Physically contiguous memory for user space");
MODULE_AUTHOR("kheap developers");
MODULE_VERSION("1.0");
