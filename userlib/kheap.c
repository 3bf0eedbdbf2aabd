// SPDX-License-Identifier: MIT
/*
 * kheap.c - the public entry points.
 *
 * Requests up to 1 KiB are small (slabs, through the thread cache), up to
 * half an arena are TLSF blocks (thread cache for 1-128 KiB, refilled and
 * flushed in batches when the process has threads, tcache.c; else the
 * shared TLSF under the heap lock), larger ones get a dedicated chunk.
 * The fast paths touch only this thread's cache and the read-mostly
 * granule map.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tcache.h"


/*
 * One errno per case for the allocation functions (kheap.h): ENODEV, no
 * usable device; EACCES, the device or the kernel refused this process;
 * ENOMEM for everything else: the pool is full, or the kernel, a mapping
 * or a file table could not give what a new chunk needs.  Never EIO,
 * EFAULT or whatever else ioctl or mmap said along the way.
 */
static int alloc_errno(int err)
{
	if (err == ENODEV)
		return ENODEV;
	if (err == EACCES || err == EPERM)
		return EACCES;
	return ENOMEM;
}

static void note_failure(int err)
{
	__atomic_fetch_add(&kh.failed, 1, __ATOMIC_RELAXED);
	errno = alloc_errno(err);
}

static inline void out_add(uint64_t n)
{
	kh.out += n;
	if (kh.out > kh.peak_out)
		kh.peak_out = kh.out;
}

/* p becomes the caller's: its in-use byte says so until it is freed. */
static inline void *hand_out(void *p)
{
	if (p)
		*live_of((uintptr_t)p) = LIVE_USED;
	return p;
}

/* Thread-cache pops that hand the block out. */
static inline void *small_pop(struct tcache *tc, unsigned c)
{
	struct tc_bin *b = &tc->small[c];
	void *p = b->items[--b->count];

	tc_account(tc, -(ptrdiff_t)kh_class_size[c]);
	tc->small_used |= 1u << c;
	*live_of((uintptr_t)p) = LIVE_USED;	/* last: a byte store aliases */
	return p;
}

/* Into the thread cache's bin of small class c, which has room; the
 * caller marks the in-use byte. */
static inline void small_push(struct tcache *tc, unsigned c, void *p)
{
	struct tc_bin *b = &tc->small[c];

	b->items[b->count++] = p;
	tc_account(tc, kh_class_size[c]);
}

static inline void *med_pop(struct tcache *tc, size_t n)
{
	return hand_out(tc_med_pop(tc, n));
}

/* Last resort under the lock: flush this thread's cache and every idle
 * thread's, ask the busy ones to flush theirs, give spare slabs, empty
 * arenas and cached chunks back. */
static void reclaim_locked(struct tcache *tc)
{
	heap_trim_locked(tc);
}

/* A TLSF block from the shared heap; NULL with errno set (the provider's
 * failure to grow, when it had one). */
static void *central_block(struct tcache *tc, size_t n, size_t align,
			   uintptr_t *dirty)
{
	void *p;
	int err, short_pool = 0;

	heap_lock();
	kh.grow_err = 0;
	p = heap_alloc_block(n, align, dirty);
	if (!p) {
		reclaim_locked(tc);
		short_pool = 1;
		p = heap_alloc_block(n, align, dirty);
	}
	if (p)
		out_add(tlsf_usable_size(p));
	/* A medium miss: the next few of this size in the same trip (no
	 * batch when the pool just ran short: it could not spare them, nor
	 * while the process has one thread: its lock is a plain store, and
	 * a batch costs utilisation, tcache.c). */
	if (p && tc && !align && !short_pool && n > SMALL_MAX &&
	    n <= TC_MED_MAX && !kheap_single_threaded())
		tcache_med_refill_locked(tc, n);
	err = kh.grow_err;
	heap_unlock();
	if (!p)
		note_failure(err ? err : ENOMEM);
	return hand_out(p);
}

static void *central_huge(struct tcache *tc, size_t n, size_t align,
			  uintptr_t *dirty, unsigned int flags)
{
	void *p;
	int err = 0;

	heap_lock();
	p = heap_alloc_huge(n, align, flags, &err, dirty);
	if (!p && err == ENOMEM) {
		reclaim_locked(tc);
		p = heap_alloc_huge(n, align, flags, &err, dirty);
	}
	if (p)
		out_add(heap_usable_size(p));
	heap_unlock();
	if (!p)
		note_failure(err);
	return hand_out(p);
}

