/* SPDX-License-Identifier: MIT */
/*
 * kbench.h - what kbench's files share: the four allocators behind
 * function pointers, the clock, the per-thread random numbers and the
 * entry points of the threaded workloads (mt.c), the utilisation
 * measurement (usage.c) and the system call counters (sysc.c).
 */
#ifndef KBENCH_H
#define KBENCH_H

#include <stddef.h>
#include <stdint.h>

#include "lock.h"	/* libkheap's, for kheap_cpu_relax() */

#define MIB ((size_t)1 << 20)
#define NALLOC 4	/* kheap, glibc, jemalloc, mimalloc: A[] order */

struct allocator {
	const char *name;
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*realloc)(void *, size_t);
	void *(*calloc)(size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	int ok;
};

extern struct allocator A[NALLOC];
extern double scale;	/* 1.0, or 0.1 with --quick */
extern int reps;

double now(void);	/* CLOCK_MONOTONIC, ns */

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* libkheap's spin-wait hint (pause, yield, or a compiler barrier). */
#define cpu_relax() kheap_cpu_relax()

/* xorshift64: each thread its own, seeded so every allocator sees the
 * same sequence. */
static inline uint64_t xr_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A size in [lo, hi] (lo, hi powers of two), spread evenly over the
 * powers of two in between and evenly inside each: log-uniform without
 * a call to exp(), so the workload's own cost stays small. */
static inline size_t xr_size(uint64_t *s, unsigned int lo_bits,
			     unsigned int hi_bits)
{
	uint64_t r = xr_next(s);
	unsigned int e = lo_bits + (unsigned int)(r % (hi_bits - lo_bits));
	size_t base = (size_t)1 << e;

	return base + (size_t)((r >> 32) & (base - 1));
}

/* One timed workload run for one allocator: ns per operation. */
typedef double (*workload_fn)(struct allocator *a);

/* mt.c: the classic multi-threaded workloads, run with nthreads threads. */
extern int mt_threads;
double w_larson(struct allocator *a);
double w_xmalloc(struct allocator *a);
double w_cache_scratch(struct allocator *a);
double w_cache_thrash(struct allocator *a);
double w_mstress(struct allocator *a);
double w_malloc_thread(struct allocator *a);

/* usage.c: utilisation at the first failure for every allocator.
 * device: kheap over /dev/kheap; else over a region of pool bytes. */
int utilisation_all(int device, size_t pool, int seeds);

/* sysc.c: system calls of this process and the threads it creates from
 * now on.  sysc_open() returns 0 if the kernel counts them (a tracepoint
 * counter), -1 if not (the counts read 0). */
struct sysc {
	uint64_t futex, all;	/* futex(2) calls, all system calls */
	uint64_t vcsw;		/* voluntary context switches (getrusage) */
};
int sysc_open(void);
void sysc_read(struct sysc *s);
const char *sysc_source(void);

#endif
