/* SPDX-License-Identifier: MIT */
/*
 * tcache.h - per-thread caches.
 *
 * Each thread keeps, without any lock:
 *  - for every small class a stack of up to 64 free objects (fewer for
 *    larger classes), refilled and flushed half a stack at a time under
 *    one lock acquisition;
 *  - for TLSF blocks of 1 KiB to 128 KiB usable, 56 bins (8 per power of
 *    two, by usable size) of a few blocks each, bounded in bytes per
 *    thread (4 MiB, or pool / 64 if smaller); a miss of an empty bin
 *    takes a batch of blocks of the size asked for under its one lock
 *    acquisition (adaptive, up to half the bin), and an overflow gives
 *    half a bin back under one (tcache.c, "Medium batches").
 * A free of a medium block goes to the freeing thread's cache whichever
 * thread allocated it.  A small object goes to the freeing thread's stack
 * unless its slab is another live thread's (slab.h): then it goes to
 * the remote buffer, whose TC_REMOTE_CAP objects return to their slabs
 * under one lock acquisition, so that it is not handed out again by this
 * thread beside its owner's objects (passive false sharing).  While the
 * process has one thread every small free is local.
 *
 * Caches are flushed at thread exit (the emptied cache is kept for the
 * next thread to start, up to 8 of them), when the heap runs out of memory
 * and by kheap_trim() (the calling thread's at once, every other thread's
 * at once too unless that thread is inside an operation right then, and
 * then at its next refill or flush), and dropped in a fork child (their
 * blocks belong to the parent).  A class the owner has not taken a block
 * from during TC_SWEEP_FREES of its frees is flushed by the owner (the
 * idle sweep), so blocks of a size a thread stopped using do not keep
 * slabs and arenas alive.
 *
 * Taking another thread's blocks without a lock on the owner's side: the
 * owner marks itself busy (a plain store) and then reads the steal flag;
 * a thief, holding kh.lock, sets steal, runs membarrier() (a full barrier
 * on every thread of the process) and then reads busy.  One of them sees
 * the other's flag: a busy owner is skipped, and an owner that finds
 * steal set waits for kh.lock, which the thief holds until it is done.
 * The owner's fast paths pay two plain stores and a load, no fence (and
 * nothing while the process has a single thread).
 */
#ifndef KHEAP_TCACHE_H
#define KHEAP_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "debug.h"
#include "lock.h"
#include "slab.h"
#include "tlsf.h"

#define TC_SMALL_CAP	64
#define TC_MED_BINS	56
#define TC_MED_CAP	16
#define TC_MED_MIN	((size_t)1024)
#define TC_MED_MAX	(((size_t)128 << 10) - 1)
/* Other threads' small objects a thread frees, held until one lock
 * acquisition returns them all to their slabs. */
#define TC_REMOTE_CAP	128
/* Frees between two idle sweeps of a thread's cache. */
#define TC_SWEEP_FREES	8192

/* Per-class stack sizes: more of the small objects, fewer of the big. */
#define TC_SMALL_CAP_FOR(sz)	((sz) <= 256 ? 64 : (sz) <= 512 ? 32 : 16)
/* Per-bin block counts, by the bin's lowest usable size. */
#define TC_MED_CAP_FOR(lo)	((lo) < 8192 ? 16 : (lo) < 16384 ? 8 :	\
				 (lo) < 65536 ? 4 : 2)

_Static_assert(TC_SMALL_CAP_FOR(0) <= TC_SMALL_CAP,
	       "a small stack fits its array");
_Static_assert(TC_SMALL_CAP_FOR(SMALL_MAX) >= 2,
	       "refill and flush move half a stack, at least one object");
_Static_assert(TC_MED_CAP_FOR(0) <= TC_MED_CAP, "a medium bin fits its array");
_Static_assert(TC_MED_MIN <= SMALL_MAX + 1,
	       "medium bins start where the small classes end");
_Static_assert(TC_MED_BINS % 8 == 0 && TC_MED_MIN == (size_t)1 << 10 &&
	       TC_MED_MAX == ((size_t)1 << (10 + TC_MED_BINS / 8)) - 1,
	       "med_bin() maps [TC_MED_MIN, TC_MED_MAX] onto the bins exactly");

struct tc_bin {
	uint32_t count, cap;
	void *items[TC_SMALL_CAP];
};