static void *small_slow(struct tcache *tc, unsigned c)
{
	void *p = NULL;
	size_t sz, nat;

	if (tc) {
		p = tcache_refill(tc, c);
	} else {
		heap_lock();
		if (slab_alloc_batch(c, &p, 1, NULL))
			out_add(kh_class_size[c]);
		heap_unlock();
	}
	if (p)
		return hand_out(p);
	/* No slab memory: a TLSF block of the class size still fits in the
	 * holes the slabs cannot use.  It keeps the alignment a slab object
	 * of the class has (kheap_aligned_alloc relies on it). */
	sz = kh_class_size[c];
	nat = sz & -sz;
	return central_block(tc, sz, nat >= 64 ? 64 : nat, NULL);
}

static inline int is_huge(size_t n)
{
	size_t bs = tlsf_block_size(n);

	return !bs || bs > kh.huge_min;
}

static void *malloc_slow_tc(struct tcache *tc, size_t n)
{
	void *p;

	if (n <= SMALL_MAX) {
		unsigned c = size_class(n);

		if (tc && tc->small[c].count)
			return small_pop(tc, c);
		return small_slow(tc, c);
	}
	if (is_huge(n))
		return central_huge(tc, n, 0, NULL, 0);
	if (tc && n <= TC_MED_MAX &&
	    ((p = med_pop(tc, n)) || (p = hand_out(tc_med_pop_any(tc, n)))))
		return p;
	return central_block(tc, n, 0, NULL);
}

static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	struct tcache *tc;
	void *p;
	int err;

	fork_sync();
	tc = tcache_get();
	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	if (tc)
		tc_enter(tc);
	p = malloc_slow_tc(tc, n);
	if (tc)
		tc_leave(tc);
	return p;
}

/* kheap_malloc's cached path for any thread count, and its misses. */
static __attribute__((noinline)) void *malloc_cached(size_t n)
{
	struct tcache *tc = kh_tc;
	void *p = NULL;

	if (likely(tc != NULL)) {
		tc_enter(tc);
		if (likely(n <= SMALL_MAX)) {
			unsigned c = size_class(n);

			if (likely(tc->small[c].count))
				p = small_pop(tc, c);
		} else if (n <= TC_MED_MAX) {
			/* any cached block that fits will do, even if the
			 * request would be a dedicated chunk in a tiny pool */
			p = med_pop(tc, n);
		}
		tc_leave(tc);
		if (p)
			return p;
	}
	return malloc_slow(n);
}

API void *kheap_malloc(size_t n)
{
	/* One thread and a cached small object: nothing to bracket
	 * (tc_enter), and a path short enough to save no register. */
	if (kheap_single_threaded()) {
		struct tcache *tc = kh_tc;

		if (likely(tc != NULL) && likely(n <= SMALL_MAX)) {
			unsigned int c = size_class(n);

			if (likely(tc->small[c].count))
				return small_pop(tc, c);
		}
	}
	return malloc_cached(n);
}

/* Like glibc: say what is wrong and abort; going on would corrupt the
 * heap, or hand one block to two owners. */
static __attribute__((noreturn, cold, noinline))
void bad_pointer(const char *fn, const void *p)
{
	uintptr_t v = (uintptr_t)p;
	const char *why = "invalid pointer";

	if (!strcmp(fn, "kheap_free") && v - khm.lo < khm.span &&
	    !(v & (TLSF_ALIGN - 1)) && *live_of(v) == LIVE_FREED)
		why = "double free detected";
	fprintf(stderr, "libkheap: %s(): %s (%p)\n", fn, why, p);
	abort();
}

/* The in-use byte of a block the caller may free or resize; aborts if p
 * is not the start of one of its blocks. */
static inline uint8_t *live_block(const char *fn, const void *p)
{
	uintptr_t v = (uintptr_t)p;
	uint8_t *lv;

	if (v - khm.lo >= khm.span || (v & (TLSF_ALIGN - 1)))
		bad_pointer(fn, p);
	lv = live_of(v);
	if (*lv != LIVE_USED)
		bad_pointer(fn, p);
	return lv;
}

/*
 * Is the small object in granule g of another live thread's slab
 * (slab.h)?  Then it goes back to that slab, not into this thread's
 * stack, where this thread would hand it out again beside the owner's
 * objects.  An unowned slab's object (its thread is gone) is cached as
 * before.  The owner is read without the lock: a slab changing hands
 * just now sends one object the other way, which costs nothing but that.
 */
