// SPDX-License-Identifier: MIT
/*
 * trim.c - giving memory back: kheap_trim() and the last resort before
 * an allocation fails.
 *
 * The pool is shared by every process, so memory this process keeps free
 * for itself (thread caches, spare slabs, empty arenas, cached chunks) is
 * memory another process's buffer cannot have.  What is kept is bounded
 * all along (arena.c, tcache.h); this gives back all of it: every thread's
 * cache, including threads that are not running the library right now
 * (tcache_steal_all_locked), then everything that is then empty.
 */
#include "internal.h"
#include "tcache.h"

void heap_trim_locked(struct tcache *tc)
{
	if (tc)
		tcache_flush_all_locked(tc);
	/* Threads inside an operation now flush at their next refill. */
	__atomic_store_n(&kh.gen, kh.gen + 1, __ATOMIC_RELAXED);
	if (tc)
		tc->gen = kh.gen;
	tcache_steal_all_locked(tc);
	heap_reclaim();
}

API size_t kheap_trim(void)
{
	uint64_t before, after;

	/* Nothing held yet: nothing to give, and no device to open. */
	if (!__atomic_load_n(&kh.ready, __ATOMIC_ACQUIRE))
		return 0;
	fork_sync();
	heap_lock();
	before = kh.held;
	heap_trim_locked(kh_tc);
	after = kh.held;
	heap_unlock();
	return before > after ? (size_t)(before - after) : 0;
}
