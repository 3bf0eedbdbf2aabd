// SPDX-License-Identifier: MIT
/*
 * test_threads.c - the multi-threaded paths over the region provider:
 * cross-thread frees, many threads at random, thread exit, dedicated
 * chunks from several threads, fork while threads allocate, exhaustion
 * and recovery.  Built twice: ASan+UBSan and ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tcache.h"
#include "ktap.h"

#define FAKE_PHYS	0x240000000ull
#define MIB		((size_t)1 << 20)

#if defined(__SANITIZE_THREAD__)
#define SCALE 2			/* TSan: fewer operations */
#else
#define SCALE 1
#endif

static void use_region(size_t pool)
{
	if (kheap__use_provider(kheap_region_provider(pool, FAKE_PHYS))) {
		printf("# region provider failed\n");
		exit(1);
	}
}

static void stamp(unsigned char *p, size_t n, unsigned long tag)
{
	memcpy(p, &tag, n < sizeof(tag) ? n : sizeof(tag));
	if (n > sizeof(tag))
		memset(p + sizeof(tag), (int)(tag & 0xff), n - sizeof(tag) > 64 ?
		       64 : n - sizeof(tag));
	if (n > 80)
		p[n - 1] = (unsigned char)(tag >> 8);
}

/* What stamp(p, n, tag) wrote within p's first keep bytes is still there
 * (keep < n after a shrinking realloc, keep == n otherwise). */
static int kept(const unsigned char *p, size_t keep, size_t n,
		unsigned long tag)
{
	size_t head = keep < sizeof(tag) ? keep : sizeof(tag);
	size_t fill = n < sizeof(tag) + 64 ? n : sizeof(tag) + 64;

	if (memcmp(p, &tag, head))
		return 0;
	for (size_t i = sizeof(tag); i < fill && i < keep; i++)
		if (p[i] != (unsigned char)(tag & 0xff))
			return 0;
	if (n > 80 && n - 1 < keep && p[n - 1] != (unsigned char)(tag >> 8))
		return 0;
	return 1;
}

static int stamped(const unsigned char *p, size_t n, unsigned long tag)
{
	return kept(p, n, n, tag);
}

/* ---- producer / consumer: every free is a cross-thread free ---- */

#define RING 1024

struct ring {
	void *slot[RING];
	size_t size[RING];
	unsigned long head, tail;	/* atomics */
	long count;
	int errors;
};

static void *producer(void *arg)
{
	struct ring *r = arg;
	struct rng g = { 12345 };

	for (long i = 0; i < r->count; i++) {
		size_t n = rng_logu(&g, 1, i % 64 ? 1024 : 70000);
		unsigned char *p = kheap_malloc(n);
		unsigned long h;

		if (!p) {
			__atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
			n = 0;
		} else {
			stamp(p, n, (unsigned long)i);
		}
		h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		while (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= RING)
			sched_yield();
		r->slot[h % RING] = p;
		r->size[h % RING] = n;
		__atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct ring *r = arg;

	for (long i = 0; i < r->count; i++) {
		unsigned long t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
		unsigned char *p;

		while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == t)
			sched_yield();
		p = r->slot[t % RING];
		if (p && !stamped(p, r->size[t % RING], (unsigned long)i))
			__atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
		kheap_free(p);
		__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void test_producer_consumer(void)
{
	static struct ring r;
	pthread_t a, b;
	struct kheap_stats st;

	use_region(256 * MIB);
	memset(&r, 0, sizeof(r));
	r.count = 400000 / SCALE;
	pthread_create(&a, NULL, producer, &r);
	pthread_create(&b, NULL, consumer, &r);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK(r.errors == 0);
	kheap__flush_thread_cache();
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_in_use == 0 && st.bytes_cached == 0,
	       "in use %llu cached %llu",
	       (unsigned long long)st.bytes_in_use,
	       (unsigned long long)st.bytes_cached);
	CHECK(kheap__check() == 0);
}

/* ---- many threads at random, blocks handed between threads ---- */

#define SHARED 256

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned char *p;
	size_t n;
	unsigned long tag;
} shared[SHARED];
static int random_errors;

