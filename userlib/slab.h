/* SPDX-License-Identifier: MIT */
/*
 * slab.h - small objects (up to 1 KiB) in 64 KiB slabs of one size class.
 *
 * A slab is a TLSF block whose block address is a granule boundary, so the
 * slab of any small pointer is slabs[(p - lo) >> 16]: no per-object header.
 * Objects start 64 bytes into the slab (after TLSF's header words), so an
 * object is aligned to the largest power of two dividing its class size,
 * up to 64.  Free objects are chained through their first word; objects
 * never handed out are taken from a bump pointer.
 */
#ifndef KHEAP_SLAB_H
#define KHEAP_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define NCLASS		32
#define SMALL_MAX	1024
#define SLAB_SIZE	((size_t)1 << 16)
#define SLAB_OBJ_OFF	64

struct slab {
	void *free;		/* chain of freed objects */
	char *bump;		/* next never-used object */
	char *end;		/* end of the object area */
	uint32_t nfree;		/* chain + bump objects */
	uint32_t nobj;
	uint8_t cls;
	uint8_t listed;		/* on its class's partial list */
	struct slab *next, *prev;
};

struct slab_class {
	struct slab *partial;	/* slabs with free objects, not empty */
	struct slab *spare;	/* one empty slab kept for reuse */
	uint64_t nslabs;
};

extern const uint16_t kh_class_size[NCLASS] __attribute__((visibility("hidden")));
extern const uint8_t kh_size_class[SMALL_MAX / 16 + 1] __attribute__((visibility("hidden")));

static inline unsigned size_class(size_t n)
{
	return kh_size_class[(n + 15) >> 4];
}

/* Under the heap lock.  Fills out[] with up to want objects of class c;
 * returns how many (0: out of memory). */
unsigned slab_alloc_batch(unsigned c, void **out, unsigned want)
	__attribute__((visibility("hidden")));
/* Returns objects to their slabs. */
void slab_free_batch(void **objs, unsigned n)
	__attribute__((visibility("hidden")));
/* Frees the spare empty slabs. */
void slab_release_spares(void) __attribute__((visibility("hidden")));
/* Frees the spare empty slabs inside the arena chunk a (struct chunk). */
struct chunk;
void slab_release_spares_in(struct chunk *a)
	__attribute__((visibility("hidden")));
/* Smallest class whose size is >= n and whose objects are aligned to
 * align (<= 64); -1 if none. */
int slab_class_aligned(size_t n, size_t align)
	__attribute__((visibility("hidden")));

#endif
