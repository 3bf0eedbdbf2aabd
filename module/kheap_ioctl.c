// SPDX-License-Identifier: GPL-2.0-only
/*
 * The ioctl interface: argument handling and the commands.
 *
 * Arguments are copied in and out by kheap_ioctl() following the rules in
 * include/uapi/linux/kheap.h: the caller's struct may be shorter (missing
 * fields read as zero) or longer (extra bytes must be zero) than ours, and
 * output and reserved fields must be zero on input.
 * The command handlers only ever see a kernel copy, and nothing is copied
 * to or from user space while a kheap lock is held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/fcntl.h>
#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/nospec.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "kheap.h"

/*
 * EXPORT's argument and what its handler leaves for the commit or the
 * undo: the dma-buf's descriptor is installed only once the number has
 * reached user space.  Only the struct is ever copied to or from user
 * space (its size is the command's).
 */
struct kheap_export_call {
	struct kheap_export arg;
	struct kheap_dmabuf_new result;
};

union kheap_ioctl_arg {
	struct kheap_info info;
	struct kheap_alloc alloc;
	struct kheap_free free;
	struct kheap_query query;
	struct kheap_sync sync;
	struct kheap_attach attach;
	struct kheap_detach detach;
	struct kheap_dma_addr dma_addr;
	struct kheap_adopt adopt;
	struct kheap_export_call export;
	struct kheap_resize resize;
};

/**
 * struct kheap_ioctl_desc - one command
 * @cmd: the command as the kernel defines it (direction and size)
 * @handler: carries the command out on the kernel copy of the argument
 * @undo: reverts a successful @handler when the result cannot be copied
 *	back to user space; NULL when there is nothing to revert
 * @commit: makes a successful @handler's result visible once it has been
 *	copied back to user space; NULL when it is visible already
 * @min_size: smallest caller struct accepted (the first published
 *	version's size)
 */
struct kheap_ioctl_desc {
	unsigned int cmd;
	size_t min_size;
	int (*handler)(struct file *file, union kheap_ioctl_arg *arg);
	void (*undo)(struct file *file, const union kheap_ioctl_arg *arg);
	void (*commit)(struct file *file, const union kheap_ioctl_arg *arg);
};

/* Is any byte of the (array) field @field non-zero? */
#define kheap_reserved_set(field) (!!memchr_inv(field, 0, sizeof(field)))

static int kheap_ioctl_info(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_dev *kd = kf->kd;
	struct kheap_info *info = &arg->info;
	struct kheap_stats stats;

	/* Every field is an output or reserved: all must be zero. */
	if (memchr_inv(info, 0, sizeof(*info)))
		return -EINVAL;

	kheap_heap_stats(kd, &stats);

	info->abi_version = KHEAP_ABI_VERSION;
	info->pool_phys = kf->show_phys ? kd->pool.phys : 0;
	info->pool_size = kd->pool.size;
	info->page_size = PAGE_SIZE;
	info->free_bytes = stats.free_bytes;
	info->largest_free = stats.largest_free;
	info->chunks_in_use = stats.chunks_in_use;
	info->pool_source = kd->pool.source;

	mutex_lock(&kf->lock);
	info->file_chunks = kf->nr_chunks;
	info->file_bytes = kf->nr_bytes;
	mutex_unlock(&kf->lock);
	info->max_phys = kd->max_phys;
	info->attachments = kheap_dma_nr_attached(kf);
	info->retired_bytes = stats.retired_bytes;
	info->dmabufs = kheap_dmabuf_count(kd);
	return 0;
}

static int kheap_ioctl_alloc(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_alloc *alloc = &arg->alloc;
	struct kheap_chunk *chunk;
	phys_addr_t phys;
	size_t chunk_size;
	u64 size, align;
	u64 token;
	int ret;

	if (alloc->flags & ~KHEAP_ALLOC_FLAGS_VALID ||
	    alloc->token || alloc->phys || alloc->size_out ||
	    kheap_reserved_set(alloc->reserved))
		return -EINVAL;

	if (!alloc->size || alloc->size > U64_MAX - (PAGE_SIZE - 1))
		return -EINVAL;
	size = round_up(alloc->size, PAGE_SIZE);

	align = alloc->align;
	if (align & (align - 1) || align > kf->kd->pool.size)
		return -EINVAL;
	/* It fixes low bits of the address: see the uapi header. */
	if (!kf->show_phys && align > KHEAP_RESTRICTED_ALIGN_MAX)
		return -EPERM;
	align = max_t(u64, align, PAGE_SIZE);

	/* Where every device attached without an IOMMU can reach. */
	ret = kheap_chunk_alloc(kf, size, align, kheap_dma_limit(kf),
				alloc->flags, &token,
				&phys, &chunk_size);
	if (ret)
		return ret;

	chunk = kheap_chunk_find(kf, token);
	if (!chunk)	/* another thread guessed the token and freed it */
		return -ENOMEM;
	ret = kheap_dma_map_new(kf, chunk);
	kheap_chunk_put(chunk);
	if (ret) {
		kheap_chunk_free(kf, token);
		return ret;
	}

	alloc->token = token;
	alloc->phys = kf->show_phys ? phys : 0;
	alloc->size_out = chunk_size;
	return 0;
}

