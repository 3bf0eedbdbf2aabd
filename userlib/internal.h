/* SPDX-License-Identifier: MIT */
/*
 * internal.h - state shared by the allocator's parts.
 *
 * The heap owns one virtual window that mirrors the pool (provider.h).  It
 * is cut into 64 KiB granules; per granule, out of band and in private
 * memory, the heap keeps:
 *	kind[g]		what lives there: a slab of class k-1 (1..NCLASS),
 *			an arena (TLSF blocks), a dedicated ("huge") chunk,
 *			or nothing; K_FOREIGN marks a fork child's inherited
 *			memory when it is shared with the parent (a module
 *			older than ABI 3);
 *	owner[g]	the chunk that contains the granule;
 *	slabs[g]	the slab descriptor when the granule is a slab;
 *	chunks[g]	the chunk descriptor when a chunk starts there.
 * So any pointer finds its metadata by offset arithmetic: g = (p - lo) >> 16.
 *
 * And per 16 bytes of window (every block, small or not, starts on a
 * 16-byte boundary), an in-use byte: live[(p - lo) >> 4] is LIVE_USED
 * exactly while a block starting at p is the caller's.  It is set when a
 * block is handed out (thread-cache pops included) and set to LIVE_FREED
 * when it is freed, before the block enters a thread cache, a slab or
 * TLSF; so a double free, in whatever cache the block sits, and a free of
 * anything but a block's start are caught by one byte, on every path.
 * Bytes, not bits: the owning thread writes its block's byte without a
 * lock, and neighbouring blocks may belong to other threads.
 */
#ifndef KHEAP_INTERNAL_H
#define KHEAP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "debug.h"
#include "kheap.h"
#include "lock.h"
#include "provider.h"
#include "slab.h"
#include "tlsf.h"

#define HIDDEN __attribute__((visibility("hidden")))
#define API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define GRANULE_SHIFT	16
#define GRANULE		((size_t)1 << GRANULE_SHIFT)

#define K_NONE		0x00
#define K_ARENA		0x40
#define K_HUGE		0x41
#define K_FOREIGN	0x80	/* or-ed in: inherited, still shared */

#define MAX_ALIGN	((size_t)1 << 30)
/* The largest alignment the kernel gives an opener without addresses. */
#define WITHHELD_MAX_ALIGN	((size_t)2 << 20)

#define LIVE_SHIFT	4
#define LIVE_NONE	0	/* no block starts here */
#define LIVE_USED	1	/* a block starts here and is the caller's */
#define LIVE_FREED	2	/* a block started here and was freed */

/* Layout assumptions the code relies on without checking at run time. */
_Static_assert(sizeof(size_t) == 8 && sizeof(void *) == 8,
	       "64-bit only: TLSF sizes and clzll on size_t");
_Static_assert(SLAB_SIZE == GRANULE,
	       "a slab is found as the granule of its objects");
_Static_assert(NCLASS < K_ARENA && (K_HUGE & K_FOREIGN) == 0 &&
	       (NCLASS & K_FOREIGN) == 0,
	       "kind bytes: classes 1..NCLASS, arena, huge, foreign bit apart");
_Static_assert(SLAB_OBJ_OFF >= TLSF_HDR && SLAB_OBJ_OFF % 64 == 0,
	       "slab objects start past TLSF's header, 64-byte aligned");
_Static_assert(SMALL_MAX < SLAB_SIZE / 32,
	       "a slab holds a useful number of its largest objects");
_Static_assert(GRANULE % 4096 == 0, "granules are whole pages");
_Static_assert(((size_t)1 << LIVE_SHIFT) == TLSF_ALIGN &&
	       (SLAB_OBJ_OFF & (TLSF_ALIGN - 1)) == 0,
	       "every block starts on its own in-use byte (class sizes are "
	       "multiples of 16: kheap__check checks the table)");

/* Chunk cache bounds (arena.c): min(pool / 8, CACHE_MAX_BYTES) bytes and
 * CACHE_MAX_CHUNKS chunks. */
#define CACHE_MAX_BYTES		((size_t)64 << 20)
#define CACHE_MAX_CHUNKS	8

enum chunk_type { CH_ARENA = 1, CH_HUGE = 2 };

struct chunk {
	struct kheap_chunk c;
	struct chunk *next, *prev;	/* arenas or huge list */
	uintptr_t start;		/* virtual address */
	uintptr_t dirty_end;		/* bytes from here on are zero */
	uintptr_t uend;			/* huge: end of the usable area */
	size_t used;			/* arena: usable bytes of its TLSF
					 * blocks in use (slabs included) */
	size_t spare_bytes;		/* arena: of those, spare slabs' */
	uint8_t type;
};

/* Read on every free: kept apart from the lock's cache line. */
struct heap_map {
	uintptr_t lo;		/* granule 0 starts here */
	size_t span;		/* bytes covered (ngran << GRANULE_SHIFT) */
	uint8_t *kind;
	uintptr_t base;		/* pool offset 0 */
	uint64_t phys;		/* pool physical address, 0 if withheld */
	size_t pool_size;
	uint8_t *live;		/* in-use byte per 16 bytes of window */
} __attribute__((aligned(64)));

struct heap {
	struct kheap_lock lock;
	int ready;
	int open_err;
	const struct kheap_provider *prov;
	struct kheap_pool pool;

	size_t ngran;
	struct chunk **owner;
	struct slab *slabs;
	struct chunk *chunks;
	void *meta;		/* one mapping for kind/owner/slabs/chunks */
	size_t meta_len;

	size_t arena_size;	/* regular arena chunk */
	size_t arena_align;
	size_t huge_min;	/* block sizes above go to dedicated chunks */

