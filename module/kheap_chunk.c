// SPDX-License-Identifier: GPL-2.0-only
/*
 * Chunks: page-granular allocations from the pool, their owners and their
 * lifetime.
 *
 * A genalloc pool whose addresses are physical addresses tracks which
 * pages of the pool are free.  A chunk is created by ALLOC with one
 * reference, its owner's; each VMA mapping it takes another.  When the
 * last reference goes, the chunk's pages return to genalloc - unless one
 * of them is still referenced from elsewhere: a get_user_pages() pin taken
 * through a mapping can outlive the mapping.  Such a chunk waits in a
 * quarantine, still counted as in use, until its pages are idle.
 *
 * Tokens are mmap() offsets.  They come from one counter shared by all
 * files, so a token is never reused - by the same file or any other - and
 * one file can never name another file's chunk by accident.  Each file
 * indexes its chunks in a maple tree by the page offsets their tokens
 * cover: a chunk is one range entry, so mmap() finds the chunk containing
 * any page offset with one lookup and no search code of our own (an
 * rbtree would need both), and lookups are RCU-safe should they ever need
 * to avoid the per-file lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/bug.h>
#include <linux/fs.h>
#include <linux/genalloc.h>
#include <linux/lockdep.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "kheap.h"

/* The first token handed out: 0 never names a chunk. */
#define KHEAP_TOKEN_BASE	SZ_1M

/*
 * Tokens are mmap() offsets of a character device: keep them below what
 * both a (signed) off_t and the kernel's mmap() offset limit for character
 * devices (ULONG_MAX) can express.
 */
static u64 kheap_token_limit(void)
{
	return min_t(u64, MAX_LFS_FILESIZE, ULONG_MAX);
}

/* Called by kref_put_mutex() with kd->lock held; drops it. */
static void kheap_chunk_release(struct kref *ref)
{
	struct kheap_chunk *chunk = container_of(ref, struct kheap_chunk, ref);
	struct kheap_dev *kd = chunk->kd;

	kheap_chunk_dispose_locked(kd, chunk);
	mutex_unlock(&kd->lock);
}

/**
 * kheap_chunk_get() - take a reference on a chunk
 * @chunk: a chunk the caller already holds a reference on, directly or
 *	through the owning file's lock
 */
void kheap_chunk_get(struct kheap_chunk *chunk)
{
	kref_get(&chunk->ref);
}

/**
 * kheap_chunk_put() - drop a reference on a chunk
 * @chunk: the chunk
 *
 * Dropping the last reference returns the chunk's pages to the pool, or
 * quarantines the chunk while some page is still referenced elsewhere.
 * Takes &kheap_dev.lock, so the caller must not hold it.
 */
void kheap_chunk_put(struct kheap_chunk *chunk)
{
	kref_put_mutex(&chunk->ref, kheap_chunk_release, &chunk->kd->lock);
}

/**
 * struct kheap_fit - what kheap_fit_aligned() looks for
 * @align: physical alignment, a power of two of at least one page
 * @limit: highest physical address the chunk's last byte may have
 */
struct kheap_fit {
	u64 align;
	u64 limit;
};

/*
 * genalloc algorithm: first fit at a physical address aligned to
 * &kheap_fit.align bytes, ending at or below &kheap_fit.limit.  Pool
 * addresses are physical addresses, so aligning the bitmap index with the
 * pool's own offset from that alignment gives physical alignment even when
 * the pool base is less aligned.  This is what gen_pool_first_fit_align()
 * computes, but that one keeps the alignment in an int and cannot express
 * 2 GiB or more, and knows no limit.
 */
static unsigned long kheap_fit_aligned(unsigned long *map, unsigned long size,
				       unsigned long start, unsigned int nr,
				       void *data, struct gen_pool *gp,
				       unsigned long start_addr)
{
	const struct kheap_fit *fit = data;
	unsigned long mask = (fit->align >> gp->min_alloc_order) - 1;
	unsigned long offset = (start_addr >> gp->min_alloc_order) & mask;
	unsigned long end = size, found;

	/* Search only the bits whose pages lie below the limit. */
	if (fit->limit < start_addr)
		return size;
	if (fit->limit - start_addr < ((u64)size << gp->min_alloc_order))
		end = (fit->limit - start_addr + 1) >> gp->min_alloc_order;

	found = bitmap_find_next_zero_area_off(map, end, start, nr, mask,
					       offset);
	/* genalloc reads anything below @size as success. */
	return found + nr > end ? size : found;
}

