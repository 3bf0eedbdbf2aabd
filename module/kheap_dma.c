// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device addresses: chunks mapped for a named device through the DMA API.
 *
 * A device does not always see physical addresses.  Behind a translating
 * IOMMU (VT-d, AMD-Vi) it sees I/O virtual addresses, and only those the
 * kernel mapped for it; without one it sees physical addresses, but only
 * below its DMA mask.  KHEAP_IOC_ATTACH names a device; from then on every
 * chunk of the file is mapped for it with dma_map_page_attrs(), one mapping
 * per chunk, so each chunk is contiguous in the device's address space
 * too and the device reaches nothing else of the pool.
 *
 * Object model: an attachment (one file, one device) owns an xarray of
 * mappings indexed by the chunk's page offset.  Each mapping holds a
 * reference on its chunk, so a chunk that its owner frees stays put - not
 * handed to anyone else - while a device may still write into it, until
 * the mapping goes (DETACH, close(), FREE with KHEAP_FREE_DEVICES, or the
 * device going away).
 *
 * Bouncing is never allowed: a DMA API that would copy through swiotlb
 * would report an address whose data is not the chunk's.  Direct mappings
 * are checked against the device's mask before mapping; IOMMU mappings
 * are checked afterwards by translating the IOVA back.
 *
 * A bus notifier tears an attachment's mappings down when its device is
 * bound to a driver, unbound from one, or removed: the device's DMA
 * configuration (mask, IOMMU domain) belongs to whoever drives it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/iommu.h>
#include <linux/pci.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/swiotlb.h>
#include <linux/xarray.h>

#include "kheap.h"

/**
 * struct kheap_attachment - one device attached by one file
 * @file_node: entry in &kheap_file.attachments
 * @dev_node: entry in &kheap_dev.attachments
 * @kf: the file
 * @dev: the device; we hold a reference
 * @handle: the file's name for it
 * @mask: highest device address a mapping may use
 * @iommu: a translating IOMMU sits between the device and memory
 * @dead: the device changed drivers or went away; no mappings remain
 * @maps: &struct kheap_dma_map by chunk page offset
 *
 * Everything but @maps' contents is immutable after attach, except @dead
 * and the list entries; all of it is under &kheap_dev.dma_lock.
 */
struct kheap_attachment {
	struct list_head file_node;
	struct list_head dev_node;
	struct kheap_file *kf;
	struct device *dev;
	u64 handle;
	u64 mask;
	bool iommu;
	bool dead;
	struct xarray maps;
};

/**
 * struct kheap_dma_map - one chunk mapped for one device
 * @chunk: the chunk; the mapping holds a reference on it
 * @addr: device address of the chunk's first byte
 */
struct kheap_dma_map {
	struct kheap_chunk *chunk;
	dma_addr_t addr;
};

/*
 * Find a device by name: "BUS:NAME" for the pci and platform buses, or a
 * bare name, looked up as a PCI address first.  Returns a reference.
 */
static struct device *kheap_dma_find_device(const char *name)
{
	static const struct {
		const char *prefix;
		const struct bus_type *bus;
	} buses[] = {
		{ "pci:", &pci_bus_type },
		{ "platform:", &platform_bus_type },
	};
	struct device *dev;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(buses); i++) {
		size_t len = strlen(buses[i].prefix);

		if (!strncmp(name, buses[i].prefix, len))
			return bus_find_device_by_name((void *)buses[i].bus,
						       NULL, name + len);
	}
	for (i = 0; i < ARRAY_SIZE(buses); i++) {
		dev = bus_find_device_by_name((void *)buses[i].bus, NULL,
					      name);
		if (dev)
			return dev;
	}
	return NULL;
}

static struct kheap_attachment *kheap_dma_lookup(struct kheap_file *kf,
						 u64 handle)
{
	struct kheap_attachment *att;

	lockdep_assert_held(&kf->kd->dma_lock);

	list_for_each_entry(att, &kf->attachments, file_node) {
		if (att->handle == handle)
			return att;
	}
	return NULL;
}

/* Map @chunk for @att's device, or leave things as they were. */
static int kheap_dma_map_chunk(struct kheap_attachment *att,
			       struct kheap_chunk *chunk)
{
	unsigned long index = kheap_chunk_pgoff(chunk);
	phys_addr_t last = chunk->phys + chunk->size - 1;
	struct device *dev = att->dev;
	struct kheap_dma_map *map;
	dma_addr_t addr;
	int ret;

