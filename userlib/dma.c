// SPDX-License-Identifier: MIT
/*
 * dma.c - device addresses: attached devices and VFIO containers.
 *
 * A device behind an IOMMU sees each chunk at an I/O virtual address of
 * its own, so the window arithmetic of kheap_phys() does not give device
 * addresses.  Instead each attachment slot has a table with one entry per
 * 64 KiB granule of the window: the device address of the granule's first
 * byte, learnt once per chunk when the chunk arrives (or when the device
 * is attached).  A chunk is contiguous for the device, so its granules'
 * entries step by 64 KiB, and kheap_dma_addr() is one load and one
 * addition, like kheap_phys().
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
#include <sys/mman.h>

#include <linux/vfio.h>

#include "dma.h"
#include "internal.h"

#define MAX_CONTAINERS	4

static struct {
	int used[KHEAP_MAX_DEVICES];
	/* gran_dma[slot] while the slot is attached, else NULL: the one
	 * word kheap_dma_addr() reads (atomically) to find its table. */
	uint64_t *active[KHEAP_MAX_DEVICES];
	uint64_t handle[KHEAP_MAX_DEVICES];	/* the provider's handle */
	/* Per slot: device address of each granule's first byte, 0 when
	 * unknown.  Kept for the heap's life once made, so that a racing
	 * kheap_dma_addr() never reads freed memory. */
	uint64_t *gran_dma[KHEAP_MAX_DEVICES];
	size_t ngran;				/* entries per table */
	int container[MAX_CONTAINERS];		/* VFIO container fds */
	int ncontainers;
} dm;

/* Every chunk the process holds: arenas, dedicated and cached chunks. */
#define for_each_held_chunk(ch, list)					\
	for (struct chunk **list = (struct chunk *[]){ kh.arenas, kh.huges, \
						      kh.cached, NULL };	\
	     *list; list++)						\
		for (struct chunk *ch = *list; ch; ch = ch->next)

/* Record where slot's device sees ch (base: its first byte; 0 unknown). */
static void set_chunk_dma(int slot, const struct chunk *ch, uint64_t base)
{
	size_t g0 = gran_of(ch->start), n = ch->c.size >> GRANULE_SHIFT;

	for (size_t g = g0; g < g0 + n; g++) {
		uintptr_t gstart = khm.lo + (g << GRANULE_SHIFT);

		/* base + (gstart - start): the chunk's start is granule
		 * aligned, but the arithmetic holds either way. */
		dm.gran_dma[slot][g] = base ? base + (gstart - ch->start) : 0;
	}
}

static void learn_chunk_dma(int slot, const struct chunk *ch)
{
	uint64_t base;

	/* The kernel mapped it at ALLOC (or ATTACH); a failure (the device
	 * went away) leaves 0, which kheap_dma_addr() reports as ENODEV. */
	if (kh.prov->dma_addr(&ch->c, dm.handle[slot], &base))
		base = 0;
	set_chunk_dma(slot, ch, base);
}

static uint64_t chunk_phys(const struct chunk *ch)
{
	return ch->c.phys;
}

/* A fork child's inherited chunks become its own first: devices reach
 * only the chunks of the child's file, and VFIO needs their addresses. */
static int own_all_chunks(void)
{
	for_each_held_chunk(ch, list) {
		int err = heap_chunk_own(ch);

		if (err)
			return err;
	}
	return 0;
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

	for (i = 0; i < KHEAP_MAX_DEVICES; i++)
		if (dm.used[i])
			learn_chunk_dma(i, ch);
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

int dma_in_use(void)
{
	for (int i = 0; i < KHEAP_MAX_DEVICES; i++)
		if (dm.used[i])
			return 1;
	return dm.ncontainers > 0;
}

void dma_forget(int reset)
{
	/* The attachments and containers belong to the parent's file and
	 * chunks; the child starts with none. */
	for (int i = 0; i < KHEAP_MAX_DEVICES; i++) {
		dm.used[i] = 0;
		__atomic_store_n(&dm.active[i], NULL, __ATOMIC_RELAXED);
		/* A new heap has a new window: tables of another size. */
		if (reset && dm.gran_dma[i]) {
			munmap(dm.gran_dma[i], dm.ngran * sizeof(uint64_t));
			dm.gran_dma[i] = NULL;
		}
	}
	dm.ncontainers = 0;
}

/* The slot's table, made on first use. */
static int slot_table(int slot)
{
	void *m;

	if (dm.gran_dma[slot])
		return 0;
	m = mmap(NULL, kh.ngran * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	dm.gran_dma[slot] = m;
	dm.ngran = kh.ngran;
	return 0;
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
	err = slot_table(slot);
	if (!err)
		err = own_all_chunks();
	if (err)
		goto out;
	err = kh.prov->attach(device, dma_bits, &handle);
	if (err)
		goto out;
	dm.handle[slot] = handle;
	for_each_held_chunk(ch, list)
		learn_chunk_dma(slot, ch);
	dm.used[slot] = 1;
	__atomic_store_n(&dm.active[slot], dm.gran_dma[slot], __ATOMIC_RELEASE);
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
		dm.used[h - 1] = 0;
		__atomic_store_n(&dm.active[h - 1], NULL, __ATOMIC_RELEASE);
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
	uintptr_t v = (uintptr_t)p, off = v - khm.lo;
	const uint64_t *tab;
	uint64_t base;
	unsigned int k;

	if (h < 1 || h > KHEAP_MAX_DEVICES ||
	    !(tab = __atomic_load_n(&dm.active[h - 1], __ATOMIC_ACQUIRE))) {
		errno = EBADF;
		return 0;
	}
	if (off >= __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE)) {
		errno = EINVAL;
		return 0;
	}
	k = khm.kind[off >> GRANULE_SHIFT];
	/* Foreign chunks are a fork parent's, not mapped for our devices. */
	if (k == K_NONE || (k & K_FOREIGN)) {
		errno = EINVAL;
		return 0;
	}
	base = tab[off >> GRANULE_SHIFT];
	if (!base) {
		errno = ENODEV;
		return 0;
	}
	return base + (off & (GRANULE - 1));
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
	if (!err)
		err = own_all_chunks();
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
