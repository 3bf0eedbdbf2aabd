/* SPDX-License-Identifier: MIT */
/*
 * extent.h - first-fit allocator of page runs over a bitmap.
 *
 * Used where few, large, page-granular ranges are handed out: the host
 * region provider's pool and the device provider's virtual window when
 * physical addresses are restricted.  Not thread-safe.
 */
#ifndef KHEAP_EXTENT_H
#define KHEAP_EXTENT_H

#include <stddef.h>
#include <stdint.h>

struct extent_map {
	uint64_t *bits;		/* 1 = page in use */
	size_t npages;
	size_t free_pages;
	size_t bytes;		/* size of the bits mapping */
};

int extent_init(struct extent_map *m, size_t npages);
void extent_destroy(struct extent_map *m);
/* First run of n free pages whose index i has (phase + i) % align == 0
 * (align in pages, a power of two); marks it used.  -1 when none. */
long extent_alloc(struct extent_map *m, size_t n, size_t align, size_t phase);
/* Mark the run of n pages at first used (it must be free). */
void extent_mark(struct extent_map *m, size_t first, size_t n);
void extent_free(struct extent_map *m, size_t first, size_t n);
/* Are the n pages at first all free (and inside the map)? */
int extent_range_free(const struct extent_map *m, size_t first, size_t n);
size_t extent_largest(const struct extent_map *m);

#endif