	lockdep_assert_held(&chunk->kd->dma_lock);

	if (xa_load(&att->maps, index))
		return 0;

	/* Without translation, anything beyond the mask would bounce. */
	if (!att->iommu && last > att->mask) {
		dev_warn_ratelimited(dev, "kheap: chunk at %pa-%pa is beyond this device's DMA mask %#llx; refusing to bounce it (load kheap with max_phys=)\n",
				     &chunk->phys, &last, att->mask);
		return -ERANGE;
	}

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return -ENOMEM;

	addr = dma_map_page_attrs(dev, kheap_phys_to_page(chunk->phys), 0,
				  chunk->size, DMA_BIDIRECTIONAL,
				  DMA_ATTR_SKIP_CPU_SYNC);
	if (dma_mapping_error(dev, addr)) {
		ret = -ENOMEM;
		goto err_free;
	}

	ret = -ERANGE;
	if (addr + chunk->size - 1 > att->mask || addr + chunk->size < addr) {
		dev_warn_ratelimited(dev, "kheap: mapping of a %zu byte chunk ends beyond DMA mask %#llx\n",
				     chunk->size, att->mask);
		goto err_unmap;
	}
	if (att->iommu) {
		struct iommu_domain *domain = iommu_get_domain_for_dev(dev);

		/* Both ends must translate to the chunk itself, not a copy. */
		if (!domain ||
		    iommu_iova_to_phys(domain, addr) != chunk->phys ||
		    iommu_iova_to_phys(domain, addr + chunk->size - 1) != last) {
			dev_warn_ratelimited(dev, "kheap: IOMMU mapping of chunk at %pa does not translate back to it; refusing\n",
					     &chunk->phys);
			goto err_unmap;
		}
	}

	map->chunk = chunk;
	map->addr = addr;
	ret = xa_err(xa_store(&att->maps, index, map, GFP_KERNEL));
	if (ret)
		goto err_unmap;
	kheap_chunk_get(chunk);
	return 0;

err_unmap:
	dma_unmap_page_attrs(dev, addr, chunk->size, DMA_BIDIRECTIONAL,
			     DMA_ATTR_SKIP_CPU_SYNC);
err_free:
	kfree(map);
	return ret;
}