static inline int remote_small(const struct tcache *tc, size_t g)
{
	const struct tcache *o;

	if (kheap_single_threaded())
		return 0;
	o = __atomic_load_n(&kh.slabs[g].owner, __ATOMIC_RELAXED);
	return o && o != tc;
}

static __attribute__((noinline)) void free_slow(void *p)
{
	uintptr_t v = (uintptr_t)p;
	struct tcache *tc;
	size_t g, u;
	unsigned k;

	if (!p)
		return;
	fork_sync();		/* before reading the kind: it may turn foreign */
	*live_block("kheap_free", p) = LIVE_FREED;
	g = gran_of(v);
	k = khm.kind[g];
	if (k & K_FOREIGN)
		return;		/* the fork parent's block */
	tc = tcache_get();
	if (k >= 1 && k <= NCLASS) {
		struct tc_bin *b;

		if (tc) {
			tc_enter(tc);
			b = &tc->small[k - 1];
			if (remote_small(tc, g)) {
				tcache_free_remote(tc, p, k - 1);
			} else {
				if (b->count >= b->cap)
					tcache_flush_small(tc, k - 1);
				small_push(tc, k - 1, p);
			}
			tc_freed(tc);
			tc_leave(tc);
			return;
		}
		heap_lock();
		slab_free_batch(&p, 1);
		kh.out -= kh_class_size[k - 1];
		heap_unlock();
	} else if (k == K_ARENA) {
		u = tlsf_usable_size(p);
		if (tc) {
			int cached;

			tc_enter(tc);
			cached = tc_med_push(tc, p, u);
			/* half a bin back at once, with threads (tcache.c) */
			if (!cached && !kheap_single_threaded() &&
			    u >= TC_MED_MIN && u <= TC_MED_MAX) {
				tcache_med_overflow(tc, p, u);
				cached = 1;
			}
			if (cached)
				tc_freed(tc);
			tc_leave(tc);
			if (cached)
				return;
		}
		heap_lock();
		kh.out -= u;
		heap_free_block(p);
		heap_unlock();
	} else if (k == K_HUGE) {
		struct chunk *c = kh.owner[g];

		kh_assert(c->start == v);
		heap_lock();
		kh.out -= c->uend - c->start;
		heap_free_huge(c);
		heap_unlock();
	} else {
		/* An in-use byte in no chunk: the map itself is corrupt. */
		bad_pointer("kheap_free", p);
	}
}

/*
 * kheap_free's path for any thread count: this thread's cache, after one
 * look at the block's in-use byte (anything but a block of ours in use
 * goes to free_slow, which says what is wrong).
 */
static __attribute__((noinline)) void free_cached(void *p)
{
	size_t span = __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE);
	uintptr_t off = (uintptr_t)p - khm.lo;
	struct tcache *tc = kh_tc;

	if (likely(off < span) && likely(tc != NULL) &&
	    likely(!(off & (TLSF_ALIGN - 1)))) {
		unsigned k = khm.kind[off >> GRANULE_SHIFT];
		uint8_t *lv = &khm.live[off >> LIVE_SHIFT];
		int done = 0;

		if (unlikely(*lv != LIVE_USED))
			bad_pointer("kheap_free", p);
		tc_enter(tc);
		if (likely(k - 1u < NCLASS)) {
			const struct tc_bin *b = &tc->small[k - 1];

			if (unlikely(remote_small(tc, off >> GRANULE_SHIFT))) {
				*lv = LIVE_FREED;
				tcache_free_remote(tc, p, k - 1);
				done = 1;
			} else if (likely(b->count < b->cap)) {
				small_push(tc, k - 1, p);
				*lv = LIVE_FREED;	/* last: it aliases */
				done = 1;
			}
		} else if (k == K_ARENA &&
			   tc_med_push(tc, p, tlsf_usable_size(p))) {
			*lv = LIVE_FREED;
			done = 1;
		}
		if (done)
			tc_freed(tc);
		tc_leave(tc);
		if (done)
			return;
	}
	free_slow(p);
}