/*
 * genalloc algorithm: the start of the largest run of free pages that
 * holds @nr pages (the lowest of equal ones).  A growable chunk placed
 * there has the most room to grow in place (KHEAP_IOC_EXTEND), where best
 * fit would put it in the tightest hole.
 */
static unsigned long kheap_fit_largest(unsigned long *map, unsigned long size,
				       unsigned long start, unsigned int nr,
				       void *data, struct gen_pool *gp,
				       unsigned long start_addr)
{
	unsigned long s = find_next_zero_bit(map, size, start);
	unsigned long best = size, best_len = 0;

	while (s < size) {
		unsigned long e = find_next_bit(map, size, s);

		if (e - s >= nr && e - s > best_len) {
			best = s;
			best_len = e - s;
		}
		s = find_next_zero_bit(map, size, e);
	}
	return best;
}

/* gen_pool_for_each_chunk() callback: largest run of free pages, in bytes. */
static void kheap_largest_extent(struct gen_pool *gp,
				 struct gen_pool_chunk *chunk, void *data)
{
	unsigned long nbits = (chunk->end_addr - chunk->start_addr + 1) >>
			      gp->min_alloc_order;
	unsigned long start = find_first_zero_bit(chunk->bits, nbits);
	u64 *largest = data;

	while (start < nbits) {
		unsigned long end = find_next_bit(chunk->bits, nbits, start);

		*largest = max_t(u64, *largest,
				 (u64)(end - start) << gp->min_alloc_order);
		start = find_next_zero_bit(chunk->bits, nbits, end);
	}
}

/**
 * kheap_heap_stats() - snapshot the heap's accounting
 * @kd: the device
 * @stats: filled in
 *
 * Reads the counters and the genalloc bitmap, never the quarantined pages:
 * a chunk whose pin went counts as in use until the quarantine's next look
 * (kheap_retire.c).
 */
void kheap_heap_stats(struct kheap_dev *kd, struct kheap_stats *stats)
{
	u64 largest = 0;

	mutex_lock(&kd->lock);
	gen_pool_for_each_chunk(kd->gp, kheap_largest_extent, &largest);
	stats->free_bytes = kd->free_bytes;
	stats->largest_free = largest;
	stats->chunks_in_use = kd->chunks_in_use;
	stats->quarantined_chunks = kd->quarantined_chunks;
	stats->quarantined_bytes = kd->quarantined_bytes;
	stats->retired_bytes = kd->retired_pages << PAGE_SHIFT;
	mutex_unlock(&kd->lock);
}

/**
 * struct kheap_extent_walk - what kheap_free_extent_walk() collects
 * @base: physical address of the pool's first byte
 * @ext: the caller's array of extents
 * @max: capacity of @ext
 * @nr: extents stored in @ext so far
 * @more: a free extent beyond the first @max was found
 */
struct kheap_extent_walk {
	phys_addr_t base;
	struct kheap_extent *ext;
	unsigned int max;
	unsigned int nr;
	bool more;
};

/**
 * kheap_free_extent_walk() - collect the runs of free pages of a chunk
 * @gp: the genalloc pool
 * @chunk: one genalloc chunk (kheap adds exactly one, the whole pool)
 * @data: a &struct kheap_extent_walk
 *
 * gen_pool_for_each_chunk() callback.  Walks the chunk's bitmap in
 * ascending order and stops at the first extent that does not fit.
 * Runs under &kheap_dev.lock and rcu_read_lock(): must not sleep.
 */
static void kheap_free_extent_walk(struct gen_pool *gp,
				   struct gen_pool_chunk *chunk, void *data)
{
	unsigned long nbits = (chunk->end_addr - chunk->start_addr + 1) >>
			      gp->min_alloc_order;
	unsigned long start = find_first_zero_bit(chunk->bits, nbits);
	struct kheap_extent_walk *w = data;

	while (start < nbits) {
		unsigned long end = find_next_bit(chunk->bits, nbits, start);

		if (w->nr == w->max) {
			w->more = true;
			return;
		}
		w->ext[w->nr].offset = chunk->start_addr - w->base +
				       ((u64)start << gp->min_alloc_order);
		w->ext[w->nr].length = (u64)(end - start) << gp->min_alloc_order;
		w->nr++;
		start = find_next_zero_bit(chunk->bits, nbits, end);
	}
}