static void *random_worker(void *arg)
{
	struct rng g = { (unsigned long long)(uintptr_t)arg * 7919 + 1 };
	struct {
		unsigned char *p;
		size_t n;
		unsigned long tag;
	} mine[128] = { { 0 } };
	long ops = 200000 / SCALE;

	for (long op = 0; op < ops; op++) {
		unsigned i = (unsigned)rng_below(&g, 128);
		unsigned act = (unsigned)rng_below(&g, 100);

		if (act < 10) {
			/* swap with the shared pool: someone else frees it */
			unsigned j = (unsigned)rng_below(&g, SHARED);

			pthread_mutex_lock(&shared_lock);
			if (mine[i].p && !stamped(mine[i].p, mine[i].n,
						  mine[i].tag))
				__atomic_fetch_add(&random_errors, 1,
						   __ATOMIC_RELAXED);
			{
				unsigned char *tp = shared[j].p;
				size_t tn = shared[j].n;
				unsigned long tt = shared[j].tag;

				shared[j].p = mine[i].p;
				shared[j].n = mine[i].n;
				shared[j].tag = mine[i].tag;
				mine[i].p = tp;
				mine[i].n = tn;
				mine[i].tag = tt;
			}
			pthread_mutex_unlock(&shared_lock);
		} else if (!mine[i].p) {
			size_t n = act < 12 ? rng_logu(&g, 100000, 4 * MIB) :
					      rng_logu(&g, 1, 20000);

			mine[i].p = act < 20 ? kheap_calloc(1, n) :
					       kheap_malloc(n);
			if (!mine[i].p)
				continue;
			mine[i].n = n;
			mine[i].tag = rng_next(&g);
			stamp(mine[i].p, n, mine[i].tag);
		} else if (act < 30) {
			size_t n = rng_logu(&g, 1, 40000);
			unsigned char *q = kheap_realloc(mine[i].p, n);

			if (!q)
				continue;
			/* shrinking and growing alike keep the contents */
			if (!kept(q, n < mine[i].n ? n : mine[i].n, mine[i].n,
				  mine[i].tag))
				__atomic_fetch_add(&random_errors, 1,
						   __ATOMIC_RELAXED);
			mine[i].p = q;
			mine[i].n = n;
			stamp(q, n, mine[i].tag);
		} else {
			if (!stamped(mine[i].p, mine[i].n, mine[i].tag))
				__atomic_fetch_add(&random_errors, 1,
						   __ATOMIC_RELAXED);
			if (kheap_phys(mine[i].p) + mine[i].n - 1 !=
			    kheap_phys(mine[i].p + mine[i].n - 1))
				__atomic_fetch_add(&random_errors, 1,
						   __ATOMIC_RELAXED);
			kheap_free(mine[i].p);
			mine[i].p = NULL;
		}
	}
	for (int i = 0; i < 128; i++)
		kheap_free(mine[i].p);
	return NULL;
}

static void test_many_threads(void)
{
	pthread_t t[6];
	struct kheap_stats st;

	use_region(512 * MIB);
	random_errors = 0;
	for (uintptr_t i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, random_worker, (void *)(i + 1));
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	for (int j = 0; j < SHARED; j++) {
		kheap_free(shared[j].p);
		shared[j].p = NULL;
	}
	CHECK(random_errors == 0);
	kheap__flush_thread_cache();
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_in_use == 0 && st.bytes_cached == 0,
	       "in use %llu cached %llu", (unsigned long long)st.bytes_in_use,
	       (unsigned long long)st.bytes_cached);
	CHECK(kheap__check() == 0);
}

/* ---- thread exit gives the cache back ---- */

static void *cache_filler(void *arg)
{
	void *v[2000];

	(void)arg;
	for (int i = 0; i < 2000; i++)
		v[i] = kheap_malloc((size_t)(i % 40) * 50 + 1);
	for (int i = 0; i < 2000; i++)
		kheap_free(v[i]);
	return NULL;
}

