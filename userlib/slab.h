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
 *
 * With threads, a slab belongs to the thread whose cache first refilled
 * from it (its owner) until that thread exits: only the owner refills
 * from it, and the others' frees of its objects go back to it
 * (tcache.h, remote frees) instead of into their own caches.  So two
 * live threads never get objects of one slab, and never write one cache
 * line (the objects' or their in-use bytes') without sharing an object.
 * Unowned slabs (of threads gone, or allocated without a cache) are on
 * the class's partial list, and any thread caches their objects when it
 * frees them; owned ones are on their owner's.
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
	uint8_t listed;		/* on a partial list: its owner's or its class's */
	struct slab *next, *prev;
	struct tcache *owner;	/* the thread cache that refills from it */
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

struct tcache;
/* Under the heap lock.  Fills out[] with up to want objects of class c
 * from slabs of owner (NULL: unowned ones), taking an unowned slab, a new
 * one, or at the last another thread's; returns how many (0: out of
 * memory). */
unsigned slab_alloc_batch(unsigned c, void **out, unsigned want,
			  struct tcache *owner)
	__attribute__((visibility("hidden")));
/* Under the heap lock: tc's thread is gone; its slabs become unowned. */
void slab_disown(struct tcache *tc) __attribute__((visibility("hidden")));
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
