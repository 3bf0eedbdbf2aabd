// SPDX-License-Identifier: GPL-2.0-only
/*
 * dma-buf export: a page range of a chunk handed to other drivers.
 *
 * KHEAP_IOC_EXPORT wraps a page range of a chunk in a dma-buf, the
 * kernel's way of sharing DMA memory between drivers.  Importers (V4L2,
 * DRM PRIME, RDMA) attach their device and ask for an sg_table, which is
 * the range itself, mapped for that device with dma_map_sgtable(): behind
 * an IOMMU the device gets an IOVA, without one the physical address.  A
 * mapping that would bounce through swiotlb is refused, as for
 * KHEAP_IOC_ATTACH (kheap_dma.c): the device would not be writing into
 * the chunk.
 *
 * Lifetime: a &struct kheap_dmabuf holds a reference on its chunk, as a
 * VMA or a device mapping does, so FREE, close() of the kheap file and
 * munmap() leave the chunk's pages allocated while the dma-buf exists.
 * The dma-buf core holds a module reference for the dma-buf (the
 * exporter's owner), so rmmod is refused meanwhile.  The dma-buf file
 * lives as long as any descriptor, mapping or importer holds it; its
 * ->release drops the chunk.
 *
 * Every pool has struct pages (a reserved one as ZONE_DEVICE memory), which
 * importers need: they build sg_tables of pages and map them as pages.
 *
 * The dma-buf's mmap() maps the chunk's pages as /dev/kheap does (through
 * kheap_mmap_insert()), one fault per page; ->vmap gives the pages'
 * address in the kernel's direct map, where a pool with struct pages
 * lies, so nothing is mapped or unmapped there.
 *
 * The kernels kheap supports (6.1 to 6.12) have no partial CPU access
 * callbacks (begin_cpu_access_partial is an Android addition): the whole
 * range is synced for every mapped attachment.
 *
 * One dma-buf may be mapped more than once for the same device: each
 * import into another DRM file is an attachment of its own.  The DMA API
 * refuses overlapping mappings that each sync the CPU caches (DMA-API
 * debugging WARNs on them), so a map is done with DMA_ATTR_SKIP_CPU_SYNC
 * and then synced for the device by hand, and an unmap synced for the
 * CPU by hand first: the same cache maintenance, and the same swiotlb
 * copies, as a plain map and unmap, as udmabuf and DRM's PRIME helpers
 * map theirs.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/iommu.h>
#include <linux/lockdep.h>
#include <linux/iosys-map.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/swiotlb.h>

#include "kheap.h"
#include "kheap_compat.h"

MODULE_IMPORT_NS(DMA_BUF);

/*
 * Longest sg_table entry: an entry's length is an unsigned int, and a
 * page-aligned gigabyte keeps each entry well inside it.
 */
#define KHEAP_DMABUF_SEG_MAX	SZ_1G

/**
 * struct kheap_dmabuf - what one exported dma-buf stands for
 * @kd: the device
 * @chunk: the chunk; the dma-buf holds a reference on it
 * @offset: first byte of the range within @chunk
 * @size: bytes in the range
 * @node: entry in &kheap_dev.dmabufs
 * @lock: see below
 * @attachments: &struct kheap_dmabuf_attachment of the importers
 *
 * All but @node, @lock and @attachments are immutable.
 */
struct kheap_dmabuf {
	struct kheap_dev *kd;
	struct kheap_chunk *chunk;
	u64 offset;
	size_t size;
	struct list_head node;
	/*
	 * Protects @attachments and the mapped state of each of them:
	 * begin/end_cpu_access sync what is mapped right now.
	 */
	struct mutex lock;
	struct list_head attachments;
};

/**
 * struct kheap_dmabuf_attachment - one importing device
 * @node: entry in &kheap_dmabuf.attachments
 * @dev: the importer's device
 * @sgt: the range as an sg_table, built at attach time
 * @dir: the direction @sgt is mapped with, while @mapped
 * @mapped: @sgt is mapped for @dev
 */
struct kheap_dmabuf_attachment {
	struct list_head node;
	struct device *dev;
	struct sg_table sgt;
	enum dma_data_direction dir;
	bool mapped;
};

