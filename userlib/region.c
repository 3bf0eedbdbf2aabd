// SPDX-License-Identifier: MIT
/*
 * region.c - a chunk provider over an ordinary anonymous mapping.
 *
 * It behaves like /dev/kheap as far as the allocator can tell: a pool of
 * pool_size bytes at a made-up physical address, page-granular chunks with
 * physical alignment, zero-filled chunks, ENOMEM when no extent is large
 * enough.  The host tests and benchmarks use it to run the very allocator
 * code that runs over the device.  The mapping is private, so a fork child
 * gets its own copy, as the device's children do, at the same (made-up)
 * physical address.  A shared chunk is a shared anonymous mapping laid
 * over its part of the region, so that writes cross fork() as they do
 * for the device's KHEAP_ALLOC_SHARED chunks.
 *
 * Withheld mode poses as a device loaded with restrict_phys=1 for an
 * unprivileged opener: no physical address, a window four times the pool
 * with chunks placed first-fit in it, at most pool_size bytes held.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "extent.h"
#include "provider.h"

#define REGION_PAGE	4096u

static struct {
	size_t size;
	uint64_t phys;		/* 0: withheld */
	size_t span;		/* window bytes */
	size_t held;		/* bytes in chunks */
	void *map;		/* whole reservation */
	size_t map_len;
	uintptr_t base;
	struct extent_map pages;	/* of the window */
} rg;

static int region_open(struct kheap_pool *pool)
{
	uintptr_t base;

	if (!rg.size)
		return -ENODEV;
	base = window_reserve(rg.span, rg.phys, &rg.map, &rg.map_len);
	if (!base)
		return -ENOMEM;
	if (mprotect((void *)base, rg.span, PROT_READ | PROT_WRITE) ||
	    extent_init(&rg.pages, rg.span / REGION_PAGE)) {
		munmap(rg.map, rg.map_len);
		return -ENOMEM;
	}
	rg.base = base;
	rg.held = 0;
	pool->phys = rg.phys;
	pool->size = rg.size;
	pool->page_size = REGION_PAGE;
	pool->base = base;
	pool->span = rg.span;
	return 0;
}

static int region_alloc(size_t size, size_t align, unsigned int flags,
			struct kheap_chunk *c)
{
	size_t n = (size + REGION_PAGE - 1) / REGION_PAGE;
	size_t al = align > REGION_PAGE ? align / REGION_PAGE : 1;
	long first;

