// SPDX-License-Identifier: MIT
/*
 * test_trim.c - memory given back (kheap_trim, the ENOMEM retry, the
 * spare bound, the idle sweep, the fork child, calloc of fresh memory)
 * over the region provider, whose pool accounting (kheap_stats'
 * pool_free) is what another process would see.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tcache.h"
#include "ktap.h"

#define FAKE_PHYS	0x142a00000ull
#define MIB		((size_t)1 << 20)
#define POOL		(64 * MIB)	/* 8 MiB arenas, dedicated above 4 */

static void use_region(size_t pool)
{
	int err = kheap__use_provider(kheap_region_provider(pool, FAKE_PHYS));

	if (err) {
		printf("# region provider failed: %d\n", err);
		exit(1);
	}
}

static struct kheap_stats stats(void)
{
	struct kheap_stats st;

	if (kheap_stats(&st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/* Resident pages of [p, p + n), page-aligned p. */
static size_t resident(const void *p, size_t n)
{
	size_t pg = 4096, np = (n + pg - 1) / pg, r = 0;
	unsigned char *v = malloc(np);

	if (!v || mincore((void *)p, np * pg, v)) {
		free(v);
		return (size_t)-1;
	}
	for (size_t i = 0; i < np; i++)
		r += v[i] & 1;
	free(v);
	return r;
}

/*
 * A thread that fills the pool with 64-120 KiB blocks, frees one block of
 * each arena first (those stay in its cache, one in each of 8 bins) and
 * then all the others, and stays alive without calling the library: its
 * cache keeps every arena from being empty.
 */
static sem_t parked, go_home;

static void *hoarder(void *arg)
{
	size_t max = POOL / (64 << 10), n = 0;
	void **v = calloc(max, sizeof(void *));
	uintptr_t taken[16] = { 0 };
	unsigned nt = 0;

	(void)arg;
	while (n < max && (v[n] = kheap_malloc((64 + 8 * (n % 8)) << 10)))
		n++;
	/* first, per arena, the block whose bin is the arena's number */
	for (size_t i = 0; i < n && nt < 8; i++) {
		uintptr_t a = (uintptr_t)kh.owner[gran_of((uintptr_t)v[i])];
		int seen = 0;

		for (unsigned j = 0; j < nt; j++)
			seen |= taken[j] == a;
		if (seen || i % 8 != nt)
			continue;
		taken[nt++] = a;
		kheap_free(v[i]);
		v[i] = NULL;
	}
	for (size_t i = 0; i < n; i++)
		kheap_free(v[i]);
	free(v);
	sem_post(&parked);
	sem_wait(&go_home);
	return NULL;
}

static void park_hoarder(pthread_t *t)
{
	struct kheap_stats st;

	sem_init(&parked, 0, 0);
	sem_init(&go_home, 0, 0);
	pthread_create(t, NULL, hoarder, NULL);
	sem_wait(&parked);
	st = stats();
	ktap_diag("parked cache: %llu bytes, pool holds %llu of %llu "
		  "(%llu chunks)", (unsigned long long)st.bytes_cached,
		  (unsigned long long)st.bytes_held,
		  (unsigned long long)st.pool_size,
		  (unsigned long long)st.chunks_held);
	/* the premise: the idle thread's cache keeps most of the pool */
	CHECK(st.bytes_cached > 0);
	CHECK(st.bytes_held >= POOL / 2);
}

static void release_hoarder(pthread_t t)
{
	sem_post(&go_home);
	pthread_join(t, NULL);
	sem_destroy(&parked);
	sem_destroy(&go_home);
}

/* Another thread's large request succeeds: the failing allocation takes
 * the idle thread's cache and retries. */
static void test_idle_cache_taken_on_enomem(void)
{
	pthread_t t;
	void *p;

	use_region(POOL);
	park_hoarder(&t);
	p = kheap_malloc(POOL / 2);
	CHECKF(p != NULL, "errno %d", errno);
	CHECK(stats().bytes_cached == 0);
	kheap_free(p);
	p = kheap_malloc(POOL);		/* all of it, one block */
	CHECK(p != NULL);
	kheap_free(p);
	release_hoarder(t);
	CHECK(kheap__check() == 0);
}

/* kheap_trim gives everything back, the idle thread's cache included. */
static void test_trim_all(void)
{
	struct kheap_stats st;
	pthread_t t;
	void *v[64];
	size_t held, got;

	use_region(POOL);
	CHECK(kheap_trim() == 0);		/* nothing held yet */
	/* this thread's own: small, medium, dedicated, all freed */
	for (int i = 0; i < 64; i++)
		v[i] = kheap_malloc((size_t)1 << (4 + i % 19));
	for (int i = 0; i < 64; i++)
		kheap_free(v[i]);
	CHECK(stats().bytes_chunks_cached > 0);
	park_hoarder(&t);
	held = stats().bytes_held;
	CHECK(held >= POOL / 2);
	got = kheap_trim();
	st = stats();
	ktap_diag("kheap_trim: %zu of %zu bytes back, %llu held",
		  got, held, (unsigned long long)st.bytes_held);
	CHECK(got == held && st.bytes_held == 0 && st.chunks_held == 0);
	CHECK(st.pool_free == POOL && st.bytes_cached == 0);
	CHECK(kheap_trim() == 0);
	release_hoarder(t);
	CHECK(kheap__check() == 0);
}

/*
 * Spare memory: one empty arena, or cached chunks, together at most
 * min(pool / 8, 64 MiB); at most SPARE_SLABS_MAX spare slabs.
 */
static void test_spare_bound(void)
{
	struct kheap_stats st;
	void *v[100], *big;
	unsigned spares = 0;

	use_region(POOL);
	/* blocks too large for the thread cache, over several arenas */
	for (int i = 0; i < 100; i++)
		v[i] = kheap_malloc(300 << 10);
	CHECK(stats().chunks_held >= 3);
	for (int i = 0; i < 100; i++)
		kheap_free(v[i]);
	st = stats();
	ktap_diag("after freeing 100 x 300 KiB: %llu held",
		  (unsigned long long)st.bytes_held);
	CHECK(st.bytes_held == st.arena_size && st.chunks_held == 1);
	/* a cached chunk and the empty arena: one gives way */
	big = kheap_malloc(6 * MIB);
	CHECK(big != NULL);
	kheap_free(big);
	st = stats();
	ktap_diag("and a 6 MiB chunk freed: %llu held, %llu cached",
		  (unsigned long long)st.bytes_held,
		  (unsigned long long)st.bytes_chunks_cached);
	CHECK(st.chunks_cached == 1 && st.bytes_held <= POOL / 8);
	/* and the other way: an arena emptied after a chunk was cached */
	v[0] = kheap_malloc(300 << 10);
	kheap_free(v[0]);
	st = stats();
	CHECK(st.bytes_held <= POOL / 8);

	/* small objects of every class, slabs emptied: few spares, and
	 * only while something else lives in their arena */
	kheap_trim();
	v[0] = kheap_malloc(200 << 10);
	for (unsigned c = 0; c < NCLASS; c++) {
		void *o[80];

		for (int i = 0; i < 80; i++)
			o[i] = kheap_malloc(kh_class_size[c]);
		for (int i = 0; i < 80; i++)
			kheap_free(o[i]);
	}
	kheap__flush_thread_cache();
	for (unsigned c = 0; c < NCLASS; c++)
		spares += kh.cls[c].spare != NULL;
	ktap_diag("%u spare slabs", spares);
	CHECK(spares >= 1 && spares <= 4);
	CHECK(kheap__check() == 0);
	kheap_free(v[0]);	/* the arena's last block: spares go too */
	kheap__flush_thread_cache();
	spares = 0;
	for (unsigned c = 0; c < NCLASS; c++)
		spares += kh.cls[c].spare != NULL;
	st = stats();
	ktap_diag("last block freed: %u spare slabs, %llu held in %llu chunks",
		  spares, (unsigned long long)st.bytes_held,
		  (unsigned long long)st.chunks_held);
	CHECK(spares == 0 && st.chunks_held == 1);
	CHECK(kheap__check() == 0);
	CHECK(kheap_trim() > 0 && stats().bytes_held == 0);
}

/* A class the thread stopped allocating goes back after enough frees of
 * others; a class in use keeps its cache. */
static void test_idle_sweep(void)
{
	struct tcache *tc;
	unsigned a = size_class(48), b = size_class(16);
	void *o[64];

	use_region(POOL);
	for (int i = 0; i < 64; i++)
		o[i] = kheap_malloc(48);
	for (int i = 0; i < 64; i++)
		kheap_free(o[i]);
	tc = kh_tc;
	CHECK(tc && tc->small[a].count > 0);
	if (!tc)
		return;
	for (int i = 0; i < 3 * TC_SWEEP_FREES; i++)
		kheap_free(kheap_malloc(16));
	ktap_diag("class 48: %u cached, class 16: %u cached",
		  tc->small[a].count, tc->small[b].count);
	CHECK(tc->small[a].count == 0);
	CHECK(tc->small[b].count > 0);
	CHECK(kheap__check() == 0);
}

/*
 * A fork child unmaps what it holds but does not use: the cached chunk,
 * the empty arena, the other threads' caches.  The region's accounting
 * is the child's own copy, as a device child's view of its own holdings.
 */
static void test_fork_child_gives_up(void)
{
	struct kheap_stats st, cs;
	unsigned char *keep, *gone, *arena_blk;
	pthread_t t;
	int pfd[2], status = -1;
	pid_t pid;

	use_region(POOL);
	keep = kheap_malloc(100);
	gone = kheap_malloc(5 * MIB);
	CHECK(keep && gone);
	memset(gone, 0x5a, 5 * MIB);
	kheap_free(gone);		/* cached */
	*keep = 0x11;
	st = stats();
	CHECK(st.chunks_cached == 1);
	CHECK(pipe(pfd) == 0);
	pid = fork();
	if (pid == 0) {
		unsigned char *h;

		cs = stats();
		h = kheap_malloc(5 * MIB);
		if (write(pfd[1], &cs, sizeof(cs)) != sizeof(cs))
			_exit(2);
		/* a fresh chunk: zero, not the parent's bytes */
		_exit(!h || h[0] || h[5 * MIB - 1] || *keep != 0x11 ||
		      kheap__check() != 0);
	}
	CHECK(read(pfd[0], &cs, sizeof(cs)) == sizeof(cs));
	waitpid(pid, &status, 0);
	ktap_diag("parent holds %llu (%llu cached); child %llu (%llu cached), "
		  "pool free %llu", (unsigned long long)st.bytes_held,
		  (unsigned long long)st.bytes_chunks_cached,
		  (unsigned long long)cs.bytes_held,
		  (unsigned long long)cs.bytes_chunks_cached,
		  (unsigned long long)cs.pool_free);
	CHECK(cs.chunks_cached == 0 && cs.bytes_chunks_cached == 0);
	CHECK(cs.bytes_held == st.bytes_held - st.bytes_chunks_cached);
	CHECK(cs.pool_free == st.pool_free + st.bytes_chunks_cached);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x",
	       status);
	kheap_free(keep);

	/* an empty arena and an idle thread's cache */
	use_region(POOL);
	keep = kheap_malloc(100);
	arena_blk = kheap_malloc(3 * MIB);	/* a second arena */
	CHECK(keep && arena_blk);
	kheap_free(arena_blk);
	park_hoarder(&t);
	st = stats();
	pid = fork();
	if (pid == 0) {
		cs = stats();
		if (write(pfd[1], &cs, sizeof(cs)) != sizeof(cs))
			_exit(2);
		_exit(kheap__check() != 0);
	}
	CHECK(read(pfd[0], &cs, sizeof(cs)) == sizeof(cs));
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x",
	       status);
	ktap_diag("parent holds %llu; child %llu (one arena: %llu)",
		  (unsigned long long)st.bytes_held,
		  (unsigned long long)cs.bytes_held,
		  (unsigned long long)cs.arena_size);
	CHECK(st.bytes_held >= POOL / 2);
	CHECK(cs.bytes_held <= cs.arena_size && cs.bytes_cached == 0);
	CHECK(cs.pool_free == POOL - cs.bytes_held);
	release_hoarder(t);
	kheap_free(keep);
	close(pfd[0]);
	close(pfd[1]);
	CHECK(kheap__check() == 0);
}

/*
 * calloc of memory fresh from the kernel does not write it (its pages
 * stay untouched: not resident); over reused memory it is zero.
 */
static void test_calloc_fresh(void)
{
	unsigned char *p, *q;
	size_t r;

	use_region(POOL);
	p = kheap_calloc(1, 20 * MIB);		/* a fresh dedicated chunk */
	CHECK(p != NULL);
	r = resident(p, 20 * MIB);
	ktap_diag("fresh dedicated calloc: %zu resident pages", r);
	CHECK(r == 0);
	memset(p, 0xff, 20 * MIB);
	kheap_free(p);
	kheap_trim();
	CHECK(stats().bytes_held == 0);
	/* a fresh arena: only TLSF's words at the block's two ends */
	p = kheap_calloc(1, 3 * MIB);
	CHECK(p != NULL);
	r = resident((void *)((uintptr_t)p & ~(uintptr_t)4095), 3 * MIB + 4096);
	ktap_diag("fresh arena calloc: %zu resident pages", r);
	CHECK(r <= 3);
	memset(p, 0xff, 3 * MIB);
	kheap_free(p);
	q = kheap_calloc(1, 3 * MIB);		/* over the dirty block */
	CHECK(q != NULL);
	for (size_t i = 0; q && i < 3 * MIB; i += 4093)
		if (q[i]) {
			CHECKF(0, "byte %zu is %#x", i, q[i]);
			break;
		}
	CHECK(q && !q[3 * MIB - 1]);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

int main(void)
{
	ktap_plan(6);
	RUN(test_idle_cache_taken_on_enomem);
	RUN(test_trim_all);
	RUN(test_spare_bound);
	RUN(test_idle_sweep);
	RUN(test_fork_child_gives_up);
	RUN(test_calloc_fresh);
	return ktap_finish();
}
