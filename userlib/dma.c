// SPDX-License-Identifier: MIT
/*
 * dma.c - device addresses: attached devices and VFIO containers.
 *
 * A device behind an IOMMU sees each chunk at an I/O virtual address of
 * its own, so the window arithmetic of kheap_phys() does not give device
 * addresses.  Instead every chunk descriptor carries, per attachment slot,
 * the device address of its first byte, learnt once when the chunk
 * arrives (or when the device is attached); kheap_dma_addr() is then the
 * owner lookup kheap_free() already does, plus one addition.
 *
 * VFIO containers are the other way round: the process owns the device's
 * IOMMU domain, so we map each chunk there ourselves, at IOVA = physical
 * address, as it arrives, and unmap it before it goes back to the kernel.
 *
 * All state here is changed under kh.lock.  Readers of slot state
 * (kheap_dma_addr) go without it: a slot is published with a release
 * store after every held chunk has its address.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/vfio.h>

#include "dma.h"
#include "internal.h"

_Static_assert(KHEAP_MAX_DEVICES == PROVIDER_MAX_DEVICES,
	       "one attachment slot per public device handle");

#define MAX_CONTAINERS	4

static struct {
	int used[KHEAP_MAX_DEVICES];		/* atomic: read lock-free */
	uint64_t handle[KHEAP_MAX_DEVICES];	/* the provider's handle */
	int container[MAX_CONTAINERS];		/* VFIO container fds */
	int ncontainers;
} dm;

/* Every chunk the process holds: arenas, dedicated and cached chunks. */
#define for_each_held_chunk(ch, list)					\
	for (struct chunk **list = (struct chunk *[]){ kh.arenas, kh.huges, \
						      kh.cached, NULL };	\
	     *list; list++)						\
		for (struct chunk *ch = *list; ch; ch = ch->next)

static uint64_t chunk_phys(const struct chunk *ch)
{
	return kh.pool.phys + ch->c.off;
}

static int vfio_map_one(int container, const struct chunk *ch)
{
	struct vfio_iommu_type1_dma_map m;

	memset(&m, 0, sizeof(m));
	m.argsz = sizeof(m);
	m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	m.vaddr = ch->start;
	m.iova = chunk_phys(ch);
	m.size = ch->c.size;
	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static void vfio_unmap_one(int container, const struct chunk *ch)
{
	struct vfio_iommu_type1_dma_unmap u;

	memset(&u, 0, sizeof(u));
	u.argsz = sizeof(u);
	u.iova = chunk_phys(ch);
	u.size = ch->c.size;
	ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u);
}

int dma_chunk_added(struct chunk *ch)
{
	int i, err;

	for (i = 0; i < KHEAP_MAX_DEVICES; i++) {
		ch->c.dma[i] = 0;
		/* The kernel mapped it at ALLOC; a failure leaves 0, which
		 * kheap_dma_addr() reports as ENODEV. */
		if (dm.used[i] &&
		    kh.prov->dma_addr(&ch->c, dm.handle[i], &ch->c.dma[i]))
			ch->c.dma[i] = 0;
	}
	for (i = 0; i < dm.ncontainers; i++) {
		err = vfio_map_one(dm.container[i], ch);
		if (err) {
			while (i--)
				vfio_unmap_one(dm.container[i], ch);
			return err;
		}
	}
	return 0;
}

void dma_chunk_removed(const struct chunk *ch)
{
	for (int i = 0; i < dm.ncontainers; i++)
		vfio_unmap_one(dm.container[i], ch);
}

void dma_forget(void)
{
	/* The attachments and containers belong to the parent's file and
	 * chunks; the child starts with none. */
	for (int i = 0; i < KHEAP_MAX_DEVICES; i++)
		__atomic_store_n(&dm.used[i], 0, __ATOMIC_RELAXED);
	dm.ncontainers = 0;
}