static void kheap_ioctl_alloc_undo(struct file *file,
				   const union kheap_ioctl_arg *arg)
{
	/* Fails only if another thread guessed the token and freed it. */
	if (!kheap_chunk_free(file->private_data, arg->alloc.token))
		kheap_dma_unmap_chunk(file->private_data,
				      arg->alloc.token >> PAGE_SHIFT);
}

static int kheap_ioctl_adopt(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_adopt *adopt = &arg->adopt;
	struct kheap_chunk *chunk;
	int ret;

	if (adopt->flags || adopt->token || adopt->phys || adopt->size ||
	    kheap_reserved_set(adopt->reserved))
		return -EINVAL;
	if (adopt->addr != (unsigned long)adopt->addr)
		return -EINVAL;

	ret = kheap_fork_adopt(kf, adopt->addr, adopt);
	if (ret)
		return ret;

	/* As for ALLOC: the file's devices reach all its chunks. */
	chunk = kheap_chunk_find(kf, adopt->token);
	if (!chunk)	/* another thread freed it already */
		return 0;
	ret = kheap_dma_map_new(kf, chunk);
	kheap_chunk_put(chunk);
	if (ret)
		kheap_chunk_free(kf, adopt->token);
	return ret;
}

static void kheap_ioctl_adopt_undo(struct file *file,
				   const union kheap_ioctl_arg *arg)
{
	/* The mappings stay, as ordinary mappings of a freed chunk. */
	if (!kheap_chunk_free(file->private_data, arg->adopt.token))
		kheap_dma_unmap_chunk(file->private_data,
				      arg->adopt.token >> PAGE_SHIFT);
}

static int kheap_ioctl_free(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_free *fr = &arg->free;
	int ret;

	if (fr->flags & ~KHEAP_FREE_FLAGS_VALID ||
	    kheap_reserved_set(fr->reserved))
		return -EINVAL;

	ret = kheap_chunk_free(file->private_data, fr->token);
	/* Tokens are never reused, so the page offset names only this chunk. */
	if (!ret && fr->flags & KHEAP_FREE_DEVICES)
		kheap_dma_unmap_chunk(file->private_data,
				      fr->token >> PAGE_SHIFT);
	return ret;
}

static int kheap_ioctl_query(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_query *query = &arg->query;
	struct kheap_addr_info info;
	int ret;

	if (query->flags || query->phys || query->token || query->offset ||
	    query->chunk_size || kheap_reserved_set(query->reserved))
		return -EINVAL;
	if (query->addr != (unsigned long)query->addr)
		return -EINVAL;

	ret = kheap_mmap_translate(file, query->addr, &info);
	if (ret)
		return ret;

	query->phys = kf->show_phys ? info.phys : 0;
	query->token = info.token;
	query->offset = info.offset;
	query->chunk_size = info.chunk_size;
	return 0;
}

static enum dma_data_direction kheap_sync_direction(u64 flags)
{
	switch (flags & KHEAP_SYNC_RW) {
	case KHEAP_SYNC_READ:
		return DMA_FROM_DEVICE;
	case KHEAP_SYNC_WRITE:
		return DMA_TO_DEVICE;
	default:
		return DMA_BIDIRECTIONAL;
	}
}

static int kheap_ioctl_sync(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_sync *sync = &arg->sync;
	struct kheap_chunk *chunk;
	int ret = 0;
	u64 end;

	if (sync->flags & ~KHEAP_SYNC_FLAGS_VALID ||
	    !(sync->flags & KHEAP_SYNC_RW) ||
	    kheap_reserved_set(sync->reserved))
		return -EINVAL;

	chunk = kheap_chunk_find(kf, sync->token);
	if (!chunk)
		return -EINVAL;

	if (!sync->length ||
	    check_add_overflow(sync->offset, sync->length, &end) ||
	    end > chunk->size) {
		ret = -EINVAL;
		goto out;
	}

	/* The DMA API knows which devices need cache maintenance. */
	kheap_dma_sync(kf, chunk, sync->offset, sync->length,
		       kheap_sync_direction(sync->flags),
		       sync->flags & KHEAP_SYNC_END);
out:
	kheap_chunk_put(chunk);
	return ret;
}

