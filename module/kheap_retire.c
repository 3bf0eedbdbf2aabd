// SPDX-License-Identifier: GPL-2.0-only
/*
 * Where the pages of a released chunk go.
 *
 * When the last reference on a chunk goes (kheap_chunk.c), its pages go
 * back to genalloc, with two exceptions:
 *
 * Pages that someone else still references.  A get_user_pages() pin taken
 * through a mapping (vmsplice() into a pipe, O_DIRECT in flight, an
 * io_uring fixed buffer, an RDMA registration) can outlive the mapping,
 * the chunk's owner and its file.  Such a chunk waits in the quarantine,
 * still counted as in use, until no page of it is referenced by anyone but
 * the pool.
 *
 * Pages that the hardware poisoned.  memory_failure() marks a page
 * PG_hwpoison and, for a page it does not know how to handle (ours are not
 * on the LRU), leaves it where it is.  Such a page is never zeroed again
 * (clearing it may raise another machine check) nor handed out: it stays
 * allocated in genalloc while the module is loaded, and is counted in
 * &kheap_dev.retired_pages; the rest of its chunk goes back.  Both 6.1 and
 * 6.12 keep the reference that madvise(MADV_HWPOISON) took through
 * get_user_pages() on such a page of a contig or buddy pool for good (it
 * would only be dropped on the paths for page cache and anonymous pages),
 * so a poisoned page never counts as busy for the quarantine.  A reserved
 * pool's ZONE_DEVICE pages go to kheap_pool_memory_failure() instead,
 * which marks them the same way.  A page poisoned while it was free in
 * the pool is found when ALLOC picks it, before zeroing, and retired then.
 *
 * Looking at the quarantine again
 * -------------------------------
 * The kernel tells nobody when a reference on an ordinary page is dropped,
 * so the quarantine has to look.  (A reserved pool's ZONE_DEVICE pages
 * have dev_pagemap's page_free(), but it runs only when a count drops to
 * zero, and the pool's own reference keeps every count above that.)  It does so:
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

#include <linux/bitmap.h>
#include <linux/bug.h>
#include <linux/genalloc.h>
#include <linux/jiffies.h>
#include <linux/lockdep.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/page-flags.h>
#include <linux/pfn.h>
#include <linux/workqueue.h>

#include "kheap.h"

/* The first look at a newly quarantined chunk, and the longest delay. */
#define KHEAP_REAP_DELAY_MIN	msecs_to_jiffies(100)
#define KHEAP_REAP_DELAY_MAX	msecs_to_jiffies(5000)

/**
 * kheap_page_poisoned() - has the hardware poisoned a page of the pool?
 * @pfn: a page frame of the pool
 *
 * Return: whether the page is marked PG_hwpoison (never, in kernels built
 * without CONFIG_MEMORY_FAILURE).
 */
bool kheap_page_poisoned(unsigned long pfn)
{
	return pfn_valid(pfn) && PageHWPoison(pfn_to_page(pfn));
}

/* Is any page of [@phys, @phys + @size) poisoned? */
static bool kheap_range_poisoned(phys_addr_t phys, size_t size)
{
	unsigned long pfn = PHYS_PFN(phys);
	unsigned long end = pfn + (size >> PAGE_SHIFT);

	for (; pfn < end; pfn++) {
		if (kheap_page_poisoned(pfn))
			return true;
	}
	return false;
}

/**
 * kheap_pool_give_back() - return pages to genalloc, but the poisoned ones
 * @kd: the device, with &kheap_dev.lock held
 * @phys: first byte of a range genalloc has allocated
 * @size: bytes, a multiple of PAGE_SIZE
 *
 * The poisoned pages of the range stay allocated for good (retired).
 */
void kheap_pool_give_back(struct kheap_dev *kd, phys_addr_t phys,
			  size_t size)
{
	unsigned long first = PHYS_PFN(phys);
	unsigned long end = first + (size >> PAGE_SHIFT);
	unsigned long pfn, run = first, retired = 0;

	lockdep_assert_held(&kd->lock);

	for (pfn = first; pfn < end; pfn++) {
		if (!kheap_page_poisoned(pfn))
			continue;
		if (run < pfn)
			gen_pool_free(kd->gp, PFN_PHYS(run), PFN_PHYS(pfn - run));
		pr_warn("pfn %#lx is hardware-poisoned: retired for good\n",
			pfn);
		run = pfn + 1;
		retired++;
	}
	if (run < end)
		gen_pool_free(kd->gp, PFN_PHYS(run), PFN_PHYS(end - run));

	kd->free_bytes += size - ((u64)retired << PAGE_SHIFT);
	kd->retired_pages += retired;
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

	for (; chunk->idle_pages < nr; chunk->idle_pages++) {
		struct page *page = pfn_to_page(pfn + chunk->idle_pages);

		/* Retired anyway, and memory_failure() may keep a reference. */
		if (PageHWPoison(page))
			continue;
		if (page_count(page) != 1)
			return true;
	}
	return false;
}