/**
 * kheap_heap_free_extents() - snapshot where the pool's free pages are
 * @kd: the device
 * @ext: filled with the free extents in ascending order of offset
 * @max: capacity of @ext
 * @more: set to whether free extents beyond the first @max exist
 *
 * Like kheap_heap_stats(), reads the genalloc bitmap under
 * &kheap_dev.lock, so the extents are an exact snapshot.  Retired pages
 * are not free.  The walk stops after @max extents, so it costs at most one
 * pass over the bitmap.  Nothing is allocated here: the caller provides
 * @ext.
 *
 * Return: the number of extents stored in @ext.
 */
unsigned int kheap_heap_free_extents(struct kheap_dev *kd,
				     struct kheap_extent *ext,
				     unsigned int max, bool *more)
{
	struct kheap_extent_walk w = {
		.base = kd->pool.phys,
		.ext = ext,
		.max = max,
	};

	mutex_lock(&kd->lock);
	gen_pool_for_each_chunk(kd->gp, kheap_free_extent_walk, &w);
	mutex_unlock(&kd->lock);
	*more = w.more;
	return w.nr;
}

/**
 * kheap_heap_init() - put an allocator on top of the pool
 * @kd: the device, with &kheap_dev.pool set up
 *
 * Return: 0 or -ENOMEM.
 */
int kheap_heap_init(struct kheap_dev *kd)
{
	int ret;

	mutex_init(&kd->lock);
	mutex_init(&kd->fork_lock);
	kheap_retire_init(kd);

	kd->gp = gen_pool_create(PAGE_SHIFT, NUMA_NO_NODE);
	if (!kd->gp)
		return -ENOMEM;
	/* The allocator's addresses are the pool's physical addresses. */
	ret = gen_pool_add(kd->gp, kd->pool.phys, kd->pool.size, NUMA_NO_NODE);
	if (ret) {
		gen_pool_destroy(kd->gp);
		return ret;
	}

	kd->free_bytes = kd->pool.size;
	kd->chunks_in_use = 0;
	kd->next_token = KHEAP_TOKEN_BASE;
	return 0;
}

/**
 * kheap_heap_fini() - tear down the allocator
 * @kd: the device, with no file open and no chunk left
 *
 * Open files, mappings and quarantined chunks all hold a reference on the
 * module, so by the time the module exits every chunk is gone.
 *
 * Return: 0, or -EBUSY if chunks remain anyway; the pool must then be
 * leaked rather than freed under its users.
 */
int kheap_heap_fini(struct kheap_dev *kd)
{
	int ret;

	ret = kheap_retire_fini(kd);
	if (ret)
		return ret;
	gen_pool_destroy(kd->gp);
	mutex_destroy(&kd->fork_lock);
	mutex_destroy(&kd->lock);
	return 0;
}

/**
 * kheap_file_init() - set up the state of a newly opened file
 * @kf: the per-file state
 * @kd: the device
 * @show_phys: physical addresses may be reported to this file
 */
void kheap_file_init(struct kheap_file *kf, struct kheap_dev *kd,
		     bool show_phys)
{
	kf->kd = kd;
	kf->show_phys = show_phys;
	mutex_init(&kf->lock);
	mt_init(&kf->chunks);
	INIT_LIST_HEAD(&kf->attachments);
	kf->nr_chunks = 0;
	kf->nr_bytes = 0;
}

/**
 * kheap_file_release() - free every chunk a file still owns
 * @kf: the per-file state of a file being released
 *
 * Every VMA of the file holds a reference on the file, so none is left
 * and the chunks' pages go back to the pool (or to the quarantine).
 */
void kheap_file_release(struct kheap_file *kf)
{
	struct kheap_chunk *chunk;
	unsigned long index = 0;

	mt_for_each(&kf->chunks, chunk, index, ULONG_MAX)
		kheap_chunk_put(chunk);
	mtree_destroy(&kf->chunks);
	mutex_destroy(&kf->lock);
}

/**
 * kheap_chunk_lookup() - the chunk a file owns under a token
 * @kf: the file, with &kheap_file.lock held
 * @token: the chunk's token
 *
 * Return: the chunk, without a new reference (the lock keeps it owned),
 * or NULL.
 */