static int kheap_ioctl_attach(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_attach *at = &arg->attach;
	char *name;
	long len;
	int ret;

	if (at->flags || at->handle || at->dma_mask || at->mode ||
	    at->dma_bits > 64 || kheap_reserved_set(at->reserved))
		return -EINVAL;

	name = kmalloc(KHEAP_DEVICE_NAME_MAX, GFP_KERNEL);
	if (!name)
		return -ENOMEM;
	len = strncpy_from_user(name, u64_to_user_ptr(at->name),
				KHEAP_DEVICE_NAME_MAX);
	if (len < 0)
		ret = -EFAULT;
	else if (!len || len == KHEAP_DEVICE_NAME_MAX)
		ret = -EINVAL;	/* empty, or no NUL within the limit */
	else
		ret = kheap_dma_attach(file->private_data, name, at->dma_bits,
				       at);
	kfree(name);
	return ret;
}

static void kheap_ioctl_attach_undo(struct file *file,
				    const union kheap_ioctl_arg *arg)
{
	kheap_dma_detach(file->private_data, arg->attach.handle);
}

static int kheap_ioctl_detach(struct file *file, union kheap_ioctl_arg *arg)
{
	if (kheap_reserved_set(arg->detach.reserved))
		return -EINVAL;

	return kheap_dma_detach(file->private_data, arg->detach.handle);
}

static int kheap_ioctl_dma_addr(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_dma_addr *da = &arg->dma_addr;
	struct kheap_chunk *chunk;
	int ret;

	if (da->flags || da->dma_addr || kheap_reserved_set(da->reserved))
		return -EINVAL;

	chunk = kheap_chunk_find(kf, da->token);
	if (!chunk)
		return -EINVAL;
	ret = kheap_dma_addr(kf, chunk, da->handle, &da->dma_addr);
	kheap_chunk_put(chunk);
	return ret;
}

static int kheap_ioctl_export(struct file *file, union kheap_ioctl_arg *arg)
{
	struct kheap_export *ex = &arg->export.arg;
	u64 mode = ex->flags & O_ACCMODE;
	int ret;

	if (ex->flags & ~(u64)KHEAP_EXPORT_FLAGS_VALID ||
	    (mode != O_RDONLY && mode != O_RDWR) ||
	    ex->fd || kheap_reserved_set(ex->reserved))
		return -EINVAL;

	ret = kheap_dmabuf_export(file->private_data, ex->token, ex->offset,
				  ex->length, ex->flags, &arg->export.result);
	if (!ret)
		ex->fd = arg->export.result.fd;
	return ret;
}

static void kheap_ioctl_export_undo(struct file *file,
				    const union kheap_ioctl_arg *arg)
{
	kheap_dmabuf_abort(&arg->export.result);
}

static void kheap_ioctl_export_commit(struct file *file,
				      const union kheap_ioctl_arg *arg)
{
	kheap_dmabuf_install(&arg->export.result);
}

/*
 * SHRINK and EXTEND share their argument and its checks.  Neither has an
 * undo: a resize that cannot be reported stays done, as the kept bytes
 * did not move; the caller learns the size from QUERY.
 */
static int kheap_ioctl_resize(struct file *file, union kheap_ioctl_arg *arg,
			      bool grow)
{
	struct kheap_file *kf = file->private_data;
	struct kheap_resize *rs = &arg->resize;
	phys_addr_t phys;
	size_t size;
	int ret;

	if (rs->flags || rs->size_out || rs->phys ||
	    kheap_reserved_set(rs->reserved))
		return -EINVAL;

	if (grow)
		ret = kheap_resize_extend(kf, rs->token, rs->size, &size, &phys);
	else
		ret = kheap_resize_shrink(kf, rs->token, rs->size, &size, &phys);
	if (ret)
		return ret;

	rs->size_out = size;
	rs->phys = kf->show_phys ? phys : 0;
	return 0;
}

static int kheap_ioctl_shrink(struct file *file, union kheap_ioctl_arg *arg)
{
	return kheap_ioctl_resize(file, arg, false);
}

static int kheap_ioctl_extend(struct file *file, union kheap_ioctl_arg *arg)
{
	return kheap_ioctl_resize(file, arg, true);
}