static void test_thread_exit(void)
{
	size_t pool = 16 * MIB;
	struct kheap_stats st;
	void *p;

	use_region(pool);
	for (int i = 0; i < 8; i++) {
		pthread_t t;

		pthread_create(&t, NULL, cache_filler, NULL);
		pthread_join(t, NULL);
	}
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_cached == 0 && st.bytes_in_use == 0);
	CHECK(kheap__check() == 0);
	p = kheap_malloc(pool);
	CHECK(p != NULL);
	kheap_free(p);
}

/* ---- an exited thread's cache serves the next thread, empty ---- */

struct reuse_probe {
	struct tcache *tc;	/* the thread's cache */
	unsigned int spares;	/* spare caches once it had its own */
	int alone;		/* no other thread runs: check the heap */
	int heap_ok;
};

static void *reuse_thread(void *arg)
{
	struct reuse_probe *r = arg;

	kheap_free(kheap_malloc(100));
	r->tc = kh_tc;
	r->spares = tcache_spare_count();
	r->heap_ok = !r->alone || kheap__check() == 0;
	cache_filler(NULL);
	return NULL;
}

static void test_thread_cache_reused(void)
{
	struct reuse_probe r[24];
	pthread_t t[24];
	struct kheap_stats st;
	unsigned int was;

	use_region(16 * MIB);
	/* one after another: the second takes the first's cache */
	was = tcache_spare_count();
	for (int i = 0; i < 2; i++) {
		r[i].alone = 1;
		pthread_create(&t[i], NULL, reuse_thread, &r[i]);
		pthread_join(t[i], NULL);
		CHECK(r[i].heap_ok);
		CHECK(tcache_spare_count() == (was ? was : 1));
	}
	CHECK(r[1].spares == (was ? was - 1 : 0) && r[1].tc != NULL);
	/* 24 at once, twice: at most 8 spare caches, none lost */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 24; i++) {
			r[i].alone = 0;
			pthread_create(&t[i], NULL, reuse_thread, &r[i]);
		}
		for (int i = 0; i < 24; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < 24; i++)
			CHECK(r[i].tc != NULL && r[i].spares <= 8);
		CHECK(tcache_spare_count() == 8);
		CHECK(kheap__check() == 0);
	}
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_cached == 0 && st.bytes_in_use == 0);
	CHECK(kheap__check() == 0);
}

/* ---- a thread's parked cache goes back when another runs out ---- */

static sem_t parked, go_on, refilled;

static void *parker(void *arg)
{
	void *v[64];

	(void)arg;
	/* about 1 MiB of medium blocks and 16 KiB of small ones parked */
	for (int i = 0; i < 16; i++)
		v[i] = kheap_malloc((size_t)(65 + 4 * i) << 10);
	for (int i = 0; i < 16; i++)
		kheap_free(v[i]);
	for (int i = 0; i < 64; i++)
		v[i] = kheap_malloc(256);
	for (int i = 0; i < 64; i++)
		kheap_free(v[i]);
	sem_post(&parked);
	sem_wait(&go_on);
	/* a refill: the moment to notice the others ran out */
	v[0] = kheap_malloc(1000);
	sem_post(&refilled);
	sem_wait(&go_on);
	kheap_free(v[0]);
	return NULL;
}

