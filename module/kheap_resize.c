// SPDX-License-Identifier: GPL-2.0-only
/*
 * Resizing a chunk in place: SHRINK and EXTEND.
 *
 * Neither moves the chunk: its token, physical address and kept bytes
 * stay.  SHRINK hands the pages past the new end (the tail) back to the
 * pool; EXTEND takes the free pages right after the chunk from it.
 *
 * What may still reach a tail
 * ---------------------------
 * A tail can go back only when nothing but the chunk can reach it, and
 * SHRINK refuses (-EBUSY) otherwise.  Each way in is closed by a lock or
 * by an ordering rule:
 *
 * - devices attached by the owning file map the whole chunk: no
 *   attachment may exist (&kheap_file.nr_attach under kheap_dev.dma_lock;
 *   ATTACH maps the chunks under &kheap_file.lock, which we hold);
 * - a fork() copy still missing pages would copy them from the tail
 *   (&kheap_chunk.copies under kheap_dev.fork_lock, which we hold, so no
 *   copy appears meanwhile, and copies made later take the new size);
 * - a dma-buf covering the tail (the list of dma-bufs under
 *   kheap_dev.dmabuf_lock, under which EXPORT checks its range too);
 * - a new mmap(): it finds the chunk and prefaults under
 *   &kheap_file.lock, which we hold, and sees the new size after us;
 * - pages present in a mapping, in any process, and get_user_pages()
 *   pins: every one holds a page reference, so a tail page whose count
 *   is above the pool's own one reference is busy;
 * - a page fault in a mapping that covers the tail without a page
 *   present (after MADV_DONTNEED): it takes no kheap lock.  We lower the
 *   size first and look at the page counts after a full barrier; the
 *   fault takes its page reference first and looks at the size after
 *   one (kheap_vm_fault()).  Either we see its reference and refuse, or
 *   it sees the new size and gives SIGBUS.  (An access to the tail that
 *   races with a SHRINK of it may so get SIGBUS even when the SHRINK is
 *   refused in the end: only a caller racing with itself sees this.)
 *
 * EXTEND needs less: the new pages were free, so nobody can reach them
 * until the size says they are the chunk's, which happens only after they
 * are zeroed.  Attached devices still refuse it (-EBUSY), as their
 * mappings would not cover the new pages; fork() copies do not (a copy
 * keeps the size the chunk had at fork() time, see kheap_copy_fill()).
 *
 * A chunk owns the tokens of its span (&kheap_chunk.span): the size it
 * was allocated with, or the pool's size for a KHEAP_ALLOC_GROWABLE one.
 * EXTEND goes no further, so the mmap() offsets of the grown part are
 * always the chunk's own.  A buddy pool is one block of the page
 * allocator and a reserved or contig pool one range, so "the pages after
 * the chunk" are always pool pages or the pool's end, for every source:
 * past the end EXTEND gives -ENOSPC.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/genalloc.h>
#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/mutex.h>

#include "kheap.h"

/*
 * Does anything but the pool hold a reference on a page of
 * [@phys, @phys + @size)?  A poisoned page is retired, not given out,
 * and memory_failure() may keep a reference on it: never busy.
 */
static bool kheap_resize_range_busy(phys_addr_t phys, size_t size)
{
	unsigned long pfn = PHYS_PFN(phys);
	unsigned long end = pfn + (size >> PAGE_SHIFT);

	for (; pfn < end; pfn++) {
		struct page *page = pfn_to_page(pfn);

		if (!PageHWPoison(page) && page_count(page) != 1)
			return true;
	}
	return false;
}

/*
 * Round a requested size up to pages.  Returns 0 for a zero or
 * overflowing request.
 */
static u64 kheap_resize_round(u64 size)
{
	if (!size || size > U64_MAX - (PAGE_SIZE - 1))
		return 0;
	return round_up(size, PAGE_SIZE);
}

/*
 * Refuse while the file has attached devices (dead ones included: their
 * teardown unmaps with the chunk's size).  Called with &kheap_file.lock
 * held, which ATTACH takes too.
 */
static bool kheap_resize_attached(struct kheap_file *kf)
{
	lockdep_assert_held(&kf->lock);
	return kheap_dma_nr_attached(kf) != 0;
}

/**
 * kheap_resize_shrink() - cut a chunk's tail off and give it back
 * @kf: the file that owns the chunk
 * @token: the chunk's token
 * @size: the new size in bytes (rounded up to pages here)
 * @size_out: the chunk's size afterwards, on success
 * @phys: the chunk's physical address, on success
 *
 * Return: 0, -EINVAL (no such chunk, bad size) or -EBUSY (something may
 * still reach the tail, see the top of this file).
 */
