// SPDX-License-Identifier: MIT
/*
 * mt.c - the classic multi-threaded allocator workloads, written from
 * their published descriptions (no code taken from them):
 *
 *   larson          Larson and Krishnan's server simulation: each thread
 *                   keeps an array of blocks (16-1024 B), replaces random
 *                   ones, then hands the array to a thread it creates and
 *                   exits; the new thread frees what the old one allocated.
 *   xmalloc         Lever and Boreham's producer/consumer test: every
 *                   thread allocates blocks (16 B-64 KiB) and passes them
 *                   to the next thread in a ring, which frees them.
 *   cache_scratch   Hoard's passive false sharing test: the main thread
 *                   allocates one small object per thread, side by side;
 *                   each thread frees its object, then allocates, writes
 *                   and frees objects of that size over and over.  An
 *                   allocator that hands the freed object back to that
 *                   thread makes the threads share a cache line.
 *   cache_thrash    the active variant: no object from the main thread;
 *                   an allocator that places different threads' small
 *                   objects in one cache line makes them share it.
 *   mstress         a memory stress test of many sizes (mostly small, now
 *                   and then up to 1 MiB) and lifetimes (replaced at once,
 *                   kept for a round, kept for many rounds, or passed to
 *                   another thread through a shared array).
 *   malloc_thread   glibc's benchtests malloc-thread: each thread frees
 *                   and allocates at random slots of its own fixed working
 *                   set, sizes up to 32 KiB, small ones more often.
 *
 * Each thread does the same amount of work whatever the thread count
 * (mt_threads), so the figure (wall-clock ns per operation over all
 * threads) falls as the allocator scales, down to what the CPUs allow.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"

int mt_threads = 1;

#define MAXTHR 64

/* Spin briefly, then give the CPU away: more threads than CPUs here. */
static inline void wait_a_little(int *spin)
{
	if (++*spin < 100)
		cpu_relax();
	else
		sched_yield();
}

/* Start nthreads threads on fn(arg + i * size), wait for them all. */
static void run_threads(void *(*fn)(void *), void *arg, size_t size)
{
	pthread_t t[MAXTHR];
	int n = mt_threads;

	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, (char *)arg + (size_t)i * size);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* ---- larson ---- */

#define LARSON_SLOTS 1000
#define LARSON_GENERATIONS 10

struct larson {
	struct allocator *a;
	void *slot[LARSON_SLOTS];
	uint64_t rng;
	long ops;		/* replacements per generation */
	int gen;
	/* each generation's thread; written by pthread_create() in the
	 * generation before, which ends only after that: joining it makes
	 * the next one visible */
	pthread_t tid[LARSON_GENERATIONS];
} __attribute__((aligned(64)));

static void *larson_thread(void *arg)
{
	struct larson *l = arg;
	struct allocator *a = l->a;

	for (long i = 0; i < l->ops; i++) {
		unsigned int k = (unsigned int)(xr_next(&l->rng) % LARSON_SLOTS);
		size_t n = 16 + (size_t)(xr_next(&l->rng) % 1009);
		char *p;

		a->free(l->slot[k]);
		p = a->malloc(n);
		p[0] = 1;
		l->slot[k] = p;
	}
	if (++l->gen < LARSON_GENERATIONS) {
		/* hand the blocks over to a new thread */
		pthread_create(&l->tid[l->gen], NULL, larson_thread, l);
	} else {
		for (int k = 0; k < LARSON_SLOTS; k++)
			a->free(l->slot[k]);
	}
	return NULL;
}

