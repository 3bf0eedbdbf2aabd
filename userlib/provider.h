/* SPDX-License-Identifier: MIT */
/*
 * provider.h - where arenas come from.
 *
 * A provider hands out chunks of one physically contiguous pool, already
 * mapped inside a virtual window.  Each chunk knows its own physical
 * address.  Until a fork the window mirrors the pool (the byte at pool
 * offset o lives at window base + o); in a fork child, whose inherited
 * chunks are copies elsewhere in the pool, and when physical addresses
 * are withheld, chunks are placed where the window has room, at a virtual
 * address congruent to their physical one modulo their alignment.
 * The library calls a provider only under the heap lock.
 *
 * Two providers exist: the device (/dev/kheap, device.c) and a region
 * (an ordinary mapping with a made-up physical base, region.c) that the
 * host tests and benchmarks use to exercise the same allocator code.
 */
#ifndef KHEAP_PROVIDER_H
#define KHEAP_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

struct kheap_pool {
	uint64_t phys;		/* physical address of pool offset 0; 0 when
				 * the kernel keeps physical addresses back */
	size_t size;		/* pool bytes */
	size_t page_size;
	uintptr_t base;		/* virtual address of pool offset 0 */
	size_t span;		/* window bytes from base (>= size) */
};

struct kheap_chunk {
	size_t off;		/* window offset of the first byte */
	size_t size;		/* bytes, a multiple of the page size */
	uint64_t token;		/* provider's handle */
	uint64_t phys;		/* physical address of the first byte; 0 when
				 * withheld, or in a fork child until the
				 * chunk is adopted */
	uint8_t shared;		/* stays shared with fork children */
	uint8_t inherited;	/* a fork child's, not adopted yet: the
				 * parent's file owns the token */
	uint8_t growable;	/* extend() may grow it in place */
};

/* alloc() flags */
#define PROV_SHARED	1u
#define PROV_GROWABLE	2u	/* may be extended in place later */

struct kheap_pool_usage {
	uint64_t free_bytes;	/* bytes of the pool that no chunk holds */
	uint64_t largest_free;	/* largest contiguous free extent */
};

struct kheap_provider {
	const char *name;
	/* Open the pool and map its window; 0 or -errno. */
	int (*open)(struct kheap_pool *pool);
	/* A chunk of size bytes (page multiple), window offset aligned to
	 * align (power of two); zero-filled; flags PROV_SHARED; 0 or
	 * -errno. */
	int (*alloc)(size_t size, size_t align, unsigned int flags,
		     struct kheap_chunk *c);
	void (*free)(const struct kheap_chunk *c);
	int (*usage)(struct kheap_pool_usage *u);
	/* In a fork child: stop sharing provider state with the parent.
	 * Returns 1 when the child's chunks are private copies (then each
	 * inherited chunk must be adopted before its physical address is
	 * known or it is freed to the pool), 0 when they stay shared with
	 * the parent (a module older than ABI 3). */
	int (*atfork_child)(void);
	/* A fork child's inherited chunk becomes its own: sets c->phys and
	 * clears c->inherited; 0 or -errno (ENOMEM: no room for the copy
	 * now, EIO: the copy was lost). */
	int (*adopt)(struct kheap_chunk *c);
	/* Give everything back and unmap the window (tests). */
	void (*close)(void);
	/* Devices: from attach on, every chunk (held or new) is mapped
	 * for the device; 0 or -errno. */
	int (*attach)(const char *name, unsigned int dma_bits,
		      uint64_t *handle);
	int (*detach)(uint64_t handle);
	/* Device address of the chunk's first byte; 0 or -errno. */
	int (*dma_addr)(const struct kheap_chunk *c, uint64_t handle,
			uint64_t *addr);
	/* Bytes [off, off + len) of the chunk, len > 0, change hands between
	 * the CPU and the attached devices (KHEAP_SYNC_FOR_DEVICE or
	 * KHEAP_SYNC_FOR_CPU); 0 or -errno.  NULL: nothing to do. */
	int (*sync)(const struct kheap_chunk *c, size_t off, size_t len,
		    unsigned int flags);
	/* A dma-buf of len bytes at offset off of the chunk (both page
	 * multiples, inside it), open(2) flags O_RDONLY or O_RDWR and
	 * O_CLOEXEC: its descriptor, or -errno.  NULL: no dma-bufs. */
	int (*export)(const struct kheap_chunk *c, size_t off, size_t len,
		      int flags);
	/* Resize a chunk in place, keeping off and the bytes below the new
	 * size (a page multiple); c->size follows.  shrink() gives the tail
	 * back to the pool; when the kernel cannot take it yet (a dma-buf
	 * covers it) the tail stays held until the chunk is freed, unmapped,
	 * and c->growable is cleared; 0 or -errno (EOPNOTSUPP: not here).
	 * extend() takes the pool pages right after the chunk, zeroed; 0 or
	 * -errno (ENOSPC: they are taken, EOPNOTSUPP: not growable).  NULL:
	 * chunks never change size. */
	int (*shrink)(struct kheap_chunk *c, size_t size);
	int (*extend)(struct kheap_chunk *c, size_t size);
};

/*
 * Reserve (PROT_NONE) a window of span bytes whose base is congruent to
 * phys modulo 1 GiB; *map and *map_len describe the whole reservation for
 * munmap().  Returns the base, or 0 when the address space is exhausted.
 */
uintptr_t window_reserve(size_t span, uint64_t phys, void **map,
			 size_t *map_len);

extern const struct kheap_provider kheap_device_provider;
/* Region provider: configure before first use. */
const struct kheap_provider *kheap_region_provider(size_t pool_size,
						   uint64_t fake_phys);
/* The region provider's record of its last sync call (host tests). */
struct kheap_region_sync {
	uint64_t token;
	size_t off, len;
	unsigned int flags;
	unsigned long count;
};
extern struct kheap_region_sync kheap__region_last_sync;
/* The same with physical addresses withheld (restrict_phys). */
const struct kheap_provider *kheap_region_provider_withheld(size_t pool_size);

#endif
