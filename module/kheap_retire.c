// SPDX-License-Identifier: GPL-2.0-only
/*
 * Where the pages of a released chunk go.
 *
 * When the last reference on a chunk goes (kheap_chunk.c), its pages go
 * back to genalloc, unless someone else still references them.  A
 * get_user_pages() pin taken through a mapping (vmsplice() into a pipe,
 * O_DIRECT in flight, an io_uring fixed buffer, an RDMA registration) can
 * outlive the mapping, the chunk's owner and its file.  Such a chunk waits in the quarantine,
 * still counted as in use, until no page of it is referenced by anyone but
 * the pool.  Only pools mapped as pages need this (raw PFN mappings take
 * no page references, see kheap_pool_maps_pages()).
 *
 * Looking at the quarantine again
 * -------------------------------
 * The kernel tells nobody when a reference on an ordinary page is dropped
 * (dev_pagemap's page_free() exists for ZONE_DEVICE pages only), so the
 * quarantine has to look.  It does so:
 *
 * - from a delayed work item, KHEAP_REAP_DELAY_MIN after a chunk enters
 *   the quarantine (most pins are short: an O_DIRECT request, a
 *   process_vm_readv()), then with the delay doubled after every look
 *   that released nothing, up to KHEAP_REAP_DELAY_MAX.  A pin held for a
 *   time t is noticed about max(t, 100 ms) after it goes, at most 5 s
 *   after, and a long-lived one costs a look every 5 s.  Looking never
 *   stops while the quarantine is not empty: the quarantine holds a module
 *   reference, and nothing else would notice the last pin going, so rmmod
 *   would stay refused for good;
 * - at once, when ALLOC finds no room: idle memory never makes ALLOC fail.
 *
 * Each look is cheap.  A page found idle stays idle: the chunk is neither
 * mapped nor owned, so only those who already hold a reference on one of
 * its pages can make new ones, to that page.  So a chunk remembers how
 * many of its first pages were idle (&kheap_chunk.idle_pages) and the next
 * look starts after them: a look costs one page per quarantined chunk,
 * plus the pages that became idle since the last one.
 *
 * Statistics (sysfs, INFO) read counters kept up to date here and in
 * kheap_chunk.c: reading them never scans a page.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/genalloc.h>
#include <linux/jiffies.h>
#include <linux/lockdep.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/workqueue.h>

#include "kheap.h"

/* The first look at a newly quarantined chunk, and the longest delay. */
#define KHEAP_REAP_DELAY_MIN	msecs_to_jiffies(100)
#define KHEAP_REAP_DELAY_MAX	msecs_to_jiffies(5000)

/* Return [@phys, @phys + @size), which genalloc has allocated, to the pool. */
static void kheap_give_back(struct kheap_dev *kd, phys_addr_t phys,
			    size_t size)
{
	lockdep_assert_held(&kd->lock);

	gen_pool_free(kd->gp, phys, size);
	kd->free_bytes += size;
}

/*
 * Does anyone but the pool hold a reference on a page of @chunk?  Looks
 * only at the pages after those found idle before, and remembers how far
 * it got (see the comment at the top).
 */
static bool kheap_chunk_pages_busy(struct kheap_chunk *chunk)
{
	unsigned long pfn = PHYS_PFN(chunk->phys);
	unsigned long nr = kheap_chunk_pages(chunk);

	/* Raw PFN mappings take no page references. */
	if (!kheap_pool_maps_pages(&chunk->kd->pool))
		return false;

	for (; chunk->idle_pages < nr; chunk->idle_pages++) {
		if (page_count(pfn_to_page(pfn + chunk->idle_pages)) != 1)
			return true;
	}
	return false;
}

/* Give @chunk's pages back and forget the chunk. */
static void kheap_chunk_destroy(struct kheap_dev *kd, struct kheap_chunk *chunk)
{
	lockdep_assert_held(&kd->lock);

	kheap_give_back(kd, chunk->phys, chunk->size);
	kd->chunks_in_use--;
	kfree(chunk);
}

/*
 * Destroy the quarantined chunks whose pages have become idle, and say
 * whether there were any.
 *
 * A non-empty quarantine holds a reference on this module: the files and
 * mappings that pinned it may all be gone while a page is still pinned
 * (a page vmsplice()d into a pipe, or an RDMA registration), and unloading
 * then would hand the pool back with the pin outstanding.  The reference
 * is dropped here once the quarantine drains; module exit cancels the
 * reap work synchronously, so the work item never runs module code after
 * that.
 */