API int kheap_attach_bits(const char *device, unsigned int dma_bits)
{
	uint64_t handle;
	int slot, err;

	if (!device || !*device || dma_bits > 64) {
		errno = EINVAL;
		return -1;
	}
	err = heap_ensure();
	if (err) {
		errno = -err;
		return -1;
	}
	kheap_lock(&kh.lock);
	for (slot = 0; slot < KHEAP_MAX_DEVICES && dm.used[slot]; slot++)
		;
	if (slot == KHEAP_MAX_DEVICES) {
		err = -ENOSPC;
		goto out;
	}
	if (!kh.prov->attach) {
		err = -ENODEV;
		goto out;
	}
	err = kh.prov->attach(device, dma_bits, &handle);
	if (err)
		goto out;
	for_each_held_chunk(ch, list) {
		if (kh.prov->dma_addr(&ch->c, handle, &ch->c.dma[slot]))
			ch->c.dma[slot] = 0;
	}
	dm.handle[slot] = handle;
	__atomic_store_n(&dm.used[slot], 1, __ATOMIC_RELEASE);
out:
	kheap_unlock(&kh.lock);
	if (err) {
		errno = -err;
		return -1;
	}
	return slot + 1;
}

API int kheap_attach(const char *device)
{
	return kheap_attach_bits(device, 0);
}

API int kheap_detach(int h)
{
	int err = 0;

	if (h < 1 || h > KHEAP_MAX_DEVICES) {
		errno = EBADF;
		return -1;
	}
	kheap_lock(&kh.lock);
	if (!dm.used[h - 1]) {
		err = -EBADF;
	} else {
		__atomic_store_n(&dm.used[h - 1], 0, __ATOMIC_RELEASE);
		kh.prov->detach(dm.handle[h - 1]);
	}
	kheap_unlock(&kh.lock);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

API uint64_t kheap_dma_addr(const void *p, int h)
{
	uintptr_t v = (uintptr_t)p;
	const struct chunk *ch;
	uint64_t base;
	unsigned int k;

	if (h < 1 || h > KHEAP_MAX_DEVICES ||
	    !__atomic_load_n(&dm.used[h - 1], __ATOMIC_ACQUIRE)) {
		errno = EBADF;
		return 0;
	}
	if (v - khm.lo >= __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE)) {
		errno = EINVAL;
		return 0;
	}
	k = khm.kind[gran_of(v)];
	/* Foreign chunks are a fork parent's, not mapped for our devices. */
	if (k == K_NONE || (k & K_FOREIGN)) {
		errno = EINVAL;
		return 0;
	}
	ch = kh.owner[gran_of(v)];
	base = ch->c.dma[h - 1];
	if (!base) {
		errno = ENODEV;
		return 0;
	}
	return base + (v - ch->start);
}

API int kheap_vfio_map(int container)
{
	int i, err;

	if (container < 0) {
		errno = EBADF;
		return -1;
	}
	err = heap_ensure();
	if (err) {
		errno = -err;
		return -1;
	}
	kheap_lock(&kh.lock);
	err = 0;
	if (!kh.pool.phys)
		err = -EPERM;	/* no physical address to use as IOVA */
	for (i = 0; !err && i < dm.ncontainers; i++)
		if (dm.container[i] == container)
			err = -EEXIST;
	if (!err && dm.ncontainers == MAX_CONTAINERS)
		err = -ENOSPC;
	if (!err) {
		for_each_held_chunk(ch, list) {
			err = vfio_map_one(container, ch);
			if (err)
				break;
		}
		if (err) {
			/* Unmap what was mapped: VFIO unmaps by range and
			 * ignores ranges it does not have. */
			for_each_held_chunk(ch2, list2)
				vfio_unmap_one(container, ch2);
		} else {
			dm.container[dm.ncontainers++] = container;
		}
	}
	kheap_unlock(&kh.lock);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

API int kheap_vfio_unmap(int container)
{
	int i, err = -EBADF;

	kheap_lock(&kh.lock);
	for (i = 0; i < dm.ncontainers; i++) {
		if (dm.container[i] != container)
			continue;
		for_each_held_chunk(ch, list)
			vfio_unmap_one(container, ch);
		dm.container[i] = dm.container[--dm.ncontainers];
		err = 0;
		break;
	}
	kheap_unlock(&kh.lock);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}
