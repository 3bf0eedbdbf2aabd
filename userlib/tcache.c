// SPDX-License-Identifier: MIT
/*
 * tcache.c - per-thread caches: creation, refill, flush, exit, fork.
 * See tcache.h for the policy.
 *
 * The medium path (TLSF blocks of 1-128 KiB) meets the heap lock only on a
 * miss or an overflow, and then moves a batch: a miss of an empty bin
 * takes several blocks of the size asked for, a full bin gives half of
 * itself back ("Medium batches" below says how much and why).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "tcache.h"

__thread struct tcache *kh_tc __attribute__((tls_model("initial-exec")));
static __thread int t_exiting __attribute__((tls_model("initial-exec")));
/* The forking thread's cache, set aside during the fork window. */
static __thread struct tcache *t_fork_tc __attribute__((tls_model("initial-exec")));

/* reg_lock protects reg_head, the list of every live thread's cache, and
 * spare_head/nspare, the caches of exited threads kept for new ones. */
static struct kheap_lock reg_lock = KHEAP_LOCK_INIT;
static struct tcache *reg_head;
/*
 * A thread that exits leaves its cache, empty, to the next thread that
 * starts: a mapping of ~26 KiB made, faulted in page by page and unmapped
 * (a TLB shootdown on every CPU the process runs on) for each short-lived
 * thread cost servers that start a thread per request (larson) a few per
 * cent of their time.  TC_SPARE caches at most; the rest are unmapped.
 */
#define TC_SPARE	8
static struct tcache *spare_head;	/* linked through ->next */
static unsigned int nspare;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

static void tcache_exit(void *arg);
static inline void check_gen(struct tcache *tc);

/* The registry lock; the forking thread holds it through the fork window
 * (internal.h). */
static void reg_lock_take(void)
{
	if (!kh_in_fork)
		kheap_lock(&reg_lock);
}

static void reg_lock_give(void)
{
	if (!kh_in_fork)
		kheap_unlock(&reg_lock);
}

static void make_key(void)
{
	pthread_key_create(&tc_key, tcache_exit);
}

void tcache_heap_init(void)
{
	pthread_once(&tc_once, make_key);
}

static void reg_add(struct tcache *tc)
{
	reg_lock_take();
	tc->prev = NULL;
	tc->next = reg_head;
	if (reg_head)
		reg_head->prev = tc;
	reg_head = tc;
	reg_lock_give();
}

static void reg_del(struct tcache *tc)
{
	reg_lock_take();
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		reg_head = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	reg_lock_give();
}

/* An exited thread's cache, cleared as a fresh mapping is; or NULL. */
static struct tcache *spare_take(void)
{
	struct tcache *tc;

	reg_lock_take();
	tc = spare_head;
	if (tc) {
		spare_head = tc->next;
		nspare--;
	}
	reg_lock_give();
	if (tc)
		memset(tc, 0, sizeof(*tc));
	return tc;
}

/* tc's thread is gone and its cache is empty and unregistered. */
static void spare_put(struct tcache *tc)
{
	int kept = 0;

	reg_lock_take();
	if (nspare < TC_SPARE) {
		tc->next = spare_head;
		spare_head = tc;
		nspare++;
		kept = 1;
	}
	reg_lock_give();
	if (!kept)
		munmap(tc, sizeof(*tc));
}

unsigned int tcache_spare_count(void)
{
	unsigned int n;

	reg_lock_take();
	n = nspare;
	reg_lock_give();
	return n;
}

static void init_caps(struct tcache *tc)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		unsigned sz = kh_class_size[c];

		tc->small[c].cap = TC_SMALL_CAP_FOR(sz);
	}
	for (unsigned b = 0; b < TC_MED_BINS; b++) {
		size_t lo = (size_t)(8 + b % 8) << (b / 8 + 7);

		tc->med[b].cap = TC_MED_CAP_FOR(lo);
		tc->med[b].fill = 1;
	}
	tc->med_limit = kh.pool.size / 64;
	if (tc->med_limit > ((size_t)4 << 20))
		tc->med_limit = (size_t)4 << 20;
}