/* Undo kheap_dma_map_chunk() for the mapping at @index. */
static void kheap_dma_unmap_index(struct kheap_attachment *att,
				  unsigned long index)
{
	struct kheap_dma_map *map = xa_erase(&att->maps, index);

	if (!map)
		return;
	dma_unmap_page_attrs(att->dev, map->addr, map->chunk->size,
			     DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
	/* May return the chunk's pages to the pool. */
	kheap_chunk_put(map->chunk);
	kfree(map);
}

static void kheap_dma_unmap_all(struct kheap_attachment *att)
{
	struct kheap_dma_map *map;
	unsigned long index;

	xa_for_each(&att->maps, index, map)
		kheap_dma_unmap_index(att, index);
}

/* Unmap everything and free @att; the caller unlinked it. */
static void kheap_dma_destroy(struct kheap_attachment *att)
{
	kheap_dma_unmap_all(att);
	xa_destroy(&att->maps);
	put_device(att->dev);
	kfree(att);
}

/*
 * Is @dev's driver one that does its own DMA through the IOMMU API, as
 * vfio-pci does?  Its IOMMU domain is then the driver's (from the moment a
 * program opens the VFIO group), whatever it is right now.  The caller
 * holds the device lock, so the driver cannot change under us.
 */
static bool kheap_dma_driver_managed(struct device *dev)
{
	if (!dev->driver)
		return false;
	if (dev_is_pci(dev))
		return to_pci_driver(dev->driver)->driver_managed_dma;
	if (dev->bus == &platform_bus_type)
		return to_platform_driver(dev->driver)->driver_managed_dma;
	return false;
}

/*
 * How @dev reaches memory: through a DMA-API IOMMU domain (translating),
 * directly (no IOMMU or an identity domain), or not at all for us
 * (-EBUSY: blocked, or owned by a user-space driver such as vfio-pci).
 */
static int kheap_dma_mode(struct device *dev, bool *iommu)
{
	struct iommu_domain *domain = iommu_get_domain_for_dev(dev);

	if (!domain || domain->type == IOMMU_DOMAIN_IDENTITY) {
		*iommu = false;
		return 0;
	}
	if (domain->type & __IOMMU_DOMAIN_DMA_API) {
		*iommu = true;
		return 0;
	}
	return -EBUSY;
}

/* Settle the device's mask; the caller holds the device lock. */
static int kheap_dma_set_mask(struct device *dev, u64 dma_bits, bool iommu,
			      u64 *mask)
{
	u64 want = dma_bits ? DMA_BIT_MASK(dma_bits) : 0;

	/*
	 * A device without a driver is being driven from user space: the
	 * mask is ours to set, as a driver's probe would.  A driver's mask
	 * stays; @dma_bits then only narrows what we accept.
	 */
	if (want && !dev->driver && dma_set_mask_and_coherent(dev, want)) {
		dev_warn(dev, "kheap: the platform cannot give this device a %llu-bit DMA mask\n",
			 dma_bits);
		return -ERANGE;
	}
	*mask = dma_get_mask(dev);
	if (want)
		*mask = min(*mask, want);
	if (!iommu && dev->bus_dma_limit)
		*mask = min_t(u64, *mask, dev->bus_dma_limit);
	return 0;
}

/**
 * kheap_dma_attach() - map a file's chunks for a device
 * @kf: the file
 * @name: the device's name (see struct kheap_attach)
 * @dma_bits: address bits the device drives, 0 for its current mask
 * @out: handle, dma_mask and mode filled in on success
 *
 * Return: 0 or a negative error code as documented for KHEAP_IOC_ATTACH.
 */
int kheap_dma_attach(struct kheap_file *kf, const char *name, u64 dma_bits,
		     struct kheap_attach *out)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att, *other;
	struct kheap_chunk *chunk;
	unsigned long index = 0;
	struct device *dev;
	int ret;

	dev = kheap_dma_find_device(name);
	if (!dev)
		return -ENODEV;

	att = kzalloc(sizeof(*att), GFP_KERNEL);
	if (!att) {
		ret = -ENOMEM;
		goto err_put;
	}
	att->kf = kf;
	att->dev = dev;
	xa_init(&att->maps);

	/* Keeps drivers from binding or unbinding while we look. */
	device_lock(dev);
	if (!dev->dma_mask) {
		ret = -ENODEV;
		goto err_unlock_dev;
	}
	ret = -EBUSY;
	if (kheap_dma_driver_managed(dev))
		goto err_unlock_dev;
	ret = kheap_dma_mode(dev, &att->iommu);
	if (ret)
		goto err_unlock_dev;
	/* Without translation a device address is a physical address. */
	if (!att->iommu && !kf->show_phys) {
		ret = -EPERM;
		goto err_unlock_dev;
	}
	if (!att->iommu && is_swiotlb_force_bounce(dev)) {
		dev_warn(dev, "kheap: every DMA of this device bounces through swiotlb; refusing to attach\n");
		ret = -ERANGE;
		goto err_unlock_dev;
	}
	ret = kheap_dma_set_mask(dev, dma_bits, att->iommu, &att->mask);
	if (ret)
		goto err_unlock_dev;

	mutex_lock(&kf->lock);
	mutex_lock(&kd->dma_lock);
	ret = -ENOSPC;
	if (kf->nr_attach >= KHEAP_MAX_ATTACH)
		goto err_unlock;
	ret = -EEXIST;
	list_for_each_entry(other, &kf->attachments, file_node) {
		if (other->dev == dev && !other->dead)
			goto err_unlock;
	}
	mt_for_each(&kf->chunks, chunk, index, ULONG_MAX) {
		ret = kheap_dma_map_chunk(att, chunk);
		if (ret)
			goto err_unmap;
	}
	att->handle = ++kf->last_handle;
	list_add_tail(&att->file_node, &kf->attachments);
	list_add_tail(&att->dev_node, &kd->attachments);
	kf->nr_attach++;
	mutex_unlock(&kd->dma_lock);
	mutex_unlock(&kf->lock);
	device_unlock(dev);

	out->handle = att->handle;
	out->dma_mask = att->mask;
	out->mode = att->iommu ? KHEAP_DMA_IOMMU : KHEAP_DMA_DIRECT;
	return 0;

err_unmap:
	kheap_dma_unmap_all(att);
err_unlock:
	mutex_unlock(&kd->dma_lock);
	mutex_unlock(&kf->lock);
err_unlock_dev:
	device_unlock(dev);
	xa_destroy(&att->maps);
	kfree(att);
err_put:
	put_device(dev);
	return ret;
}