double w_larson(struct allocator *a)
{
	static struct larson l[MAXTHR];
	double t;

	for (int i = 0; i < mt_threads; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		l[i].a = a;
		l[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		l[i].ops = (long)(20000 * scale);
		/* The main thread allocates the first blocks: the first
		 * generation's frees are already cross-thread. */
		for (int k = 0; k < LARSON_SLOTS; k++) {
			char *p = a->malloc(16 + (size_t)(xr_next(&l[i].rng) % 1009));

			p[0] = 1;
			l[i].slot[k] = p;
		}
	}
	t = now();
	for (int i = 0; i < mt_threads; i++)
		pthread_create(&l[i].tid[0], NULL, larson_thread, &l[i]);
	for (int i = 0; i < mt_threads; i++)
		for (int g = 0; g < LARSON_GENERATIONS; g++)
			pthread_join(l[i].tid[g], NULL);
	t = now() - t;
	return t / ((double)l[0].ops * LARSON_GENERATIONS * mt_threads);
}

/* ---- xmalloc ---- */

#define XM_RING 1024
#define XM_BATCH 64

struct xm_ring {
	void *slot[XM_RING];
	unsigned long head __attribute__((aligned(64)));
	unsigned long tail __attribute__((aligned(64)));
};

struct xm {
	struct allocator *a;
	struct xm_ring *out, *in;
	long count;
	uint64_t rng;
} __attribute__((aligned(64)));

static void *xm_thread(void *arg)
{
	struct xm *x = arg;
	struct allocator *a = x->a;
	long made = 0, freed = 0;
	int spin = 0;

	while (made < x->count || freed < x->count) {
		unsigned long h = x->out->head, t, hd;
		int progress = 0;

		/* produce a batch, as far as the ring has room */
		for (int b = 0; b < XM_BATCH && made < x->count; b++) {
			size_t n;
			char *p;

			if (h - __atomic_load_n(&x->out->tail, __ATOMIC_ACQUIRE) >=
			    XM_RING)
				break;
			n = xr_size(&x->rng, 4, 16);
			p = a->malloc(n);
			p[0] = 1;
			p[n - 1] = 1;
			x->out->slot[h % XM_RING] = p;
			__atomic_store_n(&x->out->head, ++h, __ATOMIC_RELEASE);
			made++;
			progress = 1;
		}
		/* consume what the previous thread passed on */
		t = x->in->tail;
		hd = __atomic_load_n(&x->in->head, __ATOMIC_ACQUIRE);
		for (; t != hd; t++, freed++) {
			a->free(x->in->slot[t % XM_RING]);
			progress = 1;
		}
		__atomic_store_n(&x->in->tail, t, __ATOMIC_RELEASE);
		if (progress)
			spin = 0;
		else
			wait_a_little(&spin);
	}
	return NULL;
}

double w_xmalloc(struct allocator *a)
{
	static struct xm_ring ring[MAXTHR];
	static struct xm x[MAXTHR];
	int n = mt_threads;
	double t;

	for (int i = 0; i < n; i++) {
		ring[i].head = ring[i].tail = 0;
		x[i].a = a;
		x[i].out = &ring[i];
		x[i].in = &ring[(i + n - 1) % n];
		x[i].count = (long)(100000 * scale);
		x[i].rng = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
	}
	t = now();
	run_threads(xm_thread, x, sizeof(x[0]));
	return (now() - t) / ((double)x[0].count * n);
}

/* ---- cache_scratch and cache_thrash ---- */

#define CS_OBJECT 8
#define CS_WRITES 500

struct cs {
	struct allocator *a;
	char *first;		/* the main thread's object (scratch) */
	long iterations;
} __attribute__((aligned(64)));

static void *cs_thread(void *arg)
{
	struct cs *c = arg;
	struct allocator *a = c->a;

	if (c->first)
		a->free(c->first);
	for (long i = 0; i < c->iterations; i++) {
		volatile char *p = a->malloc(CS_OBJECT);

		for (int w = 0; w < CS_WRITES; w++)
			p[w % CS_OBJECT]++;
		a->free((void *)p);
	}
	return NULL;
}

static double cache_run(struct allocator *a, int passive)
{
	static struct cs c[MAXTHR];
	double t;

	for (int i = 0; i < mt_threads; i++) {
		c[i].a = a;
		c[i].iterations = (long)(20000 * scale);
		/* side by side: likely one cache line for several threads */
		c[i].first = passive ? a->malloc(CS_OBJECT) : NULL;
		if (c[i].first)
			memset(c[i].first, 0, CS_OBJECT);
	}
	t = now();
	run_threads(cs_thread, c, sizeof(c[0]));
	return (now() - t) / ((double)c[0].iterations * mt_threads);
}

double w_cache_scratch(struct allocator *a)
{
	return cache_run(a, 1);
}

double w_cache_thrash(struct allocator *a)
{
	return cache_run(a, 0);
}

/* ---- mstress ---- */

#define MS_LOCAL 500
#define MS_SHARED 1024
#define MS_ROUNDS 10

static void *ms_shared[MS_SHARED];

struct ms {
	struct allocator *a;
	long steps;		/* per round */
	uint64_t rng;
} __attribute__((aligned(64)));

static size_t ms_size(uint64_t *rng)
{
	unsigned int r = (unsigned int)(xr_next(rng) % 1000);

	if (r < 900)
		return xr_size(rng, 4, 8);	/* 16-256 B */
	if (r < 990)
		return xr_size(rng, 8, 13);	/* 256 B-8 KiB */
	if (r < 999)
		return xr_size(rng, 13, 16);	/* 8-64 KiB */
	return xr_size(rng, 16, 20);		/* 64 KiB-1 MiB */
}

static void *ms_thread(void *arg)
{
	struct ms *m = arg;
	struct allocator *a = m->a;
	void *local[MS_LOCAL] = { 0 };

	for (int r = 0; r < MS_ROUNDS; r++) {
		for (long s = 0; s < m->steps; s++) {
			uint64_t x = xr_next(&m->rng);
			unsigned int k = (unsigned int)(x % MS_LOCAL);
			size_t n = ms_size(&m->rng);
			char *p = a->malloc(n);

			p[0] = 1;
			p[n - 1] = 1;
			if ((x >> 32) % 8 == 0) {
				/* to another thread: whoever takes this slot
				 * next frees it */
				unsigned int j = (unsigned int)((x >> 40) %
								MS_SHARED);

				p = __atomic_exchange_n(&ms_shared[j], p,
							__ATOMIC_ACQ_REL);
				a->free(p);
			} else {
				a->free(local[k]);
				local[k] = p;
			}
		}
		/* end of a round: about half the kept blocks die, the rest
		 * live on into later rounds */
		for (int k = 0; k < MS_LOCAL; k++) {
			if (xr_next(&m->rng) & 1) {
				a->free(local[k]);
				local[k] = NULL;
			}
		}
	}
	for (int k = 0; k < MS_LOCAL; k++)
		a->free(local[k]);
	return NULL;
}

double w_mstress(struct allocator *a)
{
	static struct ms m[MAXTHR];
	double t;

	for (int i = 0; i < mt_threads; i++) {
		m[i].a = a;
		m[i].steps = (long)(20000 * scale);
		m[i].rng = 0xd1b54a32d192ed03ull * (uint64_t)(i + 1);
	}
	t = now();
	run_threads(ms_thread, m, sizeof(m[0]));
	t = now() - t;
	for (int j = 0; j < MS_SHARED; j++) {
		a->free(ms_shared[j]);
		ms_shared[j] = NULL;
	}
	return t / ((double)m[0].steps * MS_ROUNDS * mt_threads);
}

/* ---- malloc_thread ---- */

#define MT_WORKING_SET 1024

struct mth {
	struct allocator *a;
	long iterations;
	uint64_t rng;
} __attribute__((aligned(64)));

static void *mth_thread(void *arg)
{
	struct mth *m = arg;
	struct allocator *a = m->a;
	void *ws[MT_WORKING_SET] = { 0 };

	for (long i = 0; i < m->iterations; i++) {
		unsigned int k = (unsigned int)(xr_next(&m->rng) %
						MT_WORKING_SET);
		/* small sizes more often: half of them up to 256 B */
		size_t n = xr_next(&m->rng) & 1 ? xr_size(&m->rng, 2, 8) :
						   xr_size(&m->rng, 2, 15);
		char *p;

		a->free(ws[k]);
		p = a->malloc(n);
		p[0] = 1;
		ws[k] = p;
	}
	for (int k = 0; k < MT_WORKING_SET; k++)
		a->free(ws[k]);
	return NULL;
}

double w_malloc_thread(struct allocator *a)
{
	static struct mth m[MAXTHR];
	double t;

	for (int i = 0; i < mt_threads; i++) {
		m[i].a = a;
		m[i].iterations = (long)(200000 * scale);
		m[i].rng = 0xbf58476d1ce4e5b9ull * (uint64_t)(i + 1);
	}
	t = now();
	run_threads(mth_thread, m, sizeof(m[0]));
	return (now() - t) / ((double)m[0].iterations * mt_threads);
}
