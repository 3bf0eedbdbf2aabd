/* SPDX-License-Identifier: MIT */
/*
 * tlsf.h - two-level segregated fit allocator core.
 *
 * Works over any memory regions handed to it (kernel chunks in the library,
 * plain mappings in the host tests).  O(1) malloc and free, immediate
 * coalescing, 16-byte alignment.  Not thread-safe: the caller locks.
 *
 * Block layout (b = block address, 16-byte aligned):
 *
 *	b+0	prev_size	size of the previous block, valid only when
 *				PREV_FREE is set (it is the last word of the
 *				previous block's payload)
 *	b+8	size | flags	distance to the next block; FREE, PREV_FREE,
 *				FIRST (block starts a region)
 *	b+16	payload		user pointer; a free block keeps its list
 *				links in the first 16 bytes
 *
 * The payload runs up to next block + 8, so usable size = size - 8.  A
 * region ends in a zero-size sentinel block that is never free.
 */
#ifndef KHEAP_TLSF_H
#define KHEAP_TLSF_H

#include <stddef.h>
#include <stdint.h>

#define TLSF_ALIGN		16u
#define TLSF_HDR		16u	/* block address to user pointer */
#define TLSF_OVERHEAD		8u	/* block size minus usable size */
#define TLSF_FLAGS		15u	/* flag bits of a block's size word */
#define TLSF_MIN_BLOCK		32u
#define TLSF_SLI		5u	/* log2 of second-level lists */
#define TLSF_SL_COUNT		(1u << TLSF_SLI)
#define TLSF_FL_SHIFT		(TLSF_SLI + 4u)	/* 512: linear below */
#define TLSF_FL_COUNT		32u	/* blocks below 2^40 bytes */
#define TLSF_MAX_BLOCK		((size_t)1 << (TLSF_FL_COUNT + TLSF_FL_SHIFT - 2))
#define TLSF_REGION_OVERHEAD	16u	/* sentinel at the end */

struct tlsf_block;

struct tlsf {
	uint32_t fl_bitmap;
	uint32_t sl_bitmap[TLSF_FL_COUNT];
	struct tlsf_block *heads[TLSF_FL_COUNT][TLSF_SL_COUNT];
	size_t free_bytes;	/* sum of free block sizes */
	size_t free_blocks;
};

void tlsf_init(struct tlsf *t);

/* mem and size 16-byte aligned, size >= 64.  The whole region becomes one
 * free block followed by the sentinel. */
void tlsf_add_region(struct tlsf *t, void *mem, size_t size);
/* True when the region holds one free block and nothing else. */
int tlsf_region_is_empty(const void *mem, size_t size);
/* Take an empty region out of the free lists. */
void tlsf_remove_region(struct tlsf *t, void *mem);

void *tlsf_malloc(struct tlsf *t, size_t n);
/* From the largest free block (worst fit), so that the block is likely
 * followed by free space it can later grow into; for realloc moves. */
void *tlsf_malloc_roomy(struct tlsf *t, size_t n);
/* align a power of two; the user pointer is aligned. */
void *tlsf_memalign(struct tlsf *t, size_t align, size_t n);
/* A block whose block address (user pointer - 16) is aligned to align and
 * whose size is at least frame (a multiple of 16); returns the block
 * address.  Free it with tlsf_free(frame + TLSF_HDR). */
void *tlsf_alloc_frame(struct tlsf *t, size_t frame, size_t align);

/* Returns 1 when the free left its region completely empty. */
int tlsf_free(struct tlsf *t, void *p);

/* Shrink, or grow into a free next neighbour.  1 on success (p keeps its
 * contents and now has usable size >= n), 0 when it cannot. */
int tlsf_resize(struct tlsf *t, void *p, size_t n);

/* A used block's usable size: its size word, just below the user pointer,
 * less its flag bits (tlsf.c asserts the layout).
 * Inline: the thread caches read it on every medium malloc and free.  The
 * owner reads it without the lock while a neighbour's free may rewrite a
 * flag bit under it (tlsf.c, ld()): a relaxed atomic load. */
static inline size_t tlsf_usable_size(const void *p)
{
	const size_t *size_word = (const size_t *)p - 1;

	return (__atomic_load_n(size_word, __ATOMIC_RELAXED) &
		~(size_t)TLSF_FLAGS) - TLSF_OVERHEAD;
}
int tlsf_is_free(const void *p);
/* Largest request tlsf_malloc could satisfy right now. */
size_t tlsf_largest_free(const struct tlsf *t);

/* Block size that a request of n bytes takes; 0 on overflow. */
static inline size_t tlsf_block_size(size_t n)
{
	if (n > TLSF_MAX_BLOCK)
		return 0;
	n = (n + TLSF_OVERHEAD + TLSF_ALIGN - 1) & ~(size_t)(TLSF_ALIGN - 1);
	return n < TLSF_MIN_BLOCK ? TLSF_MIN_BLOCK : n;
}

/* Integrity: walk one region; calls visit for each block (may be NULL).
 * Returns the number of problems found, described through report. */
struct tlsf_walk_info {
	void *ptr;		/* user pointer */
	size_t size;		/* block size */
	int free;
};
typedef void (*tlsf_report_fn)(void *ctx, const char *fmt, ...);
int tlsf_check_region(const struct tlsf *t, const void *mem, size_t size,
		      void (*visit)(void *ctx, const struct tlsf_walk_info *),
		      void *ctx, tlsf_report_fn report);
/* Lists and bitmaps: every listed block is free, in the right list,
 * doubly linked correctly; bitmaps match; counters match. */
int tlsf_check_lists(const struct tlsf *t, void *ctx, tlsf_report_fn report);

#endif