struct kheap_chunk *kheap_chunk_lookup(struct kheap_file *kf, u64 token)
{
	struct kheap_chunk *chunk;

	lockdep_assert_held(&kf->lock);

	/* Also rejects unaligned tokens and, on 32-bit, truncated ones. */
	chunk = mtree_load(&kf->chunks, token >> PAGE_SHIFT);
	if (!chunk || chunk->token != token)
		return NULL;
	return chunk;
}

/**
 * kheap_chunk_new() - take a chunk from the pool, owned by nobody yet
 * @kd: the device
 * @size: bytes, a non-zero multiple of PAGE_SIZE
 * @align: physical alignment, a power of two of at least PAGE_SIZE
 * @limit: highest physical address the chunk's last byte may have
 * @token: the chunk's token, or 0 for a fresh one (a fork copy takes the
 *	token of the chunk it copies, see kheap_fork.c)
 * @span: bytes of token space the chunk owns, at least @size: the
 *	largest size the chunk may reach (KHEAP_IOC_EXTEND)
 *
 * The pages are not cleared: the caller fills every one of them before
 * anybody else sees it.
 *
 * Return: the chunk, with the caller's one reference, or NULL when no
 * free extent fits (or the tokens ran out).
 */
struct kheap_chunk *kheap_chunk_new(struct kheap_dev *kd, u64 size, u64 align,
				    u64 limit, u64 token, u64 span)
{
	struct kheap_fit fit = { .align = align, .limit = limit };
	struct kheap_chunk *chunk;
	unsigned long addr;
	u64 token_end;

	if (size > kd->pool.size)
		return NULL;

	chunk = kzalloc(sizeof(*chunk), GFP_KERNEL);
	if (!chunk)
		return NULL;

	mutex_lock(&kd->lock);
	/* Running out of tokens is as final as running out of pool. */
	if (!token &&
	    (check_add_overflow(kd->next_token, span, &token_end) ||
	     token_end > kheap_token_limit()))
		goto err_unlock;
	if (align > PAGE_SIZE || limit < kd->pool.phys + kd->pool.size - 1)
		addr = kheap_pool_take(kd, size, kheap_fit_aligned, &fit);
	else if (span > size)	/* growable: room after it */
		addr = kheap_pool_take(kd, size, kheap_fit_largest, NULL);
	else
		addr = kheap_pool_take(kd, size, gen_pool_best_fit, NULL);
	if (!addr)
		goto err_unlock;
	if (token) {
		chunk->token = token;
	} else {
		chunk->token = kd->next_token;
		kd->next_token = token_end;
	}
	kd->chunks_in_use++;
	mutex_unlock(&kd->lock);

	kref_init(&chunk->ref);
	chunk->kd = kd;
	chunk->phys = addr;
	chunk->size = size;
	chunk->span = span;
	INIT_LIST_HEAD(&chunk->qnode);
	INIT_LIST_HEAD(&chunk->copies);
	return chunk;

err_unlock:
	mutex_unlock(&kd->lock);
	kfree(chunk);
	return NULL;
}

/**
 * kheap_file_insert() - make a file the owner of a chunk
 * @kf: the file
 * @chunk: a chunk owned by no file; the file takes a new reference
 *
 * Return: 0, -EEXIST when @kf owns a chunk with an overlapping token
 * range already, or -ENOMEM.
 */
int kheap_file_insert(struct kheap_file *kf, struct kheap_chunk *chunk)
{
	pgoff_t pgoff = kheap_chunk_pgoff(chunk);
	int ret;

	mutex_lock(&kf->lock);
	/* The whole span: the chunk's tokens as far as it may grow. */
	ret = mtree_insert_range(&kf->chunks, pgoff,
				 pgoff + (chunk->span >> PAGE_SHIFT) - 1, chunk,
				 GFP_KERNEL);
	if (!ret) {
		kheap_chunk_get(chunk);
		kf->nr_chunks++;
		kf->nr_bytes += chunk->size;
	}
	mutex_unlock(&kf->lock);
	return ret;
}