API void kheap_free(void *p)
{
	/* One thread, a small object in use, room in its bin: no bracket,
	 * no slab owner to ask (every slab is this thread's), no register
	 * saved.  Anything else, a bad pointer included, goes the long way. */
	if (kheap_single_threaded()) {
		size_t span = __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE);
		uintptr_t off = (uintptr_t)p - khm.lo;
		struct tcache *tc = kh_tc;
		unsigned int k;
		uint8_t *lv;

		if (unlikely(off >= span) || unlikely(tc == NULL) ||
		    unlikely(off & (TLSF_ALIGN - 1)))
			goto general;
		k = khm.kind[off >> GRANULE_SHIFT];
		lv = &khm.live[off >> LIVE_SHIFT];
		if (likely(k - 1u < NCLASS) && likely(*lv == LIVE_USED)) {
			const struct tc_bin *b = &tc->small[k - 1];

			if (likely(b->count < b->cap) &&
			    likely(tc->sweep_in > 1)) {
				small_push(tc, k - 1, p);
				tc->sweep_in--;
				*lv = LIVE_FREED;	/* last: it aliases */
				return;
			}
		}
	}
general:
	free_cached(p);
}

API void *kheap_calloc(size_t nmemb, size_t size)
{
	size_t n;
	struct tcache *tc;
	uintptr_t dirty = 0;
	void *p;
	int err;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		note_failure(ENOMEM);
		return NULL;
	}
	if (n <= SMALL_MAX) {
		p = kheap_malloc(n);
		if (p)
			memset(p, 0, n);
		return p;
	}
	fork_sync();
	tc = tcache_get();
	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	if (is_huge(n)) {
		/* Fresh chunks are zero; a cached one is clean above its
		 * high-water mark. */
		p = central_huge(tc, n, 0, &dirty, 0);
		if (p && dirty > (uintptr_t)p)
			memset(p, 0, dirty - (uintptr_t)p < n ?
				     dirty - (uintptr_t)p : n);
		return p;
	}
	if (tc && n <= TC_MED_MAX) {
		tc_enter(tc);
		p = med_pop(tc, n);
		tc_leave(tc);
		if (p) {
			memset(p, 0, n);
			return p;
		}
	}
	p = central_block(tc, n, 0, &dirty);
	if (!p)
		return NULL;
	heap_calloc_clear(p, n, dirty);
	return p;
}

static void *aligned_alloc_impl(size_t align, size_t n)
{
	struct tcache *tc;
	void *p;
	int err;

	if (align <= TLSF_ALIGN)
		return kheap_malloc(n);
	if (n <= SMALL_MAX && align <= 64) {
		int c = slab_class_aligned(n, align);

		if (c >= 0)
			return kheap_malloc(kh_class_size[c]);
	}
	fork_sync();
	tc = tcache_get();
	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	/*
	 * Addresses withheld: the kernel places chunks at most 2 MiB aligned
	 * for this process (more would tell address bits), so a larger
	 * alignment could hold virtually but not physically.
	 */
	if (!khm.phys && align > WITHHELD_MAX_ALIGN) {
		__atomic_fetch_add(&kh.failed, 1, __ATOMIC_RELAXED);
		errno = EINVAL;
		return NULL;
	}
	if (n > TLSF_MAX_BLOCK || is_huge(n + align + TLSF_MIN_BLOCK))
		return central_huge(tc, n, align, NULL, 0);
	if (tc && n > TC_MED_MIN && n <= TC_MED_MAX) {
		tc_enter(tc);
		p = hand_out(tc_med_pop_aligned(tc, n, align));
		tc_leave(tc);
		if (p)
			return p;
	}
	return central_block(tc, n, align, NULL);
}

API void *kheap_aligned_alloc(size_t align, size_t n)
{
	if (!align || (align & (align - 1)) || align > MAX_ALIGN) {
		errno = EINVAL;
		return NULL;
	}
	return aligned_alloc_impl(align, n);
}

API int kheap_posix_memalign(void **memptr, size_t align, size_t n)
{
	void *p;
	int saved = errno;

	if (align < sizeof(void *) || (align & (align - 1)) ||
	    align > MAX_ALIGN)
		return EINVAL;
	p = aligned_alloc_impl(align, n);
	if (!p) {
		int err = errno;

		errno = saved;
		return err;
	}
	*memptr = p;
	return 0;
}

API size_t kheap_malloc_usable_size(const void *p)
{
	if (!p)
		return 0;
	return heap_usable_size(p);
}

/*
 * A block that realloc grows to an eighth of an arena (and at least a
 * MiB) moves into a dedicated chunk of its own, as glibc moves such a
 * block into an mmap() past its threshold: from there each doubling
 * extends the chunk in place (resize.c) while the pool pages after it
 * are free, where an arena block would move once more, and copy all of
 * itself, when it outgrows half the arena.  Only when the pool has no
 * such run does it stay in an arena.
 */
