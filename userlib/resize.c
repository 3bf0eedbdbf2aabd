// SPDX-License-Identifier: MIT
/*
 * resize.c - dedicated blocks resized in place (realloc).
 *
 * A dedicated block owns its chunk.  realloc to a larger size first uses
 * the chunk's own room (a chunk reused from the cache may be larger than
 * its block), then asks the provider to extend the chunk into the pool
 * pages right after it (KHEAP_IOC_EXTEND: the kernel zeroes only the new
 * pages, and no byte moves); only when those are taken does the caller
 * move the block.  realloc to a smaller size that leaves a worthwhile
 * tail gives the tail back to the pool (KHEAP_IOC_SHRINK), so a 40 MiB
 * block cut to 5 MiB holds 5 MiB.
 *
 * Dedicated chunks are allocated growable (PROV_GROWABLE).  Nothing is
 * resized while devices are attached or VFIO containers registered (their
 * mappings cover each chunk whole), for shared chunks, nor for a fork
 * child's inherited chunks (the parent's file owns them).
 *
 * Everything here runs under kh.lock.
 */
#include "dma.h"
#include "internal.h"

static inline uintptr_t round_up_gran(uintptr_t x)
{
	return (x + GRANULE - 1) & ~(uintptr_t)(GRANULE - 1);
}

static int may_resize(const struct chunk *ch)
{
	return ch->type == CH_HUGE && !ch->c.shared && !ch->c.inherited &&
	       kh.prov->shrink && kh.prov->extend && !dma_in_use();
}

/* Granules [from, to) of the window now belong to ch (or to nobody). */
static void claim(struct chunk *ch, uintptr_t from, uintptr_t to, int own)
{
	for (size_t g = gran_of(from), e = gran_of(to); g < e; g++) {
		kh.owner[g] = own ? ch : NULL;
		khm.kind[g] = own ? K_HUGE : K_NONE;
	}
}

/* Grow ch so that it ends at end; 1 when it did. */
static int extend_to(struct chunk *ch, uintptr_t end)
{
	uintptr_t old_end = ch->start + ch->c.size;

	if (!may_resize(ch) || !ch->c.growable ||
	    kh.prov->extend(&ch->c, end - ch->start))
		return 0;
	claim(ch, old_end, end, 1);
	kh.held += end - old_end;
	if (kh.held > kh.peak_held)
		kh.peak_held = kh.held;
	return 1;
}

/*
 * Cut ch to end when the tail is worth a system call: at least a granule
 * and an eighth of the chunk (a block shrinking by a few bytes at a time
 * keeps its chunk).
 */
static void shrink_to(struct chunk *ch, uintptr_t end)
{
	uintptr_t old_end = ch->start + ch->c.size;
	size_t tail = old_end - end;

	if (tail < GRANULE || tail < ch->c.size / 8 || !may_resize(ch))
		return;
	if (kh.prov->shrink(&ch->c, end - ch->start))
		return;
	claim(ch, end, old_end, 0);
	kh.held -= tail;
	if (ch->dirty_end > end)
		ch->dirty_end = end;
}

int heap_resize_huge(void *p, size_t n)
{
	struct chunk *ch = kh.owner[gran_of((uintptr_t)p)];
	uintptr_t v = (uintptr_t)p, end;

	if (n > kh.pool.size)
		return 0;
	end = round_up_gran(v + n);
	if (end > ch->start + ch->c.size) {
		if (!extend_to(ch, end))
			return 0;
		/* A live block's usable area counts as dirty (calloc of
		 * a cached chunk clears below dirty_end). */
		ch->uend = end;
		ch->dirty_end = end;
		return 1;
	}
	if (end >= ch->uend) {
		ch->uend = end;
		if (ch->dirty_end < end)
			ch->dirty_end = end;
		return 1;
	}
	shrink_to(ch, end);
	ch->uend = end;
	return 1;
}
