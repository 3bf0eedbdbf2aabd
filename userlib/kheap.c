// SPDX-License-Identifier: MIT
/*
 * kheap.c - the public entry points.
 *
 * Requests up to 1 KiB are small (slabs, through the thread cache), up to
 * half an arena are TLSF blocks (thread cache for 1-128 KiB, else the
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


static void note_failure(int err)
{
	__atomic_fetch_add(&kh.failed, 1, __ATOMIC_RELAXED);
	errno = err;
}

static inline void out_add(uint64_t n)
{
	kh.out += n;
	if (kh.out > kh.peak_out)
		kh.peak_out = kh.out;
}

/* Last resort under the lock: flush this thread's cache, ask the others
 * to flush theirs, give spare slabs and empty arenas back. */
static void reclaim_locked(struct tcache *tc)
{
	if (tc)
		tcache_flush_all_locked(tc);
	__atomic_store_n(&kh.gen, kh.gen + 1, __ATOMIC_RELAXED);
	if (tc)
		tc->gen = kh.gen;
	heap_reclaim();
}

/* A TLSF block from the shared heap. */
static void *central_block(struct tcache *tc, size_t n, size_t align,
			   uintptr_t *dirty)
{
	void *p;

	kheap_lock(&kh.lock);
	p = heap_alloc_block(n, align, dirty);
	if (!p) {
		reclaim_locked(tc);
		p = heap_alloc_block(n, align, dirty);
	}
	if (p)
		out_add(tlsf_usable_size(p));
	kheap_unlock(&kh.lock);
	return p;
}

static void *central_huge(struct tcache *tc, size_t n, size_t align,
			  uintptr_t *dirty)
{
	void *p;
	int err = 0;

	kheap_lock(&kh.lock);
	p = heap_alloc_huge(n, align, &err, dirty);
	if (!p && err == ENOMEM) {
		reclaim_locked(tc);
		p = heap_alloc_huge(n, align, &err, dirty);
	}
	if (p)
		out_add(heap_usable_size(p));
	kheap_unlock(&kh.lock);
	if (!p)
		note_failure(err);
	return p;
}

static void *small_slow(struct tcache *tc, unsigned c)
{
	void *p = NULL;
	size_t sz, nat;

	if (tc) {
		p = tcache_refill(tc, c);
	} else {
		kheap_lock(&kh.lock);
		if (slab_alloc_batch(c, &p, 1))
			out_add(kh_class_size[c]);
		kheap_unlock(&kh.lock);
	}
	if (p)
		return p;
	/* No slab memory: a TLSF block of the class size still fits in the
	 * holes the slabs cannot use.  It keeps the alignment a slab object
	 * of the class has (kheap_aligned_alloc relies on it). */
	sz = kh_class_size[c];
	nat = sz & -sz;
	p = central_block(tc, sz, nat >= 64 ? 64 : nat, NULL);
	if (!p)
		note_failure(ENOMEM);
	return p;
}

static inline int is_huge(size_t n)
{
	size_t bs = tlsf_block_size(n);

	return !bs || bs > kh.huge_min;
}

static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	struct tcache *tc = tcache_get();
	void *p;
	int err;

	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	if (n <= SMALL_MAX) {
		unsigned c = size_class(n);
		struct tc_bin *b;

		if (tc && (b = &tc->small[c])->count) {
			tc_account(tc, -(ptrdiff_t)kh_class_size[c]);
			return b->items[--b->count];
		}
		return small_slow(tc, c);
	}
	if (is_huge(n))
		return central_huge(tc, n, 0, NULL);
	if (tc && n <= TC_MED_MAX && (p = tc_med_pop(tc, n)))
		return p;
	p = central_block(tc, n, 0, NULL);
	if (!p)
		note_failure(ENOMEM);
	return p;
}