static phys_addr_t kheap_dmabuf_phys(const struct kheap_dmabuf *kb)
{
	return kb->chunk->phys + kb->offset;
}

/*
 * The length of the sg_table entry at @phys, @left bytes before the end,
 * for @dev: no longer than the device's maximum segment size (64 KiB for
 * a device that never set one, as vivid's), never across its segment
 * boundary, and whole pages (kheap_dmabuf_attach() refused a device whose
 * limits are below a page).
 */
static size_t kheap_dmabuf_seg_len(struct device *dev, phys_addr_t phys,
				   size_t left)
{
	unsigned long boundary = dma_get_seg_boundary(dev);
	size_t len = min_t(size_t, left, KHEAP_DMABUF_SEG_MAX);

	len = min_t(size_t, len,
		    rounddown(dma_get_max_seg_size(dev), PAGE_SIZE));
	if (boundary != ULONG_MAX)
		len = min_t(u64, len, (u64)(phys | boundary) + 1 - phys);
	return len;
}

static int kheap_dmabuf_attach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attach)
{
	struct kheap_dmabuf *kb = dmabuf->priv;
	struct kheap_dmabuf_attachment *a;
	struct device *dev = attach->dev;
	phys_addr_t phys = kheap_dmabuf_phys(kb);
	struct scatterlist *sg;
	unsigned int nents = 0, i;
	size_t left, len;
	int ret;

	if (dma_get_max_seg_size(dev) < PAGE_SIZE ||
	    dma_get_seg_boundary(dev) < PAGE_SIZE - 1)
		return -EINVAL;
	for (left = kb->size; left; left -= len, nents++)
		len = kheap_dmabuf_seg_len(dev, phys + kb->size - left, left);

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	ret = sg_alloc_table(&a->sgt, nents, GFP_KERNEL);
	if (ret)
		goto err_free;

	left = kb->size;
	for_each_sgtable_sg(&a->sgt, sg, i) {
		len = kheap_dmabuf_seg_len(dev, phys, left);
		sg_set_page(sg, kheap_phys_to_page(phys), len, 0);
		phys += len;
		left -= len;
	}
	a->dev = dev;
	attach->priv = a;

	mutex_lock(&kb->lock);
	list_add_tail(&a->node, &kb->attachments);
	mutex_unlock(&kb->lock);
	return 0;

err_free:
	kfree(a);
	return ret;
}

static void kheap_dmabuf_detach(struct dma_buf *dmabuf,
				struct dma_buf_attachment *attach)
{
	struct kheap_dmabuf *kb = dmabuf->priv;
	struct kheap_dmabuf_attachment *a = attach->priv;

	mutex_lock(&kb->lock);
	list_del(&a->node);
	mutex_unlock(&kb->lock);
	sg_free_table(&a->sgt);
	kfree(a);
}

/*
 * Can @dev reach [@first, @last] without a bounce buffer?  Behind a
 * translating IOMMU the DMA API maps the pages themselves; without one
 * the range must lie below the device's mask, and swiotlb must not be
 * forced on the device.  Mirrors kheap_dma_attach()'s rules.
 */
static int kheap_dmabuf_reachable(struct device *dev, phys_addr_t first,
				  phys_addr_t last)
{
	struct iommu_domain *domain;
	u64 mask;

	/* The DMA API warns about a device without a mask: refuse first. */
	if (!dev->dma_mask)
		return -ENODEV;

	domain = iommu_get_domain_for_dev(dev);
	if (domain && domain->type != IOMMU_DOMAIN_IDENTITY) {
		/* A user-space driver's or a blocked domain is not ours. */
		return domain->type & __IOMMU_DOMAIN_DMA_API ? 0 : -EBUSY;
	}

	if (is_swiotlb_force_bounce(dev)) {
		dev_warn_ratelimited(dev, "kheap: every DMA of this device bounces through swiotlb; refusing to map a kheap dma-buf\n");
		return -ERANGE;
	}
	mask = dma_get_mask(dev);
	if (dev->bus_dma_limit)
		mask = min_t(u64, mask, dev->bus_dma_limit);
	if (last > mask) {
		dev_warn_ratelimited(dev, "kheap: dma-buf at %pa-%pa is beyond this device's DMA mask %#llx; refusing to bounce it (load kheap with max_phys=)\n",
				     &first, &last, mask);
		return -ERANGE;
	}
	return 0;
}