static bool kheap_reap_locked(struct kheap_dev *kd)
{
	struct kheap_chunk *chunk, *tmp;
	bool reaped = false;

	lockdep_assert_held(&kd->lock);

	list_for_each_entry_safe(chunk, tmp, &kd->quarantine, qnode) {
		if (kheap_chunk_pages_busy(chunk))
			continue;
		list_del(&chunk->qnode);
		kd->quarantined_chunks--;
		kd->quarantined_bytes -= chunk->size;
		kheap_chunk_destroy(kd, chunk);
		reaped = true;
	}

	if (reaped && list_empty(&kd->quarantine))
		module_put(THIS_MODULE);
	return reaped;
}

static void kheap_reap_work(struct work_struct *work)
{
	struct kheap_dev *kd = container_of(to_delayed_work(work),
					    struct kheap_dev, reap_work);

	mutex_lock(&kd->lock);
	/* Something went: more may follow soon.  Else back off. */
	if (kheap_reap_locked(kd))
		kd->reap_delay = KHEAP_REAP_DELAY_MIN;
	else
		kd->reap_delay = min(2 * kd->reap_delay, KHEAP_REAP_DELAY_MAX);
	if (!list_empty(&kd->quarantine))
		schedule_delayed_work(&kd->reap_work, kd->reap_delay);
	mutex_unlock(&kd->lock);
}

/**
 * kheap_chunk_dispose_locked() - a chunk's last reference is gone
 * @kd: the device
 * @chunk: the chunk, no longer reachable by anyone
 *
 * Its pages go back to the pool, or the chunk is
 * quarantined while some page is still referenced elsewhere.  Called with
 * &kheap_dev.lock held.
 */
void kheap_chunk_dispose_locked(struct kheap_dev *kd, struct kheap_chunk *chunk)
{
	lockdep_assert_held(&kd->lock);

	if (!kheap_chunk_pages_busy(chunk)) {
		kheap_chunk_destroy(kd, chunk);
		return;
	}

	/* See kheap_reap_locked() for why the module is pinned. */
	if (list_empty(&kd->quarantine))
		__module_get(THIS_MODULE);
	list_add_tail(&chunk->qnode, &kd->quarantine);
	kd->quarantined_chunks++;
	kd->quarantined_bytes += chunk->size;
	/* A new pin is most often a short one: look again soon. */
	kd->reap_delay = KHEAP_REAP_DELAY_MIN;
	mod_delayed_work(system_wq, &kd->reap_work, kd->reap_delay);
}

/**
 * kheap_pool_take() - take the pages of a new chunk from genalloc
 * @kd: the device
 * @size: bytes, a non-zero multiple of PAGE_SIZE
 * @algo: genalloc algorithm
 * @data: its data
 *
 * Called with &kheap_dev.lock held.  When nothing fits, idle quarantined
 * chunks are destroyed and the allocation is tried once more.
 *
 * Return: the physical address of the first byte, or 0 when nothing fits.
 */
unsigned long kheap_pool_take(struct kheap_dev *kd, size_t size,
			      genpool_algo_t algo, void *data)
{
	unsigned long addr;

	lockdep_assert_held(&kd->lock);

	addr = gen_pool_alloc_algo(kd->gp, size, algo, data);
	if (!addr && kheap_reap_locked(kd))
		addr = gen_pool_alloc_algo(kd->gp, size, algo, data);
	if (addr)
		kd->free_bytes -= size;
	return addr;
}

/**
 * kheap_retire_init() - an empty quarantine
 * @kd: the device
 */
void kheap_retire_init(struct kheap_dev *kd)
{
	INIT_LIST_HEAD(&kd->quarantine);
	INIT_DELAYED_WORK(&kd->reap_work, kheap_reap_work);
	kd->reap_delay = KHEAP_REAP_DELAY_MIN;
	kd->quarantined_chunks = 0;
	kd->quarantined_bytes = 0;
}

/**
 * kheap_retire_fini() - stop looking at the quarantine
 * @kd: the device, with no chunk left (quarantined ones included: they
 *	hold a module reference)
 *
 * Return: 0, or -EBUSY when chunks remain anyway; the pool must then be
 * leaked rather than freed under its users.
 */
int kheap_retire_fini(struct kheap_dev *kd)
{
	cancel_delayed_work_sync(&kd->reap_work);
	if (WARN_ON(kd->chunks_in_use))
		return -EBUSY;
	return 0;
}