static void test_parked_cache_returns(void)
{
	size_t pool = 64 * MIB, nv = 0;
	struct kheap_stats st;
	void *v[128];
	pthread_t t;

	use_region(pool);
	sem_init(&parked, 0, 0);
	sem_init(&go_on, 0, 0);
	sem_init(&refilled, 0, 0);
	pthread_create(&t, NULL, parker, NULL);
	sem_wait(&parked);
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_cached >= 512 << 10, "%llu cached",
	       (unsigned long long)st.bytes_cached);
	/* run out here: that asks every thread to flush */
	while (nv < 128 && (v[nv] = kheap_malloc(MIB)) != NULL)
		nv++;
	CHECK(nv < 128 && errno == ENOMEM);
	while (nv)
		kheap_free(v[--nv]);
	sem_post(&go_on);
	sem_wait(&refilled);
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_cached < 64 << 10, "%llu still cached after the "
	       "parked thread's refill", (unsigned long long)st.bytes_cached);
	sem_post(&go_on);
	pthread_join(t, NULL);
	sem_destroy(&parked);
	sem_destroy(&go_on);
	sem_destroy(&refilled);
	CHECK(kheap__check() == 0);
}

/* ---- exhaustion from several threads, then full recovery ---- */

static void *exhaust(void *arg)
{
	void **v = arg;
	int n = 0;

	while (n < 100000) {
		void *p = kheap_malloc((size_t)(n % 5 ? 200 : 9000));

		if (!p)
			break;
		v[n++] = p;
	}
	v[n] = NULL;
	if (errno != ENOMEM)
		__atomic_fetch_add(&random_errors, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void test_exhaustion_threads(void)
{
	size_t pool = 8 * MIB;
	void **v[3];
	pthread_t t[3];
	void *p;

	use_region(pool);
	random_errors = 0;
	for (int i = 0; i < 3; i++) {
		v[i] = calloc(100001, sizeof(void *));
		pthread_create(&t[i], NULL, exhaust, v[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	CHECK(random_errors == 0);
	CHECK(kheap__check() == 0);
	for (int i = 0; i < 3; i++) {
		for (int j = 0; v[i][j]; j++)
			kheap_free(v[i][j]);
		free(v[i]);
	}
	p = kheap_malloc(pool);
	CHECK(p != NULL);
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

/* ---- dedicated chunks from several threads ---- */

static void *huge_worker(void *arg)
{
	struct rng g = { (unsigned long long)(uintptr_t)arg };

	for (int i = 0; i < 300 / SCALE; i++) {
		size_t n = rng_logu(&g, 2 * MIB, 24 * MIB);
		unsigned char *p = kheap_malloc(n), *q;

		if (!p)
			continue;
		stamp(p, n, (unsigned long)i);
		q = kheap_malloc(rng_logu(&g, 1, 50000));
		if (!stamped(p, n, (unsigned long)i))
			__atomic_fetch_add(&random_errors, 1, __ATOMIC_RELAXED);
		kheap_free(q);
		kheap_free(p);
	}
	return NULL;
}

static void test_huge_threads(void)
{
	pthread_t t[4];

	use_region(128 * MIB);
	random_errors = 0;
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, huge_worker, (void *)(i + 3));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(random_errors == 0);
	CHECK(kheap__check() == 0);
}

/* ---- fork while other threads allocate ---- */

static int stop_flag;

static void *spinner(void *arg)
{
	struct rng g = { (unsigned long long)(uintptr_t)arg };

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		void *p = kheap_malloc(rng_logu(&g, 1, 100000));

		kheap_free(p);
	}
	return NULL;
}

static void test_fork_threads(void)
{
	pthread_t t[2];

	use_region(128 * MIB);
	stop_flag = 0;
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, spinner, (void *)(i + 9));
	for (int round = 0; round < 10; round++) {
		void *mine = kheap_malloc(1000);
		pid_t pid;
		int status = -1;

		memset(mine, 0x6c, 1000);
		pid = fork();
		if (pid == 0) {
			int bad = 0;
			void *v[200];

			for (int i = 0; i < 200; i++) {
				v[i] = kheap_malloc((size_t)(i * 397 % 30000) + 1);
				bad |= !v[i];
			}
			for (int i = 0; i < 200; i++)
				kheap_free(v[i]);
			bad |= ((unsigned char *)mine)[999] != 0x6c;
			kheap_free(mine);
			bad |= kheap__check() != 0;
			_exit(bad);
		}
		waitpid(pid, &status, 0);
		CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		       "round %d status %#x", round, status);
		kheap_free(mine);
	}
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(kheap__check() == 0);
}

/* ---- medium blocks: batched refills and flushes (tcache.c) ---- */

static uint64_t cached_now(void)
{
	struct kheap_stats st;

	return kheap_stats(&st) == 0 ? st.bytes_cached : ~0ull;
}

/* A miss of an empty bin takes a batch, doubling from 1 to half the bin
 * (8 for 3000 bytes); an overflow gives the newer half of the bin back,
 * not one block, and halves the batch. */
static void test_medium_batch(void)
{
	/* blocks cached after each of 17 allocations of 3000 bytes */
	static const unsigned want[17] = { 0, 1, 0, 3, 2, 1, 0, 7, 6, 5, 4,
					   3, 2, 1, 0, 7, 6 };
	struct kheap_stats st;
	void *v[17];
	size_t u = 0;

	use_region(64 * MIB);	/* a fresh heap: this thread has no cache */
	/* batches are for processes with threads: the earlier tests made
	 * this one such for good */
	CHECK(!kheap_single_threaded());
	for (int i = 0; i < 17; i++) {
		v[i] = kheap_malloc(3000);
		CHECK(v[i] != NULL);
		if (!u)
			u = kheap_malloc_usable_size(v[0]);
		CHECK(kheap_malloc_usable_size(v[i]) == u);
		CHECK(kheap_stats(&st) == 0);
		CHECKF(st.bytes_cached == want[i] * u &&
		       st.bytes_in_use == (i + 1) * u,
		       "allocation %d: cached %llu in use %llu, block %zu", i,
		       (unsigned long long)st.bytes_cached,
		       (unsigned long long)st.bytes_in_use, u);
		memset(v[i], i, 3000);
	}
	for (int i = 0; i < 17; i++)
		for (int j = 0; j < i; j++)
			CHECK(v[i] != v[j]);
	/* 6 cached: 10 frees fill the bin of 16 */
	for (int i = 0; i < 10; i++)
		kheap_free(v[i]);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_cached == 16 * u && st.bytes_in_use == 7 * u);
	kheap_free(v[10]);	/* an overflow: v[2..9] go back, v[10] stays */
	CHECKF(cached_now() == 9 * u, "%llu cached after the overflow",
	       (unsigned long long)cached_now());
	for (int i = 11; i < 17; i++)
		kheap_free(v[i]);
	CHECK(cached_now() == 15 * u);
	CHECK(kheap__check() == 0);
	kheap__flush_thread_cache();
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_in_use == 0 && st.bytes_cached == 0);
	/* the overflow halved the batch: 4 now */
	v[0] = kheap_malloc(3000);
	CHECKF(cached_now() == 3 * u, "%llu cached after a halved batch",
	       (unsigned long long)cached_now());
	kheap_free(v[0]);
	kheap__flush_thread_cache();
	/* over the byte bound (1 MiB here): down to 3/4 of it, a bin's
	 * first block kept; never above it */
	for (int i = 0; i < 16; i++)
		v[i] = kheap_malloc((size_t)(65 + 4 * i) << 10);
	for (int i = 0; i < 16; i++) {
		CHECK(v[i] != NULL);
		kheap_free(v[i]);
		CHECK(cached_now() <= MIB);
	}
	ktap_diag("%llu bytes cached after 16 blocks of 65-125 KiB",
		  (unsigned long long)cached_now());
	CHECK(cached_now() >= MIB / 2);
	kheap__flush_thread_cache();
	CHECK(kheap__check() == 0);
}