struct tcache *tcache_get(void)
{
	struct tcache *tc = kh_tc;

	if (tc)
		return tc;
	/* none in the fork window: the forking thread's is set aside */
	if (t_exiting || kh_in_fork || heap_ensure())
		return NULL;
	tc = spare_take();
	if (!tc) {
		tc = mmap(NULL, sizeof(*tc), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (tc == MAP_FAILED)
			return NULL;
	}
	init_caps(tc);
	tc->gen = __atomic_load_n(&kh.gen, __ATOMIC_RELAXED);
	tc->sweep_in = TC_SWEEP_FREES;
	reg_add(tc);
	/* Published first: pthread_setspecific allocates for keys past the
	 * first 32, and under libkheap-preload.so that comes back here. */
	kh_tc = tc;
	pthread_setspecific(tc_key, tc);
	return tc;
}

/* Under kh.lock: the remote buffer goes back to its slabs. */
static void flush_remote_locked(struct tcache *tc)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < tc->nremote; i++)
		bytes += kh_class_size[khm.kind[gran_of((uintptr_t)tc->remote[i])] - 1];
	slab_free_batch(tc->remote, tc->nremote);
	kh.out -= bytes;
	tc_account(tc, -(ptrdiff_t)bytes);
	tc->nremote = 0;
}

void tcache_free_remote(struct tcache *tc, void *p, unsigned c)
{
	if (tc->nremote == TC_REMOTE_CAP) {
		heap_lock();
		check_gen(tc);
		flush_remote_locked(tc);
		heap_unlock();
	}
	tc->remote[tc->nremote++] = p;
	tc_account(tc, kh_class_size[c]);
}

struct slab *tcache_other_partial(const struct tcache *self, unsigned c)
{
	struct slab *found = NULL;

	reg_lock_take();
	for (struct tcache *tc = reg_head; tc && !found; tc = tc->next)
		if (tc != self)
			found = tc->spartial[c];
	reg_lock_give();
	return found;
}

void tcache_flush_all_locked(struct tcache *tc)
{
	flush_remote_locked(tc);
	for (unsigned c = 0; c < NCLASS; c++) {
		struct tc_bin *b = &tc->small[c];

		if (!b->count)
			continue;
		slab_free_batch(b->items, b->count);
		kh.out -= (uint64_t)b->count * kh_class_size[c];
		b->count = 0;
	}
	for (unsigned i = 0; i < TC_MED_BINS; i++) {
		struct tc_mbin *m = &tc->med[i];

		for (unsigned j = 0; j < m->count; j++) {
			kh.out -= tlsf_usable_size(m->items[j]);
			heap_free_block(m->items[j]);
		}
		m->count = 0;
	}
	tc->med_bytes = 0;
	tc_account(tc, -(ptrdiff_t)tc->cached);
}

/* Under kh.lock: the bins of small class c go back to their slabs. */
static void flush_small_locked(struct tcache *tc, unsigned c)
{
	struct tc_bin *b = &tc->small[c];

	slab_free_batch(b->items, b->count);
	kh.out -= (uint64_t)b->count * kh_class_size[c];
	tc_account(tc, -(ptrdiff_t)b->count * kh_class_size[c]);
	b->count = 0;
}

static void flush_med_locked(struct tcache *tc, unsigned i)
{
	struct tc_mbin *m = &tc->med[i];

	for (unsigned j = 0; j < m->count; j++) {
		size_t u = tlsf_usable_size(m->items[j]);

		kh.out -= u;
		tc->med_bytes -= u;
		tc_account(tc, -(ptrdiff_t)u);
		heap_free_block(m->items[j]);
	}
	m->count = 0;
}

/*
 * The idle sweep: a class this thread has not allocated from since the
 * last sweep gives its cached blocks back, so that sizes a thread no
 * longer uses do not keep slabs (and their arenas) from the other
 * threads and processes.  Bins in use keep theirs.
 */