static struct sg_table *kheap_dmabuf_map(struct dma_buf_attachment *attach,
					 enum dma_data_direction dir)
{
	struct kheap_dmabuf *kb = attach->dmabuf->priv;
	struct kheap_dmabuf_attachment *a = attach->priv;
	phys_addr_t first = kheap_dmabuf_phys(kb);
	int ret;

	ret = kheap_dmabuf_reachable(a->dev, first, first + kb->size - 1);
	if (ret)
		return ERR_PTR(ret);

	mutex_lock(&kb->lock);
	if (a->mapped) {
		/* One table per attachment: importers map it once. */
		ret = -EBUSY;
		goto out;
	}
	ret = dma_map_sgtable(a->dev, &a->sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
	if (!ret) {
		/* The sync the map skipped; see the top of this file. */
		dma_sync_sgtable_for_device(a->dev, &a->sgt, dir);
		a->dir = dir;
		a->mapped = true;
	}
out:
	mutex_unlock(&kb->lock);
	return ret ? ERR_PTR(ret) : &a->sgt;
}

static void kheap_dmabuf_unmap(struct dma_buf_attachment *attach,
			       struct sg_table *sgt,
			       enum dma_data_direction dir)
{
	struct kheap_dmabuf *kb = attach->dmabuf->priv;
	struct kheap_dmabuf_attachment *a = attach->priv;

	mutex_lock(&kb->lock);
	dma_sync_sgtable_for_cpu(a->dev, sgt, dir);
	dma_unmap_sgtable(a->dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
	a->mapped = false;
	mutex_unlock(&kb->lock);
}

/* CPU access begins (@end false) or ends: sync for every mapped importer. */
static void kheap_dmabuf_sync(struct kheap_dmabuf *kb,
			      enum dma_data_direction dir, bool end)
{
	struct kheap_dmabuf_attachment *a;

	mutex_lock(&kb->lock);
	list_for_each_entry(a, &kb->attachments, node) {
		if (!a->mapped)
			continue;
		if (end)
			dma_sync_sgtable_for_device(a->dev, &a->sgt, dir);
		else
			dma_sync_sgtable_for_cpu(a->dev, &a->sgt, dir);
	}
	mutex_unlock(&kb->lock);
}

static int kheap_dmabuf_begin_cpu_access(struct dma_buf *dmabuf,
					 enum dma_data_direction dir)
{
	kheap_dmabuf_sync(dmabuf->priv, dir, false);
	return 0;
}

static int kheap_dmabuf_end_cpu_access(struct dma_buf *dmabuf,
				       enum dma_data_direction dir)
{
	kheap_dmabuf_sync(dmabuf->priv, dir, true);
	return 0;
}

/* A page of the range for a fault; vm_pgoff counts from the range's start. */
static vm_fault_t kheap_dmabuf_fault(struct vm_fault *vmf)
{
	struct kheap_dmabuf *kb = vmf->vma->vm_private_data;

	if (vmf->pgoff >= kb->size >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;
	return kheap_mmap_insert(vmf, kb->chunk,
				 (kb->offset >> PAGE_SHIFT) + vmf->pgoff);
}

/* The VMA holds the dma-buf file, and the file holds everything else. */
static const struct vm_operations_struct kheap_dmabuf_vm_ops = {
	.fault	= kheap_dmabuf_fault,
};

/*
 * mmap() of the dma-buf, directly or through an importer (the core
 * checked that the range fits the dma-buf).  Shared and not executable,
 * as for /dev/kheap: a private COW copy would not be the chunk's memory.
 */
static int kheap_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;

	/* VM_MIXEDMAP: pages inserted by the driver; see kheap_mmap.c. */
	vm_flags_mod(vma, VM_MIXEDMAP | VM_DONTEXPAND | VM_DONTDUMP,
		     VM_MAYEXEC);
	vma->vm_ops = &kheap_dmabuf_vm_ops;
	vma->vm_private_data = dmabuf->priv;
	return 0;
}

static int kheap_dmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct kheap_dmabuf *kb = dmabuf->priv;