API void *kheap_malloc(size_t n)
{
	struct tcache *tc = kh_tc;

	if (likely(tc != NULL)) {
		if (likely(n <= SMALL_MAX)) {
			unsigned c = size_class(n);
			struct tc_bin *b = &tc->small[c];

			if (likely(b->count)) {
				tc_account(tc, -(ptrdiff_t)kh_class_size[c]);
				return b->items[--b->count];
			}
		} else if (n <= TC_MED_MAX) {
			/* any cached block that fits will do, even if the
			 * request would be a dedicated chunk in a tiny pool */
			void *p = tc_med_pop(tc, n);

			if (p)
				return p;
		}
	}
	return malloc_slow(n);
}

static __attribute__((noreturn)) void bad_pointer(const char *fn,
						   const void *p)
{
	fprintf(stderr, "libkheap: %s(%p): not a kheap pointer\n", fn, p);
	abort();
}

static __attribute__((noinline)) void free_slow(void *p)
{
	uintptr_t v = (uintptr_t)p;
	struct tcache *tc;
	size_t g, u;
	unsigned k;

	if (!p)
		return;
	if (v - khm.lo >= khm.span)
		bad_pointer("kheap_free", p);
	g = gran_of(v);
	k = khm.kind[g];
	if (k & K_FOREIGN)
		return;		/* the fork parent's block */
	tc = tcache_get();
	if (k >= 1 && k <= NCLASS) {
		struct tc_bin *b;

		if (tc) {
			b = &tc->small[k - 1];
			if (b->count >= b->cap)
				tcache_flush_small(tc, k - 1);
			b->items[b->count++] = p;
			tc_account(tc, kh_class_size[k - 1]);
			return;
		}
		kheap_lock(&kh.lock);
		slab_free_batch(&p, 1);
		kh.out -= kh_class_size[k - 1];
		kheap_unlock(&kh.lock);
	} else if (k == K_ARENA) {
		u = tlsf_usable_size(p);
		if (tc && tc_med_push(tc, p, u))
			return;
		kheap_lock(&kh.lock);
		kh.out -= u;
		heap_free_block(p);
		kheap_unlock(&kh.lock);
	} else if (k == K_HUGE) {
		struct chunk *c = kh.owner[g];

		if (c->start != v)
			bad_pointer("kheap_free", p);
		kheap_lock(&kh.lock);
		kh.out -= c->uend - c->start;
		heap_free_huge(c);
		kheap_unlock(&kh.lock);
	} else {
		bad_pointer("kheap_free", p);
	}
}

API void kheap_free(void *p)
{
	size_t span = __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE);
	uintptr_t off = (uintptr_t)p - khm.lo;
	struct tcache *tc = kh_tc;

	if (likely(off < span) && likely(tc != NULL)) {
		unsigned k = khm.kind[off >> GRANULE_SHIFT];

		if (likely(k - 1u < NCLASS)) {
			struct tc_bin *b = &tc->small[k - 1];

			if (likely(b->count < b->cap)) {
				b->items[b->count++] = p;
				tc_account(tc, kh_class_size[k - 1]);
				return;
			}
		} else if (k == K_ARENA &&
			   tc_med_push(tc, p, tlsf_usable_size(p))) {
			return;
		}
	}
	free_slow(p);
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
	tc = tcache_get();
	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	if (is_huge(n)) {
		/* Fresh chunks are zero; a cached one is clean above its
		 * high-water mark. */
		p = central_huge(tc, n, 0, &dirty);
		if (p && dirty > (uintptr_t)p)
			memset(p, 0, dirty - (uintptr_t)p < n ?
				     dirty - (uintptr_t)p : n);
		return p;
	}
	if (tc && n <= TC_MED_MAX && (p = tc_med_pop(tc, n))) {
		memset(p, 0, n);
		return p;
	}
	p = central_block(tc, n, 0, &dirty);
	if (!p) {
		note_failure(ENOMEM);
		return NULL;
	}
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
	tc = tcache_get();
	if (!tc && (err = heap_ensure())) {
		note_failure(-err);
		return NULL;
	}
	if (n > TLSF_MAX_BLOCK || is_huge(n + align + TLSF_MIN_BLOCK))
		return central_huge(tc, n, align, NULL);
	if (tc && n > TC_MED_MIN && n <= TC_MED_MAX &&
	    (p = tc_med_pop_aligned(tc, n, align)))
		return p;
	p = central_block(tc, n, align, NULL);
	if (!p)
		note_failure(ENOMEM);
	return p;
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