static inline int grows_alone(size_t n)
{
	return n >= ((size_t)1 << 20) && n >= kh.huge_min / 4 && !is_huge(n);
}

/* Not central_huge(): no room here is no failure of the caller's (no
 * reclaim, no errno, no failed request); the block stays in its arena. */
static void *grow_alone(size_t n)
{
	void *p;
	int err = 0;

	heap_lock();
	p = heap_alloc_huge(n, 0, 0, &err, NULL);
	if (p)
		out_add(heap_usable_size(p));
	heap_unlock();
	return hand_out(p);
}

/* p's contents in a new block of n bytes, p freed unless foreign (a fork
 * child's inherited block); alone: try a chunk of its own first. */
static void *realloc_move(void *p, size_t old, size_t n, int foreign,
			  int alone)
{
	const struct chunk *ch = kh.owner[gran_of((uintptr_t)p)];
	void *q = NULL;

	/* Growing into TLSF range: a chunk of its own for a large block,
	 * else the new block from the largest free block, so the next
	 * growth likely happens in place.  A shared block stays shared. */
	if (!foreign && khm.kind[gran_of((uintptr_t)p)] == K_HUGE &&
	    ch->c.shared) {
		q = kheap_malloc_shared(n);
	} else if (n > old && n > SMALL_MAX && !is_huge(n)) {
		if (alone && grows_alone(n))
			q = grow_alone(n);
		if (!q)
			q = central_block(tcache_get(), n, HEAP_ROOMY, NULL);
	} else {
		q = kheap_malloc(n);
	}

	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	if (!foreign)
		kheap_free(p);
	return q;
}

API void *kheap_realloc(void *p, size_t n)
{
	uintptr_t v = (uintptr_t)p;
	size_t g, old;
	unsigned k;
	uint8_t *lv;

	if (!p)
		return kheap_malloc(n);
	if (!n) {
		kheap_free(p);
		return NULL;
	}
	fork_sync();
	lv = live_block("kheap_realloc", p);
	g = gran_of(v);
	k = khm.kind[g];
	old = heap_usable_size(p);
	if (!old)
		bad_pointer("kheap_realloc", p);
	if (k & K_FOREIGN) {
		/* The parent's block stays; to the child it is gone. */
		void *q = realloc_move(p, old, n, 1, 1);

		if (q)
			*lv = LIVE_FREED;
		return q;
	}
	if (k >= 1 && k <= NCLASS) {
		/* Same slot while it fits and is not mostly wasted. */
		if (n <= old && (n > old / 2 || old <= 16))
			return p;
		return realloc_move(p, old, n, 0, 1);
	}
	if (k == K_ARENA) {
		int ok, alone;

		if (n <= SMALL_MAX && n <= old / 2)
			return realloc_move(p, old, n, 0, 1);
		/* Large enough to grow alone: into a chunk of its own now,
		 * while the copy is small; failing that, in place or moved
		 * within the arenas (without asking the kernel twice). */
		alone = n > old && grows_alone(n);
		if (alone) {
			void *q = grow_alone(n);

			if (q) {
				memcpy(q, p, old);
				kheap_free(p);
				return q;
			}
		}
		/* In place when the next block is free, even past the
		 * dedicated-chunk threshold: no copy, no kernel call. */
		if (tlsf_block_size(n)) {
			heap_lock();
			ok = heap_resize_block(p, n);
			if (ok) {
				kh.out -= old;
				out_add(tlsf_usable_size(p));
			}
			heap_unlock();
			if (ok)
				return p;
		}
		return realloc_move(p, old, n, 0, !alone);
	}
	/* Dedicated chunk: resized in place when the pool allows
	 * (resize.c); a shrink gives a large enough tail back. */
	if (n <= old && (n > old / 2 || is_huge(n))) {
		heap_lock();
		heap_resize_huge(p, n);
		kh.out -= old;
		out_add(heap_usable_size(p));
		heap_unlock();
		return p;
	}
	if (n > old) {
		int ok;

		heap_lock();
		ok = heap_resize_huge(p, n);
		if (ok) {
			kh.out -= old;
			out_add(heap_usable_size(p));
		}
		heap_unlock();
		if (ok)
			return p;
	}
	return realloc_move(p, old, n, 0, 1);
}

API void *kheap_malloc_shared(size_t n)
{
	int err;

	fork_sync();
	err = heap_ensure();
	if (err) {
		note_failure(-err);
		return NULL;
	}
	return central_huge(tcache_get(), n ? n : 1, 0, NULL, PROV_SHARED);
}