/* Batches cost no utilisation: they never grow the heap, and the cache
 * they filled goes back before ENOMEM. */
static void test_medium_batch_pool_short(void)
{
	size_t pool = 16 * MIB, nv = 0, live = 0;
	static void *v[8192];
	struct kheap_stats st;

	use_region(pool);
	while (nv < 8192 && (v[nv] = kheap_malloc(5000)) != NULL)
		live += kheap_malloc_usable_size(v[nv++]);
	CHECK(nv < 8192 && errno == ENOMEM);
	CHECK(kheap_stats(&st) == 0);
	ktap_diag("%zu blocks of 5000 in a 16 MiB pool, %llu cached", nv,
		  (unsigned long long)st.bytes_cached);
	CHECK(live >= pool * 95 / 100);
	CHECK(kheap__check() == 0);
	while (nv)
		kheap_free(v[--nv]);
	CHECK(kheap_trim() > 0);
	CHECK(cached_now() == 0);
	v[0] = kheap_malloc(pool);
	CHECK(v[0] != NULL);
	kheap_free(v[0]);
}

/* Medium blocks allocated by one thread and freed by another, both
 * exiting with medium blocks cached: nothing lost, nothing kept. */
#define MED_N 3000

static void *med_allocator(void *arg)
{
	unsigned char **v = arg;
	struct rng g = { 777 };

	for (int i = 0; i < MED_N; i++) {
		size_t n = rng_logu(&g, 1025, 32768);

		v[i] = kheap_malloc(n);
		if (v[i])
			stamp(v[i], n, (unsigned long)i);
	}
	/* a few freed here too: this thread exits with some cached */
	for (int i = 0; i < 40; i++) {
		kheap_free(v[i]);
		v[i] = NULL;
	}
	return NULL;
}