	iosys_map_set_vaddr(map, page_address(kheap_phys_to_page(kheap_dmabuf_phys(kb))));
	return 0;
}

static void kheap_dmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	/* The direct map stays. */
}

static void kheap_dmabuf_release(struct dma_buf *dmabuf)
{
	struct kheap_dmabuf *kb = dmabuf->priv;
	struct kheap_dev *kd = kb->kd;

	mutex_lock(&kd->dmabuf_lock);
	list_del(&kb->node);
	kd->nr_dmabufs--;
	mutex_unlock(&kd->dmabuf_lock);

	/* May return the chunk's pages to the pool. */
	kheap_chunk_put(kb->chunk);
	mutex_destroy(&kb->lock);
	kfree(kb);
}

static const struct dma_buf_ops kheap_dmabuf_ops = {
	.attach			= kheap_dmabuf_attach,
	.detach			= kheap_dmabuf_detach,
	.map_dma_buf		= kheap_dmabuf_map,
	.unmap_dma_buf		= kheap_dmabuf_unmap,
	.begin_cpu_access	= kheap_dmabuf_begin_cpu_access,
	.end_cpu_access		= kheap_dmabuf_end_cpu_access,
	.mmap			= kheap_dmabuf_mmap,
	.vmap			= kheap_dmabuf_vmap,
	.vunmap			= kheap_dmabuf_vunmap,
	.release		= kheap_dmabuf_release,
};

/**
 * kheap_dmabuf_export() - make a dma-buf of a page range of a chunk
 * @kf: the file that owns the chunk
 * @token: the chunk's token
 * @offset: first byte of the range, page aligned
 * @length: bytes, a non-zero multiple of PAGE_SIZE
 * @flags: O_RDONLY or O_RDWR, with O_CLOEXEC or not (already checked)
 * @out: the result, to be installed with kheap_dmabuf_install() or
 *	dropped with kheap_dmabuf_abort()
 *
 * Nothing is visible to user space yet: the descriptor is reserved, not
 * installed, so the caller can still fail (copying the number out).
 *
 * Return: 0, -EINVAL (no such chunk in @kf, range outside it),
 * -EMFILE or -ENOMEM.
 */
int kheap_dmabuf_export(struct kheap_file *kf, u64 token, u64 offset,
			u64 length, u64 flags, struct kheap_dmabuf_new *out)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct kheap_dev *kd = kf->kd;
	struct kheap_dmabuf *kb;
	struct dma_buf *dmabuf;
	u64 end;
	int ret;

	if (!length || !PAGE_ALIGNED(offset) || !PAGE_ALIGNED(length) ||
	    check_add_overflow(offset, length, &end))
		return -EINVAL;

	kb = kzalloc(sizeof(*kb), GFP_KERNEL);
	if (!kb)
		return -ENOMEM;
	kb->kd = kd;
	kb->offset = offset;
	kb->size = length;
	mutex_init(&kb->lock);
	INIT_LIST_HEAD(&kb->attachments);

	kb->chunk = kheap_chunk_find(kf, token);
	if (!kb->chunk) {
		ret = -EINVAL;
		goto err_free;
	}
	/*
	 * The range is checked and the dma-buf listed under one hold of
	 * dmabuf_lock: SHRINK (kheap_resize.c) looks at the list under it
	 * too, so it never cuts a tail that a new dma-buf is about to cover.
	 */
	mutex_lock(&kd->dmabuf_lock);
	if (end > kb->chunk->size) {
		ret = -EINVAL;
		goto err_unlock;
	}

	ret = get_unused_fd_flags(flags & O_CLOEXEC);
	if (ret < 0)
		goto err_unlock;
	out->fd = ret;

	exp_info.exp_name = KBUILD_MODNAME;
	exp_info.owner = THIS_MODULE;
	exp_info.ops = &kheap_dmabuf_ops;
	exp_info.size = length;
	exp_info.flags = flags & O_ACCMODE;
	exp_info.priv = kb;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto err_put_fd;
	}
	out->dmabuf = dmabuf;

	/* From here on ->release undoes everything above. */
	list_add_tail(&kb->node, &kd->dmabufs);
	kd->nr_dmabufs++;
	mutex_unlock(&kd->dmabuf_lock);
	return 0;