void tcache_sweep(struct tcache *tc)
{
	heap_lock();
	flush_remote_locked(tc);
	for (unsigned c = 0; c < NCLASS; c++)
		if (tc->small[c].count && !(tc->small_used >> c & 1))
			flush_small_locked(tc, c);
	for (unsigned i = 0; i < TC_MED_BINS; i++)
		if (tc->med[i].count && !(tc->med_used >> i & 1))
			flush_med_locked(tc, i);
	heap_unlock();
	tc->small_used = 0;
	tc->med_used = 0;
	tc->sweep_in = TC_SWEEP_FREES;
}

void tcache_wait_thief(void)
{
	heap_lock();
	heap_unlock();
}

/*
 * The thief's barrier: after it, every other thread of the process has
 * executed a full memory barrier (or is not running, and then will).
 * The expedited command needs the process registered once (again in a
 * fork child); the global one is slower but needs nothing.  0, or -1 when
 * the kernel has neither (then nothing is stolen).
 */
static int heavy_barrier(void)
{
	static int registered;

	for (;;) {
		if (!syscall(__NR_membarrier,
			     MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
			return 0;
		if (errno != EPERM || registered)
			break;
		registered = 1;
		if (syscall(__NR_membarrier,
			    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0))
			break;
	}
	return syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) ? -1 : 0;
}

uint64_t tcache_steal_all_locked(const struct tcache *self)
{
	uint64_t taken = 0;
	int any = 0;

	reg_lock_take();
	for (struct tcache *tc = reg_head; tc; tc = tc->next)
		if (tc != self &&
		    __atomic_load_n(&tc->cached, __ATOMIC_RELAXED)) {
			__atomic_store_n(&tc->steal, 1, __ATOMIC_RELAXED);
			any = 1;
		}
	if (any && heavy_barrier())
		any = 0;	/* cannot know who is busy: take nothing */
	for (struct tcache *tc = reg_head; tc; tc = tc->next) {
		if (!__atomic_load_n(&tc->steal, __ATOMIC_RELAXED))
			continue;
		if (any && !__atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE)) {
			taken += __atomic_load_n(&tc->cached, __ATOMIC_RELAXED);
			tcache_flush_all_locked(tc);
			tc->gen = kh.gen;
		}
		__atomic_store_n(&tc->steal, 0, __ATOMIC_RELEASE);
	}
	reg_lock_give();
	return taken;
}

static inline void check_gen(struct tcache *tc)
{
	if (unlikely(tc->gen != kh.gen)) {
		tcache_flush_all_locked(tc);
		tc->gen = kh.gen;
	}
}

void *tcache_refill(struct tcache *tc, unsigned c)
{
	struct tc_bin *b = &tc->small[c];
	unsigned want = b->cap / 2, got, sz = kh_class_size[c];

	heap_lock();
	check_gen(tc);
	got = slab_alloc_batch(c, b->items, want, tc);
	if (got) {
		kh.out += (uint64_t)got * sz;
		if (kh.out > kh.peak_out)
			kh.peak_out = kh.out;
	}
	heap_unlock();
	if (!got)
		return NULL;
	/* Pop order = ascending addresses. */
	for (unsigned i = 0, j = got - 1; i < j; i++, j--) {
		void *t = b->items[i];

		b->items[i] = b->items[j];
		b->items[j] = t;
	}
	b->count = got - 1;
	tc_account(tc, (ptrdiff_t)(got - 1) * sz);
	return b->items[got - 1];
}