/* A fork child's first question about a chunk's address: adopt it. */
static __attribute__((noinline)) uint64_t chunk_phys_slow(struct chunk *ch)
{
	uint64_t phys;
	int err;

	heap_lock();
	err = heap_chunk_own(ch);
	phys = ch->c.phys;
	heap_unlock();
	if (err)
		errno = -err;
	return err ? 0 : phys;
}

API uint64_t kheap_phys(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	struct chunk *ch;
	uint64_t phys;

	if (v - khm.lo >= khm.span || khm.kind[gran_of(v)] == K_NONE) {
		errno = EINVAL;
		return 0;
	}
	/* Withheld: no chunk of ours has an address to tell. */
	if (!khm.phys) {
		errno = EPERM;
		return 0;
	}
	fork_sync();
	ch = kh.owner[gran_of(v)];
	phys = __atomic_load_n(&ch->c.phys, __ATOMIC_ACQUIRE);
	if (unlikely(!phys)) {
		phys = chunk_phys_slow(ch);
		if (!phys)
			return 0;
	}
	return phys + (v - ch->start);
}

/* The block address at phys in chunk ch, or 0. */
static uintptr_t virt_in(const struct chunk *ch, uint64_t phys)
{
	uint64_t base = __atomic_load_n(&ch->c.phys, __ATOMIC_ACQUIRE);
	uintptr_t v;

	if (!base || phys - base >= ch->c.size)
		return 0;
	v = ch->start + (uintptr_t)(phys - base);
	return khm.kind[gran_of(v)] == K_NONE ? 0 : v;
}

API void *kheap_phys_to_virt(uint64_t phys)
{
	uint64_t off = phys - khm.phys;
	uintptr_t v = 0;

	if (!khm.span || !khm.phys || phys < khm.phys ||
	    off >= khm.pool_size) {
		errno = EINVAL;
		return NULL;
	}
	/* Until a fork a chunk sits at its pool offset in the window. */
	v = khm.base + (uintptr_t)off;
	if (kh.owner[gran_of(v)] && virt_in(kh.owner[gran_of(v)], phys) == v)
		return (void *)v;
	/* A fork child's chunks sit where the window had room. */
	v = 0;
	heap_lock();
	for (const struct chunk *ch = kh.arenas; ch && !v; ch = ch->next)
		v = virt_in(ch, phys);
	for (const struct chunk *ch = kh.huges; ch && !v; ch = ch->next)
		v = virt_in(ch, phys);
	heap_unlock();
	if (!v)
		errno = EINVAL;
	return (void *)v;
}

API int kheap_stats(struct kheap_stats *st)
{
	struct kheap_pool_usage u;
	uint64_t cached, largest;
	int err = heap_ensure();

	if (err) {
		errno = alloc_errno(-err);
		return -1;
	}
	memset(st, 0, sizeof(*st));
	cached = tcache_cached_total();
	heap_lock();
	st->peak_in_use = kh.peak_out;
	st->bytes_held = kh.held;
	st->chunks_held = kh.nchunks;
	st->peak_held = kh.peak_held;
	st->bytes_in_use = kh.out > cached ? kh.out - cached : 0;
	largest = tlsf_largest_free(&kh.tlsf);
	if (largest > kh.huge_min)
		largest = kh.huge_min - TLSF_OVERHEAD;
	for (const struct chunk *c = kh.cached; c; c = c->next)
		if (c->c.size > largest)
			largest = c->c.size;
	st->chunks_cached = kh.ncached;
	st->bytes_chunks_cached = kh.cached_bytes;
	st->chunk_reuses = kh.cache_reuses;
	st->arena_size = kh.arena_size;
	st->pool_size = kh.pool.size;
	if (kh.prov->usage(&u) == 0) {
		st->pool_free = u.free_bytes;
		if (u.largest_free > largest)
			largest = u.largest_free & ~(uint64_t)(GRANULE - 1);
	}
	heap_unlock();
	st->bytes_cached = cached;
	st->largest_free = largest;
	st->failed_requests = __atomic_load_n(&kh.failed, __ATOMIC_RELAXED);
	return 0;
}

void kheap__flush_thread_cache(void)
{
	struct tcache *tc = kh_tc;

	if (!tc)
		return;
	heap_lock();
	tcache_flush_all_locked(tc);
	heap_unlock();
}