	if (!size || (align & (align - 1)) || align > rg.size)
		return -EINVAL;
	if (n * REGION_PAGE > rg.size - rg.held)
		return -ENOMEM;
	first = extent_alloc(&rg.pages, n, al, (size_t)(rg.phys / REGION_PAGE));
	if (first < 0)
		return -ENOMEM;
	c->off = (size_t)first * REGION_PAGE;
	c->size = n * REGION_PAGE;
	c->token = c->off + REGION_PAGE;
	c->phys = rg.phys ? rg.phys + c->off : 0;
	c->shared = !!(flags & PROV_SHARED);
	c->inherited = 0;
	c->growable = !c->shared;
	if (c->shared &&
	    mmap((void *)(rg.base + c->off), c->size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		extent_free(&rg.pages, (size_t)first, n);
		return -ENOMEM;
	}
	rg.held += n * REGION_PAGE;
	return 0;
}

static void region_free(const struct kheap_chunk *c)
{
	/* Give the pages back so the next chunk here reads as zeroes. */
	if (c->shared)
		mmap((void *)(rg.base + c->off), c->size,
		     PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	else
		madvise((void *)(rg.base + c->off), c->size, MADV_DONTNEED);
	extent_free(&rg.pages, c->off / REGION_PAGE, c->size / REGION_PAGE);
	rg.held -= c->size;
}

static int region_usage(struct kheap_pool_usage *u)
{
	u->free_bytes = rg.size - rg.held;
	u->largest_free = (uint64_t)extent_largest(&rg.pages) * REGION_PAGE;
	if (u->largest_free > u->free_bytes)
		u->largest_free = u->free_bytes;
	return 0;
}

/* The child has a private copy of everything, region state included. */
static int region_atfork_child(void)
{
	return 1;
}

/* The child's copy sits at the same (made-up) address. */
static int region_adopt(struct kheap_chunk *c)
{
	c->phys = rg.phys ? rg.phys + c->off : 0;
	c->inherited = 0;
	return 0;
}

static void region_close(void)
{
	if (rg.map)
		munmap(rg.map, rg.map_len);
	extent_destroy(&rg.pages);
	rg.map = NULL;
	rg.base = 0;
}

/*
 * Devices, made up: each attachment sees the pool at its own fake I/O
 * virtual base, so host tests can tell device from physical addresses
 * and check the per-chunk bookkeeping.  A name starting with "missing"
 * does not exist.
 */
static int region_attach(const char *name, unsigned int dma_bits,
			 uint64_t *handle)
{
	static uint64_t last;

	(void)dma_bits;
	if (!strncmp(name, "missing", 7))
		return -ENODEV;
	*handle = ++last;
	return 0;
}

static int region_detach(uint64_t handle)
{
	(void)handle;
	return 0;
}

/* Chunk i's device base: distinct per handle, not the physical address,
 * and not contiguous across chunks (as behind an IOMMU). */
static int region_dma_addr(const struct kheap_chunk *c, uint64_t handle,
			   uint64_t *addr)
{
	*addr = (handle << 40) + 2 * (uint64_t)c->off + REGION_PAGE;
	return 0;
}

/* What the last sync asked for, so host tests can check the offsets. */
struct kheap_region_sync kheap__region_last_sync;

/* Records only: the library's own range checks are what tests see. */
static int region_sync(const struct kheap_chunk *c, size_t off, size_t len,
		       unsigned int flags)
{
	kheap__region_last_sync.token = c->token;
	kheap__region_last_sync.off = off;
	kheap__region_last_sync.len = len;
	kheap__region_last_sync.flags = flags;
	kheap__region_last_sync.count++;
	return 0;
}

/* As the device does: the tail reads as zeroes when it comes back. */
static int region_shrink(struct kheap_chunk *c, size_t size)
{
	if (c->shared || c->inherited)
		return -EOPNOTSUPP;
	madvise((void *)(rg.base + c->off + size), c->size - size,
		MADV_DONTNEED);
	extent_free(&rg.pages, (c->off + size) / REGION_PAGE,
		    (c->size - size) / REGION_PAGE);
	rg.held -= c->size - size;
	c->size = size;
	return 0;
}

static int region_extend(struct kheap_chunk *c, size_t size)
{
	size_t more = size - c->size;

	if (!c->growable || c->shared || c->inherited)
		return -EOPNOTSUPP;
	if (more > rg.size - rg.held ||
	    !extent_range_free(&rg.pages, (c->off + c->size) / REGION_PAGE,
			       more / REGION_PAGE))
		return -ENOSPC;
	extent_mark(&rg.pages, (c->off + c->size) / REGION_PAGE,
		    more / REGION_PAGE);
	rg.held += more;
	c->size = size;
	return 0;
}

static const struct kheap_provider region_provider = {
	.name = "region",
	.open = region_open,
	.alloc = region_alloc,
	.free = region_free,
	.usage = region_usage,
	.atfork_child = region_atfork_child,
	.adopt = region_adopt,
	.close = region_close,
	.attach = region_attach,
	.detach = region_detach,
	.dma_addr = region_dma_addr,
	.sync = region_sync,
	.shrink = region_shrink,
	.extend = region_extend,
};

const struct kheap_provider *kheap_region_provider(size_t pool_size,
						   uint64_t fake_phys)
{
	rg.size = pool_size & ~(size_t)(REGION_PAGE - 1);
	rg.span = rg.size;
	rg.phys = fake_phys ? fake_phys : (uint64_t)1 << 32;
	return &region_provider;
}

const struct kheap_provider *kheap_region_provider_withheld(size_t pool_size)
{
	rg.size = pool_size & ~(size_t)(REGION_PAGE - 1);
	rg.span = 4 * rg.size;
	rg.phys = 0;
	return &region_provider;
}