int kheap_resize_shrink(struct kheap_file *kf, u64 token, u64 size,
			size_t *size_out, phys_addr_t *phys)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_chunk *chunk;
	size_t old;
	int ret;

	size = kheap_resize_round(size);
	if (!size)
		return -EINVAL;

	mutex_lock(&kd->dmabuf_lock);
	mutex_lock(&kd->fork_lock);
	mutex_lock(&kf->lock);

	ret = -EINVAL;
	chunk = kheap_chunk_lookup(kf, token);
	if (!chunk)
		goto out_unlock;
	old = chunk->size;
	if (size > old)
		goto out_unlock;
	ret = 0;
	if (size == old)
		goto out_done;

	ret = -EBUSY;
	if (kheap_resize_attached(kf) || !list_empty(&chunk->copies) ||
	    kheap_dmabuf_covers(kd, chunk, size))
		goto out_unlock;

	/*
	 * A first look spares a fault racing with a refused SHRINK the
	 * SIGBUS of a size that was lowered for a moment.  Then the real
	 * check, see the top of this file: size first, then the counts.
	 */
	if (kheap_resize_range_busy(chunk->phys + size, old - size))
		goto out_unlock;
	WRITE_ONCE(chunk->size, size);
	/* Pairs with the one in kheap_vm_fault(). */
	smp_mb();
	if (kheap_resize_range_busy(chunk->phys + size, old - size)) {
		WRITE_ONCE(chunk->size, old);
		goto out_unlock;
	}

	mutex_lock(&kd->lock);
	kheap_pool_give_back(kd, chunk->phys + size, old - size);
	mutex_unlock(&kd->lock);
	kf->nr_bytes -= old - size;
	ret = 0;
out_done:
	*size_out = chunk->size;
	*phys = chunk->phys;
out_unlock:
	mutex_unlock(&kf->lock);
	mutex_unlock(&kd->fork_lock);
	mutex_unlock(&kd->dmabuf_lock);
	return ret;
}

/*
 * Take [@phys, @phys + @size) from genalloc if every page of it is free
 * (and none is poisoned: kheap_pool_take() retires those and fails).
 * Returns whether it did.  Called with &kheap_dev.lock held.
 */
static bool kheap_resize_take(struct kheap_dev *kd, phys_addr_t phys,
			      size_t size)
{
	struct genpool_data_fixed fixed;

	lockdep_assert_held(&kd->lock);

	/* Past the pool's end: nothing after the chunk to take. */
	if (phys < kd->pool.phys ||
	    size > kd->pool.phys + kd->pool.size - phys)
		return false;
	fixed.offset = phys - kd->pool.phys;
	return kheap_pool_take(kd, size, gen_pool_fixed_alloc, &fixed) == phys;
}

/**
 * kheap_resize_extend() - grow a chunk into the free pages after it
 * @kf: the file that owns the chunk
 * @token: the chunk's token
 * @size: the new size in bytes (rounded up to pages here)
 * @size_out: the chunk's size afterwards, on success
 * @phys: the chunk's physical address, on success
 *
 * Return: 0, -EINVAL (no such chunk, bad size), -EFBIG (not growable, or
 * beyond its span), -EBUSY (attached devices), -ENOSPC (the pages after
 * the chunk are not free) or -EINTR (a fatal signal while zeroing).
 */
int kheap_resize_extend(struct kheap_file *kf, u64 token, u64 size,
			size_t *size_out, phys_addr_t *phys)
{
	struct kheap_dev *kd = kf->kd;
	struct kheap_chunk *chunk;
	phys_addr_t end;
	size_t old;
	bool taken;
	int ret;

	size = kheap_resize_round(size);
	if (!size)
		return -EINVAL;

	mutex_lock(&kf->lock);

	ret = -EINVAL;
	chunk = kheap_chunk_lookup(kf, token);
	if (!chunk)
		goto out_unlock;
	old = chunk->size;
	if (size < old)
		goto out_unlock;
	ret = 0;
	if (size == old)
		goto out_done;

	ret = -EFBIG;
	if (size > chunk->span)
		goto out_unlock;
	ret = -EBUSY;
	if (kheap_resize_attached(kf))
		goto out_unlock;

	end = chunk->phys + old;
	mutex_lock(&kd->lock);
	taken = kheap_resize_take(kd, end, size - old);
	mutex_unlock(&kd->lock);
	ret = -ENOSPC;
	if (!taken)
		goto out_unlock;

	/* Nobody can reach the new pages before the size below says so. */
	ret = kheap_pool_zero(end, size - old);
	if (ret) {
		mutex_lock(&kd->lock);
		kheap_pool_give_back(kd, end, size - old);
		mutex_unlock(&kd->lock);
		goto out_unlock;
	}

	/* The zeroes are in place before a fault or a fork copy can look. */
	smp_wmb();
	WRITE_ONCE(chunk->size, size);
	kf->nr_bytes += size - old;
	ret = 0;
out_done:
	*size_out = chunk->size;
	*phys = chunk->phys;
out_unlock:
	mutex_unlock(&kf->lock);
	return ret;
}