/*
 * Medium batches.  A miss takes the heap lock anyway; when the bin of the
 * size asked for was empty (the thread allocates that size faster than it
 * frees it: a producer, or a growing working set), further blocks of that
 * size are taken in the same trip, from arenas already held (a batch
 * never grows the heap), so the next misses cost no lock.  The batch
 * doubles at each such miss up to half the bin, and halves when the bin
 * overflows, so a thread that frees as much as it allocates of a size
 * does not take blocks it will only give back.  Exactly the size asked
 * for, not the bin's largest: a block handed out later wastes no more
 * than one taken on its own.  Still, batched blocks later serve smaller
 * requests of the bin below, and utilisation at the first failure fell
 * from 96.3 to 94.4 % in kbench's 16 B-8 KiB run; so a process with one
 * thread, whose heap lock is a plain store (lock.h), takes no batches
 * (kheap.c, central_block) and gives blocks back one at a time as before
 * (more TLSF work for no lock saved).  With threads, the free side
 * mirrors the miss side: a
 * block that does not fit its bin sends the newer half of that bin back
 * under one lock; one that does not fit the cache's byte bound, the newer
 * half of the largest bins until the cache is down to three quarters of
 * the bound.  The newer half: the blocks a thread cached first stay (a
 * bin of one keeps its block), as they did when a full cache refused a
 * block.  So a thread meets the lock about once per batch,
 * not once per block, and the threads meet each other that much less.
 */
void tcache_med_refill_locked(struct tcache *tc, size_t n)
{
	struct tc_mbin *m;
	unsigned extra;

	check_gen(tc);
	m = &tc->med[med_bin(n)];
	if (m->count)
		return;		/* blocks of other sizes there: no batch */
	/* The caller's block is the batch's first. */
	extra = m->fill - 1;
	if (m->fill < m->cap / 2)
		m->fill *= 2;
	for (unsigned i = 0; i < extra; i++) {
		void *p;
		size_t u;

		if (m->count >= m->cap || tc->med_bytes + n > tc->med_limit)
			break;
		p = heap_alloc_block_held(n);
		if (!p)
			break;
		u = tlsf_usable_size(p);
		/* Cached blocks read as freed: freeing one is a double free. */
		*live_of((uintptr_t)p) = LIVE_FREED;
		if (!tc_med_push(tc, p, u)) {
			heap_free_block(p);
			break;
		}
		kh.out += u;
		if (kh.out > kh.peak_out)
			kh.peak_out = kh.out;
	}
}

/* Under kh.lock: the newer half of bin m goes back (none of a bin of one
 * block: what a thread cached first stays, as when the cache is full). */
static void flush_med_half_locked(struct tcache *tc, struct tc_mbin *m)
{
	unsigned h = m->count / 2;

	for (unsigned j = m->count - h; j < m->count; j++) {
		size_t u = tlsf_usable_size(m->items[j]);

		kh.out -= u;
		tc->med_bytes -= u;
		tc_account(tc, -(ptrdiff_t)u);
		heap_free_block(m->items[j]);
	}
	m->count -= h;
}

void tcache_med_overflow(struct tcache *tc, void *p, size_t u)
{
	heap_lock();
	check_gen(tc);
	if (u >= TC_MED_MIN && u <= TC_MED_MAX) {
		struct tc_mbin *m = &tc->med[med_bin(u)];

		if (m->count >= m->cap) {
			flush_med_half_locked(tc, m);
			if (m->fill > 1)
				m->fill /= 2;
		}
		/* Over the byte bound: down to three quarters of it, so
		 * that the next frees do not come back at once. */
		if (tc->med_bytes + u > tc->med_limit)
			for (unsigned i = TC_MED_BINS; i-- > 0 &&
			     tc->med_bytes + u > tc->med_limit / 4 * 3;)
				flush_med_half_locked(tc, &tc->med[i]);
	}
	if (!tc_med_push(tc, p, u)) {
		kh.out -= u;
		heap_free_block(p);
	}
	heap_unlock();
}

void tcache_flush_small(struct tcache *tc, unsigned c)
{
	struct tc_bin *b = &tc->small[c];
	unsigned n = b->count / 2, sz = kh_class_size[c];

	heap_lock();
	check_gen(tc);
	if (b->count >= b->cap) {
		slab_free_batch(b->items, n);
		kh.out -= (uint64_t)n * sz;
	} else {
		n = 0;
	}
	heap_unlock();
	if (!n)
		return;
	memmove(b->items, b->items + n, (b->count - n) * sizeof(void *));
	b->count -= n;
	tc_account(tc, -(ptrdiff_t)n * sz);
}