struct tc_mbin {
	uint32_t count, cap;
	uint32_t fill;		/* blocks a miss of an empty bin takes */
	void *items[TC_MED_CAP];
};

struct tcache {
	struct tc_bin small[NCLASS];
	struct tc_mbin med[TC_MED_BINS];
	/* Slabs this thread owns that have free objects, per class (slab.h);
	 * under kh.lock, as every partial list. */
	struct slab *spartial[NCLASS];
	uint32_t nremote;
	void *remote[TC_REMOTE_CAP];	/* freed objects of others' slabs */
	size_t cached;		/* bytes in all bins; read by kheap_stats */
	size_t med_bytes, med_limit;
	uint64_t gen;
	uint32_t small_used;	/* classes popped since the last sweep */
	uint32_t sweep_in;	/* frees until the next sweep */
	uint64_t med_used;	/* medium bins popped since the last sweep */
	int busy;		/* the owner is touching its bins lock-free */
	int steal;		/* a thief holding kh.lock may empty them */
	struct tcache *next, *prev;
};

_Static_assert(NCLASS <= 32 && TC_MED_BINS <= 64,
	       "the used masks hold a bit per bin");

extern __thread struct tcache *kh_tc
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline void tc_account(struct tcache *tc, ptrdiff_t d)
{
	__atomic_store_n(&tc->cached, tc->cached + (size_t)d,
			 __ATOMIC_RELAXED);
}

/* Bin of usable size u, TC_MED_MIN <= u <= TC_MED_MAX. */
static inline unsigned med_bin(size_t u)
{
	unsigned f = 63u - (unsigned)__builtin_clzll(u);

	return (f - 10) * 8 + (unsigned)((u >> (f - 3)) & 7);
}

/* A cached block with usable size >= n (TC_MED_MIN < n <= TC_MED_MAX). */
static inline void *tc_med_pop(struct tcache *tc, size_t n)
{
	unsigned b = med_bin(n);
	struct tc_mbin *m = &tc->med[b];
	void *p;
	size_t u;

	if (!(m->count && tlsf_usable_size(m->items[m->count - 1]) >= n)) {
		if (b + 1 >= TC_MED_BINS)
			return NULL;
		m = &tc->med[b + 1];
		if (!m->count)
			return NULL;
	}
	p = m->items[--m->count];
	u = tlsf_usable_size(p);
	tc->med_bytes -= u;
	tc->med_used |= (uint64_t)1 << (m - tc->med);
	tc_account(tc, -(ptrdiff_t)u);
	return p;
}

/* The slow path's second look: any block of n's bin that holds n (the
 * fast path looks at the top one only). */
static inline void *tc_med_pop_any(struct tcache *tc, size_t n)
{
	struct tc_mbin *m = &tc->med[med_bin(n)];

	for (unsigned i = m->count; i-- > 0;) {
		void *p = m->items[i];
		size_t u = tlsf_usable_size(p);

		if (u < n)
			continue;
		m->items[i] = m->items[--m->count];
		tc->med_bytes -= u;
		tc->med_used |= (uint64_t)1 << (m - tc->med);
		tc_account(tc, -(ptrdiff_t)u);
		return p;
	}
	return NULL;
}

/* A cached block of usable size >= n whose address is aligned. */
static inline void *tc_med_pop_aligned(struct tcache *tc, size_t n,
				       size_t align)
{
	unsigned b = med_bin(n);

	for (unsigned i = b; i < b + 2 && i < TC_MED_BINS; i++) {
		struct tc_mbin *m = &tc->med[i];
		void *p;
		size_t u;

		if (!m->count)
			continue;
		p = m->items[m->count - 1];
		u = tlsf_usable_size(p);
		if (u < n || ((uintptr_t)p & (align - 1)))
			continue;
		m->count--;
		tc->med_bytes -= u;
		tc->med_used |= (uint64_t)1 << i;
		tc_account(tc, -(ptrdiff_t)u);
		return p;
	}
	return NULL;
}

static inline int tc_med_push(struct tcache *tc, void *p, size_t u)
{
	struct tc_mbin *m;

	if (u < TC_MED_MIN || u > TC_MED_MAX)
		return 0;
	kh_assert(!tlsf_is_free(p) && tlsf_usable_size(p) == u);
	m = &tc->med[med_bin(u)];
	if (m->count >= m->cap || tc->med_bytes + u > tc->med_limit)
		return 0;
	m->items[m->count++] = p;
	tc->med_bytes += u;
	tc_account(tc, (ptrdiff_t)u);
	return 1;
}