/* Give @chunk's pages back (but the poisoned ones) and forget the chunk. */
static void kheap_chunk_destroy(struct kheap_dev *kd, struct kheap_chunk *chunk)
{
	lockdep_assert_held(&kd->lock);

	kheap_pool_give_back(kd, chunk->phys, chunk->size);
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
 * Its pages go back to the pool (but the poisoned ones), or the chunk is
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
 * chunks are destroyed and the allocation is tried once more.  Poisoned
 * pages in what genalloc picked are retired, and the allocation is tried
 * again: each try retires at least one page, so this ends.
 *
 * Return: the physical address of the first byte, or 0 when nothing fits.
 */
unsigned long kheap_pool_take(struct kheap_dev *kd, size_t size,
			      genpool_algo_t algo, void *data)
{
	bool reaped = false;
	unsigned long addr;

	lockdep_assert_held(&kd->lock);

	for (;;) {
		addr = gen_pool_alloc_algo(kd->gp, size, algo, data);
		if (!addr) {
			if (reaped || !kheap_reap_locked(kd))
				return 0;
			reaped = true;
			continue;
		}
		kd->free_bytes -= size;
		if (!kheap_range_poisoned(addr, size))
			return addr;
		kheap_pool_give_back(kd, addr, size);
	}
}

/**
 * kheap_retire_init() - an empty quarantine, no page retired
 * @kd: the device
 */
void kheap_retire_init(struct kheap_dev *kd)
{
	INIT_LIST_HEAD(&kd->quarantine);
	INIT_DELAYED_WORK(&kd->reap_work, kheap_reap_work);
	kd->reap_delay = KHEAP_REAP_DELAY_MIN;
	kd->quarantined_chunks = 0;
	kd->quarantined_bytes = 0;
	kd->retired_pages = 0;
}

/*
 * gen_pool_for_each_chunk() callback: free every run of allocated pages,
 * counting them in *@data.  Runs under rcu_read_lock(); gen_pool_free()
 * does not sleep.
 */
static void kheap_free_retired(struct gen_pool *gp,
			       struct gen_pool_chunk *chunk, void *data)
{
	unsigned long nbits = (chunk->end_addr - chunk->start_addr + 1) >>
			      gp->min_alloc_order;
	unsigned long start = find_first_bit(chunk->bits, nbits);
	unsigned long *count = data;

	while (start < nbits) {
		unsigned long end = find_next_zero_bit(chunk->bits, nbits,
						       start);

		gen_pool_free(gp, chunk->start_addr +
			      (start << gp->min_alloc_order),
			      (end - start) << gp->min_alloc_order);
		*count += end - start;
		start = find_next_bit(chunk->bits, nbits, end);
	}
}

/**
 * kheap_retire_fini() - stop looking at the quarantine, forget retired pages
 * @kd: the device, with no chunk left (quarantined ones included: they
 *	hold a module reference)
 *
 * With no chunk left, the pages genalloc still holds are exactly the
 * retired ones: they are freed in genalloc, so that it can be destroyed.
 * (The pool itself keeps them out of the page allocator, see
 * kheap_pool_destroy().)
 *
 * Return: 0, or -EBUSY when chunks remain anyway or genalloc held more
 * than the retired pages; the pool must then be leaked rather than freed
 * under its users.
 */
int kheap_retire_fini(struct kheap_dev *kd)
{
	unsigned long count = 0;

	cancel_delayed_work_sync(&kd->reap_work);
	if (WARN_ON(kd->chunks_in_use))
		return -EBUSY;

	gen_pool_for_each_chunk(kd->gp, kheap_free_retired, &count);
	if (WARN_ON(count != kd->retired_pages))
		return -EBUSY;
	return 0;
}