/**
 * kheap_dma_detach() - undo kheap_dma_attach()
 * @kf: the file
 * @handle: from ATTACH
 *
 * Return: 0, or -EINVAL for a handle @kf does not have.
 */
int kheap_dma_detach(struct kheap_file *kf, u64 handle)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;

	mutex_lock(&kd->dma_lock);
	att = kheap_dma_lookup(kf, handle);
	if (!att) {
		mutex_unlock(&kd->dma_lock);
		return -EINVAL;
	}
	list_del(&att->file_node);
	list_del(&att->dev_node);
	kf->nr_attach--;
	kheap_dma_destroy(att);
	mutex_unlock(&kd->dma_lock);
	return 0;
}

/**
 * kheap_dma_file_release() - detach every device of a file being closed
 * @kf: the file
 */
void kheap_dma_file_release(struct kheap_file *kf)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att, *tmp;

	mutex_lock(&kd->dma_lock);
	list_for_each_entry_safe(att, tmp, &kf->attachments, file_node) {
		list_del(&att->file_node);
		list_del(&att->dev_node);
		kheap_dma_destroy(att);
	}
	kf->nr_attach = 0;
	mutex_unlock(&kd->dma_lock);
}

/**
 * kheap_dma_map_new() - map a newly allocated chunk for the file's devices
 * @kf: the file
 * @chunk: a chunk @kf owns; the caller holds a reference
 *
 * Return: 0, or an error with no mapping of @chunk left behind.
 */
int kheap_dma_map_new(struct kheap_file *kf, struct kheap_chunk *chunk)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;
	int ret = 0;

	mutex_lock(&kd->dma_lock);
	list_for_each_entry(att, &kf->attachments, file_node) {
		if (att->dead)
			continue;
		ret = kheap_dma_map_chunk(att, chunk);
		if (ret)
			break;
	}
	if (ret) {
		list_for_each_entry(att, &kf->attachments, file_node)
			kheap_dma_unmap_index(att, kheap_chunk_pgoff(chunk));
	}
	mutex_unlock(&kd->dma_lock);
	return ret;
}

/**
 * kheap_dma_unmap_chunk() - drop every device mapping of a chunk of a file
 * @kf: the file
 * @pgoff: the chunk's page offset
 */
void kheap_dma_unmap_chunk(struct kheap_file *kf, unsigned long pgoff)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;

	mutex_lock(&kd->dma_lock);
	list_for_each_entry(att, &kf->attachments, file_node)
		kheap_dma_unmap_index(att, pgoff);
	mutex_unlock(&kd->dma_lock);
}

/**
 * kheap_dma_limit() - the highest physical address new chunks may end at
 * @kf: the file
 *
 * Devices attached without a translating IOMMU reach physical addresses
 * up to their mask only.
 *
 * Return: the lowest such mask, or U64_MAX.
 */
u64 kheap_dma_limit(struct kheap_file *kf)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;
	u64 limit = U64_MAX;

	mutex_lock(&kd->dma_lock);
	list_for_each_entry(att, &kf->attachments, file_node) {
		if (!att->iommu && !att->dead)
			limit = min(limit, att->mask);
	}
	mutex_unlock(&kd->dma_lock);
	return limit;
}

/**
 * kheap_dma_addr() - where an attached device sees a chunk
 * @kf: the file
 * @chunk: a chunk @kf owns
 * @handle: the attachment
 * @addr: the device address of the chunk's first byte
 *
 * Return: 0, -EINVAL (unknown handle, chunk not mapped), or -ENODEV (the
 * device went away).
 */
int kheap_dma_addr(struct kheap_file *kf, struct kheap_chunk *chunk,
		   u64 handle, u64 *addr)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;
	struct kheap_dma_map *map;
	int ret = -EINVAL;

	mutex_lock(&kd->dma_lock);
	att = kheap_dma_lookup(kf, handle);
	if (att && att->dead) {
		ret = -ENODEV;
	} else if (att) {
		map = xa_load(&att->maps, kheap_chunk_pgoff(chunk));
		if (map && map->chunk == chunk) {
			*addr = map->addr;
			ret = 0;
		}
	}
	mutex_unlock(&kd->dma_lock);
	return ret;
}