static void tcache_exit(void *arg)
{
	struct tcache *tc = arg;

	heap_lock();
	if (kh.ready) {
		tcache_flush_all_locked(tc);
		slab_disown(tc);
	}
	heap_unlock();
	reg_del(tc);
	kh_tc = NULL;
	t_exiting = 1;
	spare_put(tc);
}

uint64_t tcache_cached_total(void)
{
	uint64_t sum = 0;

	reg_lock_take();
	for (struct tcache *tc = reg_head; tc; tc = tc->next)
		sum += __atomic_load_n(&tc->cached, __ATOMIC_RELAXED);
	reg_lock_give();
	return sum;
}

void tcache_for_each(void (*fn)(const struct tcache *tc, void *arg),
		     void *arg)
{
	reg_lock_take();
	for (struct tcache *tc = reg_head; tc; tc = tc->next)
		fn(tc, arg);
	reg_lock_give();
}

static void discard(struct tcache *tc)
{
	for (unsigned c = 0; c < NCLASS; c++)
		tc->small[c].count = 0;
	for (unsigned i = 0; i < TC_MED_BINS; i++)
		tc->med[i].count = 0;
	tc->med_bytes = 0;
	tc->nremote = 0;
	/* The slabs it owned are not the child's (the heap was reset). */
	memset(tc->spartial, 0, sizeof(tc->spartial));
	__atomic_store_n(&tc->cached, 0, __ATOMIC_RELAXED);
	tc->gen = kh.gen;
}

/* The heap under the cache is gone (tests): forget its blocks. */
void tcache_discard_current(void)
{
	struct tcache *tc = kh_tc;

	if (!tc)
		return;
	reg_del(tc);
	pthread_setspecific(tc_key, NULL);
	kh_tc = NULL;
	munmap(tc, sizeof(*tc));
}

/* Before kh_in_fork is set: really take the lock. */
void tcache_atfork_prepare(void)
{
	kheap_lock(&reg_lock);
	t_fork_tc = kh_tc;
	kh_tc = NULL;
}

/* After kh_in_fork is cleared. */
void tcache_atfork_parent(void)
{
	kh_tc = t_fork_tc;
	t_fork_tc = NULL;
	kheap_unlock(&reg_lock);
}

/*
 * A cache whose thread is gone (in a fork child): its blocks are free.
 * The thread may have been anywhere in a lock-free push or pop when the
 * fork happened, so a cached block's in-use byte may say either; it is
 * set free before the block goes back.  (A block caught between the
 * cache and the caller is lost to the child, as glibc loses those.)
 */
static void flush_orphan(struct tcache *tc)
{
	for (unsigned c = 0; c < NCLASS; c++)
		for (unsigned i = 0; i < tc->small[c].count; i++)
			*live_of((uintptr_t)tc->small[c].items[i]) = LIVE_FREED;
	for (unsigned i = 0; i < TC_MED_BINS; i++)
		for (unsigned j = 0; j < tc->med[i].count; j++)
			*live_of((uintptr_t)tc->med[i].items[j]) = LIVE_FREED;
	for (unsigned i = 0; i < tc->nremote; i++)
		*live_of((uintptr_t)tc->remote[i]) = LIVE_FREED;
	tcache_flush_all_locked(tc);
	slab_disown(tc);
}

int tcache_atfork_child(int keep)
{
	struct tcache *tc, *next;
	int orphans = 0;

	kh_tc = t_fork_tc;
	t_fork_tc = NULL;
	kheap_lock_init(&reg_lock);
	/*
	 * Other threads' caches have no thread here.  When the child keeps
	 * its heap (a private copy), their blocks go back to it; otherwise
	 * they, like ours, belong to the parent now.
	 */
	for (tc = reg_head; tc; tc = next) {
		next = tc->next;
		if (tc == kh_tc)
			continue;
		if (keep)
			flush_orphan(tc);
		munmap(tc, sizeof(*tc));
		orphans++;
	}
	reg_head = NULL;
	if (kh_tc) {
		if (!keep)
			discard(kh_tc);
		kh_tc->next = kh_tc->prev = NULL;
		reg_head = kh_tc;
	}
	return orphans;
}