/* Indexed by _IOC_NR() of the command. */
static const struct kheap_ioctl_desc kheap_ioctls[] = {
	[_IOC_NR(KHEAP_IOC_INFO)] = {
		.cmd = KHEAP_IOC_INFO,
		.min_size = KHEAP_INFO_SIZE_VER0,
		.handler = kheap_ioctl_info,
	},
	[_IOC_NR(KHEAP_IOC_ALLOC)] = {
		.cmd = KHEAP_IOC_ALLOC,
		.min_size = KHEAP_ALLOC_SIZE_VER0,
		.handler = kheap_ioctl_alloc,
		.undo = kheap_ioctl_alloc_undo,
	},
	[_IOC_NR(KHEAP_IOC_FREE)] = {
		.cmd = KHEAP_IOC_FREE,
		.min_size = KHEAP_FREE_SIZE_VER0,
		.handler = kheap_ioctl_free,
	},
	[_IOC_NR(KHEAP_IOC_QUERY)] = {
		.cmd = KHEAP_IOC_QUERY,
		.min_size = KHEAP_QUERY_SIZE_VER0,
		.handler = kheap_ioctl_query,
	},
	[_IOC_NR(KHEAP_IOC_SYNC)] = {
		.cmd = KHEAP_IOC_SYNC,
		.min_size = KHEAP_SYNC_SIZE_VER0,
		.handler = kheap_ioctl_sync,
	},
	[_IOC_NR(KHEAP_IOC_ATTACH)] = {
		.cmd = KHEAP_IOC_ATTACH,
		.handler = kheap_ioctl_attach,
		.min_size = KHEAP_ATTACH_SIZE_VER0,
		.undo = kheap_ioctl_attach_undo,
	},
	[_IOC_NR(KHEAP_IOC_DETACH)] = {
		.cmd = KHEAP_IOC_DETACH,
		.handler = kheap_ioctl_detach,
		.min_size = KHEAP_DETACH_SIZE_VER0,
	},
	[_IOC_NR(KHEAP_IOC_DMA_ADDR)] = {
		.cmd = KHEAP_IOC_DMA_ADDR,
		.handler = kheap_ioctl_dma_addr,
		.min_size = KHEAP_DMA_ADDR_SIZE_VER0,
	},
	[_IOC_NR(KHEAP_IOC_ADOPT)] = {
		.cmd = KHEAP_IOC_ADOPT,
		.handler = kheap_ioctl_adopt,
		.min_size = KHEAP_ADOPT_SIZE_VER0,
		.undo = kheap_ioctl_adopt_undo,
	},
	[_IOC_NR(KHEAP_IOC_EXPORT)] = {
		.cmd = KHEAP_IOC_EXPORT,
		.handler = kheap_ioctl_export,
		.min_size = KHEAP_EXPORT_SIZE_VER0,
		.undo = kheap_ioctl_export_undo,
		.commit = kheap_ioctl_export_commit,
	},
	[_IOC_NR(KHEAP_IOC_SHRINK)] = {
		.cmd = KHEAP_IOC_SHRINK,
		.handler = kheap_ioctl_shrink,
		.min_size = KHEAP_RESIZE_SIZE_VER0,
	},
	[_IOC_NR(KHEAP_IOC_EXTEND)] = {
		.cmd = KHEAP_IOC_EXTEND,
		.handler = kheap_ioctl_extend,
		.min_size = KHEAP_RESIZE_SIZE_VER0,
	},
};

/**
 * kheap_ioctl() - dispatch an ioctl on /dev/kheap
 * @file: the file
 * @ucmd: the command as user space encoded it
 * @uarg: pointer to the argument struct
 *
 * The type, number and direction of @ucmd must match one of our commands;
 * its size may differ from ours (see the uapi header).
 *
 * Return: 0 or a negative error code.
 */
long kheap_ioctl(struct file *file, unsigned int ucmd, unsigned long uarg)
{
	void __user *argp = (void __user *)uarg;
	const struct kheap_ioctl_desc *desc;
	union kheap_ioctl_arg arg;
	unsigned int nr = _IOC_NR(ucmd);
	size_t usize = _IOC_SIZE(ucmd);
	size_t ksize;
	int ret;

	if (_IOC_TYPE(ucmd) != KHEAP_IOC_MAGIC ||
	    nr >= ARRAY_SIZE(kheap_ioctls))
		return -ENOTTY;
	desc = &kheap_ioctls[array_index_nospec(nr, ARRAY_SIZE(kheap_ioctls))];
	if (!desc->handler || _IOC_DIR(ucmd) != _IOC_DIR(desc->cmd))
		return -ENOTTY;
	ksize = _IOC_SIZE(desc->cmd);
	if (usize < desc->min_size)
		return -EINVAL;

	/* Every command has input: INFO's is "all zero" (see the uapi header). */
	ret = copy_struct_from_user(&arg, ksize, argp, usize);
	if (ret)
		return ret;

	ret = desc->handler(file, &arg);
	if (ret)
		return ret;

	if ((_IOC_DIR(desc->cmd) & _IOC_READ) &&
	    copy_to_user(argp, &arg, min(usize, ksize))) {
		if (desc->undo)
			desc->undo(file, &arg);
		return -EFAULT;
	}
	if (desc->commit)
		desc->commit(file, &arg);
	return 0;
}