err_put_fd:
	put_unused_fd(out->fd);
err_unlock:
	mutex_unlock(&kd->dmabuf_lock);
	kheap_chunk_put(kb->chunk);
err_free:
	mutex_destroy(&kb->lock);
	kfree(kb);
	return ret;
}

/**
 * kheap_dmabuf_install() - give user space the dma-buf's descriptor
 * @nb: from a successful kheap_dmabuf_export()
 */
void kheap_dmabuf_install(const struct kheap_dmabuf_new *nb)
{
	fd_install(nb->fd, nb->dmabuf->file);
}

/**
 * kheap_dmabuf_abort() - drop a dma-buf that user space never saw
 * @nb: from a successful kheap_dmabuf_export()
 */
void kheap_dmabuf_abort(const struct kheap_dmabuf_new *nb)
{
	put_unused_fd(nb->fd);
	dma_buf_put(nb->dmabuf);
}

/**
 * kheap_dmabuf_count() - dma-bufs exported from the pool that still exist
 * @kd: the device
 *
 * Return: their number.
 */
u64 kheap_dmabuf_count(struct kheap_dev *kd)
{
	u64 nr;

	mutex_lock(&kd->dmabuf_lock);
	nr = kd->nr_dmabufs;
	mutex_unlock(&kd->dmabuf_lock);
	return nr;
}

/**
 * kheap_dmabuf_extents() - where the existing dma-bufs lie in the pool
 * @kd: the device
 * @ext: filled with one extent per dma-buf, offsets from the pool's base,
 *	oldest dma-buf first
 * @max: capacity of @ext
 * @more: set to whether dma-bufs beyond the first @max exist
 *
 * Return: the number of extents stored in @ext.
 */
unsigned int kheap_dmabuf_extents(struct kheap_dev *kd,
				  struct kheap_extent *ext, unsigned int max,
				  bool *more)
{
	struct kheap_dmabuf *kb;
	unsigned int nr = 0;

	*more = false;
	mutex_lock(&kd->dmabuf_lock);
	list_for_each_entry(kb, &kd->dmabufs, node) {
		if (nr == max) {
			*more = true;
			break;
		}
		ext[nr].offset = kheap_dmabuf_phys(kb) - kd->pool.phys;
		ext[nr].length = kb->size;
		nr++;
	}
	mutex_unlock(&kd->dmabuf_lock);
	return nr;
}

/**
 * kheap_dmabuf_covers() - does a dma-buf reach past an offset of a chunk?
 * @kd: the device
 * @chunk: the chunk
 * @offset: bytes from the chunk's first byte
 *
 * Called with &kheap_dev.dmabuf_lock held, so that no dma-buf of @chunk
 * appears meanwhile (kheap_dmabuf_export() checks its range under it).
 *
 * Return: whether a dma-buf of @chunk covers a byte at or after @offset.
 */
bool kheap_dmabuf_covers(struct kheap_dev *kd, struct kheap_chunk *chunk,
			 u64 offset)
{
	struct kheap_dmabuf *kb;

	lockdep_assert_held(&kd->dmabuf_lock);

	list_for_each_entry(kb, &kd->dmabufs, node) {
		if (kb->chunk == chunk && kb->offset + kb->size > offset)
			return true;
	}
	return false;
}

/**
 * kheap_dmabuf_init() - set up dma-buf export for the device
 * @kd: the device
 */
void kheap_dmabuf_init(struct kheap_dev *kd)
{
	mutex_init(&kd->dmabuf_lock);
	INIT_LIST_HEAD(&kd->dmabufs);
	kd->nr_dmabufs = 0;
}

/**
 * kheap_dmabuf_fini() - undo kheap_dmabuf_init()
 * @kd: the device; every dma-buf held a module reference, so none is left
 */
void kheap_dmabuf_fini(struct kheap_dev *kd)
{
	mutex_destroy(&kd->dmabuf_lock);
}