static void *med_freer(void *arg)
{
	unsigned char **v = arg;
	struct rng g = { 777 };
	long bad = 0;

	for (int i = 0; i < MED_N; i++) {
		size_t n = rng_logu(&g, 1025, 32768);

		if (i >= 40 && (!v[i] || !stamped(v[i], n, (unsigned long)i)))
			bad++;
		kheap_free(v[i]);
	}
	return (void *)bad;
}

static void test_medium_cross_thread(void)
{
	static unsigned char *v[MED_N];
	size_t pool = 128 * MIB;
	struct kheap_stats st;
	pthread_t a, b;
	void *bad = (void *)1;

	use_region(pool);
	pthread_create(&a, NULL, med_allocator, v);
	pthread_join(a, NULL);
	pthread_create(&b, NULL, med_freer, v);
	pthread_join(b, &bad);
	CHECK(bad == NULL);
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_in_use == 0 && st.bytes_cached == 0,
	       "in use %llu cached %llu", (unsigned long long)st.bytes_in_use,
	       (unsigned long long)st.bytes_cached);
	CHECK(kheap__check() == 0);
	v[0] = kheap_malloc(pool);
	CHECK(v[0] != NULL);
	kheap_free(v[0]);
}

/* A parked thread's medium batch: kheap_trim() takes it; a fork child
 * does not inherit it as cached. */
static sem_t med_parked, med_go;

static void *med_parker(void *arg)
{
	void *p[8];

	(void)arg;
	/* batches of 1, 2, 4 and 8: 7 blocks left cached */
	for (int i = 0; i < 8; i++)
		p[i] = kheap_malloc(6000);
	sem_post(&med_parked);
	sem_wait(&med_go);
	for (int i = 0; i < 8; i++)
		kheap_free(p[i]);
	return NULL;
}

static void test_medium_trim_fork(void)
{
	struct kheap_stats st;
	pthread_t t;
	pid_t pid;
	int status = -1;

	use_region(64 * MIB);
	sem_init(&med_parked, 0, 0);
	sem_init(&med_go, 0, 0);
	pthread_create(&t, NULL, med_parker, NULL);
	sem_wait(&med_parked);
	CHECK(cached_now() >= 7 * 6000);
	pid = fork();
	if (pid == 0) {
		int bad = kheap_stats(&st) || st.bytes_cached != 0;
		void *q = kheap_malloc(6000);

		bad |= !q;
		kheap_free(q);
		bad |= kheap__check() != 0;
		_exit(bad);
	}
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "fork child: status %#x", status);
	CHECK(cached_now() >= 7 * 6000);	/* the parent's are still there */
	kheap_trim();
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_cached == 0 && st.bytes_in_use >= 8 * 6000 &&
	       st.bytes_in_use < 8 * 6200, "cached %llu in use %llu",
	       (unsigned long long)st.bytes_cached,
	       (unsigned long long)st.bytes_in_use);
	sem_post(&med_go);
	pthread_join(t, NULL);
	sem_destroy(&med_parked);
	sem_destroy(&med_go);
	kheap_trim();
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_in_use == 0 && st.bytes_cached == 0);
	CHECK(kheap__check() == 0);
}