/**
 * kheap_dma_sync() - bracket CPU access to part of a chunk for its devices
 * @kf: the file
 * @chunk: a chunk @kf owns
 * @offset: first byte of the range
 * @len: bytes, the range lies within the chunk
 * @dir: DMA direction of the access
 * @end: CPU access ends (sync for the device) rather than begins
 */
void kheap_dma_sync(struct kheap_file *kf, struct kheap_chunk *chunk,
		    u64 offset, u64 len, enum dma_data_direction dir, bool end)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_attachment *att;
	struct kheap_dma_map *map;

	mutex_lock(&kd->dma_lock);
	list_for_each_entry(att, &kf->attachments, file_node) {
		map = xa_load(&att->maps, kheap_chunk_pgoff(chunk));
		if (!map || map->chunk != chunk)
			continue;
		if (end)
			dma_sync_single_for_device(att->dev, map->addr + offset,
						   len, dir);
		else
			dma_sync_single_for_cpu(att->dev, map->addr + offset,
						len, dir);
	}
	mutex_unlock(&kd->dma_lock);
}

/**
 * kheap_dma_nr_attached() - devices a file has attached
 * @kf: the file
 *
 * Return: the number of attachments, dead ones included.
 */
u64 kheap_dma_nr_attached(struct kheap_file *kf)
{
	u64 nr;

	mutex_lock(&kf->kd->dma_lock);
	nr = kf->nr_attach;
	mutex_unlock(&kf->kd->dma_lock);
	return nr;
}

/*
 * A device changed hands or is going away: its mask and IOMMU domain are
 * no longer what we mapped for, so drop every mapping made for it.  For a
 * removal this runs before the IOMMU forgets the device.
 */
static int kheap_dma_bus_event(struct kheap_dev *kd, unsigned long action,
			       struct device *dev)
{
	struct kheap_attachment *att;

	switch (action) {
	case BUS_NOTIFY_BIND_DRIVER:
	case BUS_NOTIFY_UNBOUND_DRIVER:
	case BUS_NOTIFY_DEL_DEVICE:
		break;
	default:
		return NOTIFY_DONE;
	}

	mutex_lock(&kd->dma_lock);
	list_for_each_entry(att, &kd->attachments, dev_node) {
		if (att->dev != dev || att->dead)
			continue;
		kheap_dma_unmap_all(att);
		att->dead = true;
		dev_info(dev, "kheap: device %s: its kheap mappings are gone\n",
			 action == BUS_NOTIFY_DEL_DEVICE ? "removed" :
			 "changed drivers");
	}
	mutex_unlock(&kd->dma_lock);
	return NOTIFY_OK;
}

/* A notifier block sits on one chain only: one per bus. */
static int kheap_dma_pci_event(struct notifier_block *nb,
			       unsigned long action, void *data)
{
	return kheap_dma_bus_event(container_of(nb, struct kheap_dev, dma_nb),
				   action, data);
}

static int kheap_dma_platform_event(struct notifier_block *nb,
				    unsigned long action, void *data)
{
	return kheap_dma_bus_event(container_of(nb, struct kheap_dev, dma_pnb),
				   action, data);
}

/**
 * kheap_dma_init() - set up device attachment for the device
 * @kd: the device
 *
 * Return: 0 or a negative error code.
 */
int kheap_dma_init(struct kheap_dev *kd)
{
	int ret;

	mutex_init(&kd->dma_lock);
	INIT_LIST_HEAD(&kd->attachments);
	kd->dma_nb.notifier_call = kheap_dma_pci_event;
	kd->dma_pnb.notifier_call = kheap_dma_platform_event;
	ret = bus_register_notifier(&pci_bus_type, &kd->dma_nb);
	if (ret)
		return ret;
	ret = bus_register_notifier(&platform_bus_type, &kd->dma_pnb);
	if (ret)
		bus_unregister_notifier(&pci_bus_type, &kd->dma_nb);
	return ret;
}

/**
 * kheap_dma_fini() - undo kheap_dma_init()
 * @kd: the device, with no file open
 */
void kheap_dma_fini(struct kheap_dev *kd)
{
	bus_unregister_notifier(&platform_bus_type, &kd->dma_pnb);
	bus_unregister_notifier(&pci_bus_type, &kd->dma_nb);
	mutex_destroy(&kd->dma_lock);
}