/**
 * kheap_chunk_alloc() - allocate a zeroed chunk for a file
 * @kf: the file that will own the chunk
 * @size: bytes, a non-zero multiple of PAGE_SIZE
 * @align: physical alignment, a power of two of at least PAGE_SIZE
 * @limit: highest physical address the chunk's last byte may have
 * @flags: KHEAP_ALLOC_SHARED: the chunk stays shared with fork() children;
 *	KHEAP_ALLOC_GROWABLE: its tokens span the pool's size
 * @token: the chunk's token on success
 * @phys: the chunk's physical address on success
 * @chunk_size: the chunk's size on success
 *
 * On success the chunk is already visible to the file (FREE, mmap).
 *
 * Return: 0, -ENOMEM when no free extent fits, or -EINTR when a fatal
 * signal interrupted the zeroing; on error the pool is as it was.
 */
int kheap_chunk_alloc(struct kheap_file *kf, u64 size, u64 align, u64 limit,
		      u64 flags, u64 *token, phys_addr_t *phys,
		      size_t *chunk_size)
{
	u64 span = flags & KHEAP_ALLOC_GROWABLE ? kf->kd->pool.size : size;
	struct kheap_chunk *chunk;
	int ret;

	chunk = kheap_chunk_new(kf->kd, size, align, limit, 0, span);
	if (!chunk)
		return -ENOMEM;
	chunk->shared = flags & KHEAP_ALLOC_SHARED;

	/* Outside any lock: clearing a large chunk takes a while. */
	ret = kheap_pool_zero(chunk->phys, chunk->size);
	if (!ret)
		ret = kheap_file_insert(kf, chunk);
	if (!ret) {
		*token = chunk->token;
		*phys = chunk->phys;
		*chunk_size = chunk->size;
	}
	/* Ours; on error nobody else has seen the chunk, so it is the last. */
	kheap_chunk_put(chunk);
	return ret;
}

/**
 * kheap_chunk_free() - give up a file's ownership of a chunk
 * @kf: the file
 * @token: the chunk's token
 *
 * The chunk lives on while it is mapped.
 *
 * Return: 0, or -EINVAL if @kf does not own a chunk with that token.
 */
int kheap_chunk_free(struct kheap_file *kf, u64 token)
{
	struct kheap_chunk *chunk;

	mutex_lock(&kf->lock);
	chunk = kheap_chunk_lookup(kf, token);
	if (!chunk) {
		mutex_unlock(&kf->lock);
		return -EINVAL;
	}
	mtree_erase(&kf->chunks, kheap_chunk_pgoff(chunk));
	kf->nr_chunks--;
	kf->nr_bytes -= chunk->size;
	mutex_unlock(&kf->lock);

	/* The owner's reference. */
	kheap_chunk_put(chunk);
	return 0;
}

/**
 * kheap_chunk_find() - look up a chunk a file owns
 * @kf: the file
 * @token: the chunk's token
 *
 * Return: the chunk with a new reference, to be dropped with
 * kheap_chunk_put(), or NULL if @kf owns no chunk with that token.
 */
struct kheap_chunk *kheap_chunk_find(struct kheap_file *kf, u64 token)
{
	struct kheap_chunk *chunk;

	mutex_lock(&kf->lock);
	chunk = kheap_chunk_lookup(kf, token);
	if (chunk)
		kheap_chunk_get(chunk);
	mutex_unlock(&kf->lock);
	return chunk;
}

/**
 * kheap_chunk_find_range_locked() - look up the chunk covering page offsets
 * @kf: the file, with &kheap_file.lock held
 * @pgoff: first page offset (mmap() offset in pages)
 * @nr_pages: number of pages, at least one
 *
 * Return: the chunk owned by @kf that covers all of [@pgoff, @pgoff +
 * @nr_pages) at its current size, with a new reference, or NULL if there
 * is none.
 */
struct kheap_chunk *kheap_chunk_find_range_locked(struct kheap_file *kf,
						  pgoff_t pgoff,
						  unsigned long nr_pages)
{
	struct kheap_chunk *chunk;
	pgoff_t end;

	lockdep_assert_held(&kf->lock);

	if (check_add_overflow(pgoff, nr_pages, &end))
		return NULL;

	chunk = mtree_load(&kf->chunks, pgoff);
	if (!chunk ||
	    end - kheap_chunk_pgoff(chunk) > kheap_chunk_pages(chunk))
		return NULL;
	kheap_chunk_get(chunk);
	return chunk;
}