	struct tlsf tlsf;
	struct chunk *arenas;
	struct chunk *huges;
	struct slab_class cls[NCLASS];
	unsigned nspare_slabs;	/* of all classes (slab.c) */

	/* Freed dedicated chunks kept for reuse (most recent first); their
	 * granules are K_NONE (owner still the chunk), as if not held. */
	struct chunk *cached;
	uint64_t cached_bytes, ncached, cache_reuses;
	size_t cache_limit;	/* bytes */

	/* counters, under the lock */
	uint64_t out;		/* bytes handed out: live + thread-cached */
	uint64_t peak_out;
	uint64_t held, peak_held, nchunks;
	uint64_t failed;	/* atomic */
	uint64_t gen;		/* bumped to ask thread caches to flush */
	int grow_err;		/* the provider's last failure to give an
				 * arena (errno value, 0 for none) */
	int fork_pid;		/* the forking process, in the fork window */
	int fork_child_done;	/* the child's reset has run */
	int fork_lost;		/* a fork child whose parent had other
				 * threads: blocks they were moving between
				 * their caches and their callers are lost
				 * (kheap__check tolerates them) */
};

extern struct heap kh HIDDEN;
extern struct heap_map khm HIDDEN;

/*
 * Fork.  kheap's prepare handler takes the heap lock; a prepare, parent
 * or child handler of another library that runs while kheap holds it
 * (registered before libkheap's constructor registered kheap's) and
 * allocates would deadlock on it.  So from kheap's prepare to its
 * parent or child handler the forking thread is marked: its heap-lock
 * acquisitions pass (it holds the lock, the other threads wait on it),
 * its thread cache is set aside, and in the child the first allocation
 * before kheap's child handler runs does that handler's work first.
 */
extern __thread int kh_in_fork
	__attribute__((tls_model("initial-exec"), visibility("hidden")));
/* In the fork window: run the child's reset now if this is the child. */
void heap_fork_sync(void) HIDDEN;

static inline void fork_sync(void)
{
	if (unlikely(kh_in_fork))
		heap_fork_sync();
}

static inline void heap_lock(void)
{
	if (unlikely(kh_in_fork)) {
		heap_fork_sync();
		return;
	}
	kheap_lock(&kh.lock);
}

static inline void heap_unlock(void)
{
	if (unlikely(kh_in_fork))
		return;
	kheap_unlock(&kh.lock);
}

static inline size_t gran_of(uintptr_t p)
{
	return (p - khm.lo) >> GRANULE_SHIFT;
}

/* The in-use byte of a block starting at p (p inside the window). */
static inline uint8_t *live_of(uintptr_t p)
{
	return &khm.live[(p - khm.lo) >> LIVE_SHIFT];
}

/* arena.c, all under kh.lock unless noted */
int heap_ensure(void) HIDDEN;	/* takes the lock itself; 0 or -errno */
/* A TLSF block (growing the heap by an arena if needed); NULL when the
 * pool has no room.  dirty_before, if given, gets the arena's zero mark
 * before the allocation (for heap_calloc_clear). */
void *heap_alloc_block(size_t n, size_t align, uintptr_t *dirty_before) HIDDEN;
/* The same from the arenas already held, never growing the heap (a
 * thread cache's batch refill); NULL when they have no room. */
void *heap_alloc_block_held(size_t n) HIDDEN;
/* align value asking heap_alloc_block for room to grow (realloc). */
#define HEAP_ROOMY	((size_t)1)
void heap_free_block(void *p) HIDDEN;
int heap_resize_block(void *p, size_t n) HIDDEN;
/* A 64 KiB-aligned 64 KiB TLSF block for a slab; its block address. */
void *heap_alloc_frame(void) HIDDEN;
/* A dedicated chunk, fresh or from the chunk cache; NULL with *err an
 * errno value.  dirty_before, if given, gets the address below which the
 * block may hold old data (the block's start when it is all zero). */
void *heap_alloc_huge(size_t n, size_t align, unsigned int flags, int *err,
		      uintptr_t *dirty_before) HIDDEN;
/* A fork child's inherited chunk becomes its own (adopted), so that its
 * physical address is known; 0 or -errno (ENOMEM, EIO).  Under the lock. */
int heap_chunk_own(struct chunk *ch) HIDDEN;
/* Resize a dedicated block to n bytes in place (resize.c): inside its
 * chunk, by extending the chunk, or giving its tail back; 0 when the
 * block must move. */
int heap_resize_huge(void *p, size_t n) HIDDEN;
void heap_free_huge(struct chunk *c) HIDDEN;
/* Return spare slabs, every empty arena and every cached chunk to the
 * kernel. */
void heap_reclaim(void) HIDDEN;
/* The arena holding a TLSF block or slab frame p. */
static inline struct chunk *arena_of(const void *p)
{
	return kh.owner[gran_of((uintptr_t)p)];
}
/* trim.c, under the lock: flush tc (this thread's cache, or NULL), every
 * idle thread's cache, ask the busy ones to flush at their next refill,
 * then heap_reclaim(). */
struct tcache;
void heap_trim_locked(struct tcache *tc) HIDDEN;
/* Zero the first n bytes of a fresh block, skipping known-zero memory. */
void heap_calloc_clear(void *p, size_t n, uintptr_t dirty_before) HIDDEN;
size_t heap_usable_size(const void *p) HIDDEN;	/* lock-free */

/* Internal entry points for tests and benchmarks (static library). */
int kheap__use_provider(const struct kheap_provider *prov) HIDDEN;
void kheap__reset(void) HIDDEN;
int kheap__check(void) HIDDEN;
void kheap__flush_thread_cache(void) HIDDEN;

#endif