static void *realloc_move(void *p, size_t old, size_t n, int foreign)
{
	void *q = NULL;

	/* Growing into TLSF range: take the new block from the largest free
	 * block, so the next growth likely happens in place. */
	if (n > old && n > SMALL_MAX && !is_huge(n)) {
		q = central_block(tcache_get(), n, HEAP_ROOMY, NULL);
		if (!q)
			note_failure(ENOMEM);
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

	if (!p)
		return kheap_malloc(n);
	if (!n) {
		kheap_free(p);
		return NULL;
	}
	if (v - khm.lo >= khm.span)
		bad_pointer("kheap_realloc", p);
	g = gran_of(v);
	k = khm.kind[g];
	old = heap_usable_size(p);
	if (!old)
		bad_pointer("kheap_realloc", p);
	if (k & K_FOREIGN)
		return realloc_move(p, old, n, 1);
	if (k >= 1 && k <= NCLASS) {
		/* Same slot while it fits and is not mostly wasted. */
		if (n <= old && (n > old / 2 || old <= 16))
			return p;
		return realloc_move(p, old, n, 0);
	}
	if (k == K_ARENA) {
		int ok;

		if (n <= SMALL_MAX && n <= old / 2)
			return realloc_move(p, old, n, 0);
		/* In place when the next block is free, even past the
		 * dedicated-chunk threshold: no copy, no kernel call. */
		if (tlsf_block_size(n)) {
			kheap_lock(&kh.lock);
			ok = heap_resize_block(p, n);
			if (ok) {
				kh.out -= old;
				out_add(tlsf_usable_size(p));
			}
			kheap_unlock(&kh.lock);
			if (ok)
				return p;
		}
		return realloc_move(p, old, n, 0);
	}
	/* Dedicated chunk: the kernel cannot grow it, but a chunk reused
	 * from the cache may have room past the usable area. */
	if (n <= old && (n > old / 2 || is_huge(n)))
		return p;
	if (n > old) {
		int ok;

		kheap_lock(&kh.lock);
		ok = heap_resize_huge(p, n);
		if (ok) {
			kh.out -= old;
			out_add(heap_usable_size(p));
		}
		kheap_unlock(&kh.lock);
		if (ok)
			return p;
	}
	return realloc_move(p, old, n, 0);
}

API uint64_t kheap_phys(const void *p)
{
	uintptr_t v = (uintptr_t)p;

	if (v - khm.lo >= khm.span || v < khm.base ||
	    v - khm.base >= khm.pool_size ||
	    khm.kind[gran_of(v)] == K_NONE) {
		errno = EINVAL;
		return 0;
	}
	if (!khm.phys) {
		errno = EPERM;
		return 0;
	}
	return khm.phys + (v - khm.base);
}

API void *kheap_phys_to_virt(uint64_t phys)
{
	uint64_t off = phys - khm.phys;
	uintptr_t v;

	if (!khm.span || !khm.phys || phys < khm.phys ||
	    off >= khm.pool_size) {
		errno = EINVAL;
		return NULL;
	}
	v = khm.base + (uintptr_t)off;
	if (khm.kind[gran_of(v)] == K_NONE) {
		errno = EINVAL;
		return NULL;
	}
	return (void *)v;
}

API int kheap_stats(struct kheap_stats *st)
{
	struct kheap_pool_usage u;
	uint64_t cached, largest;
	int err = heap_ensure();

	if (err) {
		errno = -err;
		return -1;
	}
	memset(st, 0, sizeof(*st));
	cached = tcache_cached_total();
	kheap_lock(&kh.lock);
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
	kheap_unlock(&kh.lock);
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
	kheap_lock(&kh.lock);
	tcache_flush_all_locked(tc);
	kheap_unlock(&kh.lock);
}