#define TC_HIDDEN __attribute__((visibility("hidden")))

/* Owner: empty the bins of the classes not popped since the last sweep. */
void tcache_sweep(struct tcache *tc) TC_HIDDEN;
/* Owner: a thief is at work; wait until it is done (it holds kh.lock). */
void tcache_wait_thief(void) TC_HIDDEN;

/* One free went into the cache: count it towards the next sweep. */
static inline void tc_freed(struct tcache *tc)
{
	if (__builtin_expect(--tc->sweep_in == 0, 0))
		tcache_sweep(tc);
}

/*
 * The owner brackets every lock-free use of its bins (never nested, and
 * never while holding kh.lock) with tc_enter() and tc_leave().  While the
 * process has one thread there is no thief: the flag turns false only in
 * pthread_create, which this thread calls outside any kheap call.
 */
static inline void tc_enter(struct tcache *tc)
{
	kh_assert(!tc->busy);
	if (kheap_single_threaded())
		return;
	__atomic_store_n(&tc->busy, 1, __ATOMIC_RELAXED);
	/* The thief's membarrier() orders this store before the load. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(__atomic_load_n(&tc->steal, __ATOMIC_ACQUIRE), 0))
		tcache_wait_thief();
}

static inline void tc_leave(struct tcache *tc)
{
	if (!kheap_single_threaded())
		__atomic_store_n(&tc->busy, 0, __ATOMIC_RELEASE);
}

/* This thread's cache, created on first use; NULL if the thread cannot
 * have one (heap unavailable, or the thread is exiting). */
struct tcache *tcache_get(void) TC_HIDDEN;
/* Exited threads' caches kept for new threads (at most 8; tests). */
unsigned int tcache_spare_count(void) TC_HIDDEN;
/* Refill small class c (its stack is empty); one object, or NULL when
 * the heap has no slab memory left. */
void *tcache_refill(struct tcache *tc, unsigned c) TC_HIDDEN;
/* Small class c's stack is full: give its older half back. */
void tcache_flush_small(struct tcache *tc, unsigned c) TC_HIDDEN;
/* Small object p (class c, in-use byte already freed) of another
 * thread's slab: into the remote buffer, which goes back to the slabs
 * under one lock when full.  The owner, inside tc_enter(). */
void tcache_free_remote(struct tcache *tc, void *p, unsigned c) TC_HIDDEN;
/* Under kh.lock: a slab of class c that another thread than self owns
 * and can spare objects of, or NULL (slab.c's last resort). */
struct slab *tcache_other_partial(const struct tcache *self, unsigned c)
	TC_HIDDEN;
/* Under kh.lock, after a medium miss handed out a block of n bytes: if
 * n's bin is empty, a batch of blocks of n bytes into the cache, from the
 * arenas held (tcache.c). */
void tcache_med_refill_locked(struct tcache *tc, size_t n) TC_HIDDEN;
/* Freed medium block p (usable size u, in-use byte already freed) does
 * not fit the cache: half a bin back under one lock, then p cached or
 * given back.  Takes kh.lock; the owner, inside tc_enter(). */
void tcache_med_overflow(struct tcache *tc, void *p, size_t u) TC_HIDDEN;
/* Give everything back; under kh.lock. */
void tcache_flush_all_locked(struct tcache *tc) TC_HIDDEN;
/* Under kh.lock: empty every other thread's cache whose owner is not
 * inside an operation now (the others flush at their next refill or
 * flush: kh.gen was bumped).  Returns the bytes taken. */
uint64_t tcache_steal_all_locked(const struct tcache *self) TC_HIDDEN;
uint64_t tcache_cached_total(void) TC_HIDDEN;
/* The checker: fn on every thread's cache, under the registry lock.  The
 * caches are read as they are: their threads must not be allocating. */
void tcache_for_each(void (*fn)(const struct tcache *tc, void *arg),
		     void *arg) TC_HIDDEN;
void tcache_heap_init(void) TC_HIDDEN;
void tcache_discard_current(void) TC_HIDDEN;
void tcache_atfork_prepare(void) TC_HIDDEN;
void tcache_atfork_parent(void) TC_HIDDEN;
/* keep: the child's heap is a private copy, kept (else it is reset).
 * Returns how many caches of other threads were dropped. */
int tcache_atfork_child(int keep) TC_HIDDEN;

#endif