/*
 * Slab ownership (slab.h): four threads each free one of four 8-byte
 * objects the main thread allocated side by side, then allocate 8 bytes.
 * None may get an object within a kilobyte of an object another thread
 * holds: not in one cache line with it, nor with its in-use byte (one per
 * 16 bytes of heap, written by every malloc and free).  Before slabs had
 * owners, each thread got back the main thread's object it had freed,
 * all four in one line.  The freed objects go back to the main thread's
 * slab, onto its free chain, not into any thread's cache.
 */
#define FS_THREADS 4
static void *fs_given[FS_THREADS], *fs_got[FS_THREADS];
static pthread_barrier_t fs_bar;

static void *fs_thread(void *arg)
{
	long i = (long)arg;

	pthread_barrier_wait(&fs_bar);
	kheap_free(fs_given[i]);
	fs_got[i] = kheap_malloc(8);
	pthread_barrier_wait(&fs_bar);	/* all hold theirs at once */
	kheap_free(fs_got[i]);
	return NULL;
}

static int near(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	return (x > y ? x - y : y - x) < 1024;
}

static void test_slab_owners(void)
{
	pthread_t t[FS_THREADS];
	int far = 1, back;

	use_region(64 * MIB);
	for (int i = 0; i < FS_THREADS; i++)
		fs_given[i] = kheap_malloc(8);
	CHECK(fs_given[0] && (uintptr_t)fs_given[0] >> 6 ==
	      (uintptr_t)fs_given[FS_THREADS - 1] >> 6);
	pthread_barrier_init(&fs_bar, NULL, FS_THREADS);
	for (long i = 0; i < FS_THREADS; i++)
		pthread_create(&t[i], NULL, fs_thread, (void *)i);
	for (int i = 0; i < FS_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&fs_bar);
	for (int i = 0; i < FS_THREADS; i++) {
		CHECK(fs_got[i] != NULL);
		for (int j = 0; j < FS_THREADS; j++)
			if (near(fs_got[i], fs_given[j]) ||
			    (j != i && near(fs_got[i], fs_got[j])))
				far = 0;
	}
	CHECKF(far, "got %p %p %p %p beside %p", fs_got[0], fs_got[1],
	       fs_got[2], fs_got[3], fs_given[0]);
	/* Back on their slab's free chain, the slab still the main
	 * thread's: no thread cached them. */
	heap_lock();
	{
		const struct slab *sl = &kh.slabs[gran_of((uintptr_t)fs_given[0])];
		int onchain = 0;

		for (void *q = sl->free; q; q = *(void **)q)
			for (int i = 0; i < FS_THREADS; i++)
				onchain += q == fs_given[i];
		back = onchain == FS_THREADS && sl->owner == kh_tc;
	}
	heap_unlock();
	CHECK(back);
	CHECK(kheap__check() == 0);
}

int main(void)
{
	ktap_plan(12);
	RUN(test_producer_consumer);
	RUN(test_many_threads);
	RUN(test_thread_exit);
	RUN(test_thread_cache_reused);
	RUN(test_parked_cache_returns);
	RUN(test_exhaustion_threads);
	RUN(test_huge_threads);
	RUN(test_fork_threads);
	RUN(test_medium_batch);
	RUN(test_medium_batch_pool_short);
	RUN(test_medium_cross_thread);
	RUN(test_medium_trim_fork);
	RUN(test_slab_owners);
	return ktap_finish();
}
