// SPDX-License-Identifier: MIT
/*
 * usage.c - utilisation at the first failure, for all four allocators over
 * the same budget.
 *
 * Random actions (3 allocations to 1 free of a random live block), sizes
 * drawn from a range, until the first allocation that fails although an
 * allocator without any overhead or fragmentation would have served it
 * (live bytes + request <= budget); requests larger than what is left
 * even then fail for every allocator, are dropped and do not stop the run.
 * Utilisation = requested live bytes / budget at that failure.
 *
 * What "full" means:
 *   kheap    its pool (the host's region, or /dev/kheap's whole pool in a
 *            guest) has no room: kheap_malloc() returns NULL.
 *   others   the process's resident memory (statm) has grown by more than
 *            the budget since the run began.  Every page of every block is
 *            written, so each block is resident as kheap's pool memory
 *            is; what the allocator keeps resident after free() (dirty
 *            pages it has not returned) counts, as it would against a
 *            pool.  The allocator's own metadata counts too; kheap's
 *            lives outside the pool and does not.  The allocation that
 *            crosses the budget is the failure (it is freed again).
 * The others get their memory from the kernel page by page, anywhere in
 * physical memory, so they never fragment a physical range; kheap's pool
 * is one contiguous range.  Every run is a fresh process (fork), so no
 * run inherits another's retained memory.
 *
 * Beside the four, for the ranges that reach 1 MiB, a reference that
 * is no allocator: "bestfit", the same actions over one contiguous range
 * served by exact best fit (the smallest hole that holds the request,
 * lowest address among equals) in 16-byte units, with no metadata, no
 * size classes, no arenas and no caches.  Best fit is not optimal, so
 * this is not a bound; it is what placement alone costs when blocks may
 * neither move nor be pieced together from scattered pages: the
 * constraint kheap lives under, without kheap's own overheads.
 *
 * Output, one line per range and allocator:
 *   utilisation=<mean %> allocator=<name> sizes=<lo>-<hi>[/4096]
 *   seeds=<n> min=<worst %>
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../userlib/internal.h"
#include "kbench.h"

#define PAGE 4096
#define MAX_LIVE ((size_t)1 << 20)
#define MAX_STEPS 20000000L
/* Resident bytes one allocation can add at most besides its own pages:
 * the pages its ends share with neighbours and the allocator's metadata.
 * Between two readings of statm the run counts this much per allocation,
 * so that it reads statm only when the budget could have been crossed. */
#define SLACK (2 * PAGE + 64 * 1024)

struct range {
	size_t lo, hi;		/* bytes */
	int pages;		/* page multiples: lo/PAGE .. hi/PAGE pages */
};

static uint64_t ur;

static double unit(void)
{
	return (double)(xr_next(&ur) >> 11) / 9007199254740992.0;
}

static size_t draw(const struct range *r)
{
	double lo = (double)(r->pages ? r->lo / PAGE : r->lo);
	double hi = (double)(r->pages ? r->hi / PAGE : r->hi);
	size_t v = (size_t)exp(log(lo) + unit() * (log(hi + 1) - log(lo)));

	if (v < (size_t)lo)
		v = (size_t)lo;
	if (v > (size_t)hi)
		v = (size_t)hi;
	return r->pages ? v * PAGE : v;
}

static int statm_fd = -1;

static size_t resident(void)
{
	char buf[128];
	unsigned long size, res;
	ssize_t n = pread(statm_fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (sscanf(buf, "%lu %lu", &size, &res) != 2)
		return 0;
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* One run in this (child) process: utilisation in %, or -1. */
static double one_run(int ai, const struct range *r, size_t budget,
		      uint64_t seed)
{
	struct allocator *a = &A[ai];
	struct { void *p; size_t n; } *v;
	size_t nv = 0, live = 0, res0 = 0, bound = 0, headroom = budget;
	int kheap = ai == 0;

	v = mmap(NULL, MAX_LIVE * sizeof(*v), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (v == MAP_FAILED)
		return -1;
	statm_fd = open("/proc/self/statm", O_RDONLY);
	if (!kheap && statm_fd < 0)
		return -1;
	ur = seed;
	if (!kheap)
		res0 = resident();
	for (long step = 0; step < MAX_STEPS && nv < MAX_LIVE; step++) {
		size_t n;
		char *p;
		int full;

		if (nv && xr_next(&ur) % 4 == 0) {
			size_t i = xr_next(&ur) % nv;

			a->free(v[i].p);
			live -= v[i].n;
			v[i] = v[--nv];
			continue;
		}
		n = draw(r);
		p = a->malloc(n);
		full = !p;
		if (p && !kheap) {
			for (size_t o = 0; o < n; o += PAGE)
				p[o] = 1;
			p[n - 1] = 1;
			bound += n + SLACK;
			if (bound >= headroom) {
				size_t grown = resident() - res0;

				bound = 0;
				headroom = grown < budget ? budget - grown : 0;
				full = grown > budget;
			}
			if (full) {
				a->free(p);
				p = NULL;
			}
		}
		if (full) {
			if (live + n <= budget)
				break;	/* the first real failure */
			continue;	/* would not fit anywhere */
		}
		v[nv].p = p;
		v[nv++].n = n;
		live += n;
	}
	return 100.0 * (double)live / (double)budget;
}

/* The reference's holes, in 16-byte units, sorted by address. */
struct hole {
	size_t at, len;
};

static struct hole *holes;
static size_t nholes;

/* Best fit: the smallest hole that holds n units; its start, or -1. */
static long ref_alloc(size_t n)
{
	size_t best = SIZE_MAX, bi = 0, at;

	for (size_t i = 0; i < nholes; i++)
		if (holes[i].len >= n && holes[i].len < best) {
			best = holes[i].len;
			bi = i;
		}
	if (best == SIZE_MAX)
		return -1;
	at = holes[bi].at;
	holes[bi].at += n;
	holes[bi].len -= n;
	if (!holes[bi].len) {
		memmove(&holes[bi], &holes[bi + 1],
			(nholes - bi - 1) * sizeof(*holes));
		nholes--;
	}
	return (long)at;
}

/* Give n units at at back, merged with the holes on either side. */
static void ref_free(size_t at, size_t n)
{
	size_t lo = 0, hi = nholes, i;
	int prev, next;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (holes[mid].at < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	i = lo;
	prev = i > 0 && holes[i - 1].at + holes[i - 1].len == at;
	next = i < nholes && at + n == holes[i].at;
	if (prev && next) {
		holes[i - 1].len += n + holes[i].len;
		memmove(&holes[i], &holes[i + 1],
			(nholes - i - 1) * sizeof(*holes));
		nholes--;
	} else if (prev) {
		holes[i - 1].len += n;
	} else if (next) {
		holes[i].at = at;
		holes[i].len += n;
	} else {
		memmove(&holes[i + 1], &holes[i], (nholes - i) * sizeof(*holes));
		holes[i].at = at;
		holes[i].len = n;
		nholes++;
	}
}

/* One run of the reference, with one_run()'s actions for the same seed
 * (the same draws in the same order); utilisation in %, or -1. */
static double ref_run(const struct range *r, size_t budget, uint64_t seed)
{
	struct { size_t at, units, n; } *v;
	size_t nv = 0, live = 0;

	v = mmap(NULL, MAX_LIVE * sizeof(*v), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return -1;
	holes = mmap(NULL, (MAX_LIVE + 1) * sizeof(*holes),
		     PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (holes == MAP_FAILED) {
		munmap(v, MAX_LIVE * sizeof(*v));
		return -1;
	}
	holes[0].at = 0;
	holes[0].len = budget / 16;
	nholes = 1;
	ur = seed;
	for (long step = 0; step < MAX_STEPS && nv < MAX_LIVE; step++) {
		size_t n, units;
		long at;

		if (nv && xr_next(&ur) % 4 == 0) {
			size_t i = xr_next(&ur) % nv;

			ref_free(v[i].at, v[i].units);
			live -= v[i].n;
			v[i] = v[--nv];
			continue;
		}
		n = draw(r);
		units = (n + 15) / 16;
		at = ref_alloc(units);
		if (at < 0) {
			if (live + n <= budget)
				break;	/* the first real failure */
			continue;
		}
		v[nv].at = (size_t)at;
		v[nv].units = units;
		v[nv++].n = n;
		live += n;
	}
	munmap(v, MAX_LIVE * sizeof(*v));
	munmap(holes, (MAX_LIVE + 1) * sizeof(*holes));
	return 100.0 * (double)live / (double)budget;
}

/* Run one measurement in a fresh child; its result through a pipe. */
static double in_child(int ai, const struct range *r, int device,
		       size_t *budget, uint64_t seed)
{
	int fd[2], st;
	double res[2] = { -1, 0 };
	pid_t pid;

	if (pipe(fd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct kheap_stats ks;
		double out[2] = { -1, (double)*budget };

		close(fd[0]);
		/* kheap's own pool: the region (host) or /dev/kheap's */
		if (ai == 0 &&
		    (kheap__use_provider(device ? &kheap_device_provider :
					 kheap_region_provider(*budget, 0)) ||
		     kheap_stats(&ks))) {
			if (write(fd[1], out, sizeof(out)) < 0)
				_exit(1);
			_exit(1);
		}
		if (ai == 0)
			out[1] = (double)ks.pool_size;
		out[0] = one_run(ai, r, (size_t)out[1], seed);
		if (write(fd[1], out, sizeof(out)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], res, sizeof(res)) != sizeof(res))
		res[0] = -1;
	close(fd[0]);
	waitpid(pid, &st, 0);
	if (res[1] > 0)
		*budget = (size_t)res[1];
	return res[0];
}

int utilisation_all(int device, size_t pool, int seeds)
{
	struct range rs[] = {
		{ 16, 8192, 0 },
		{ 16, 256 << 10, 0 },
		{ PAGE, MIB, 1 },		/* 1-256 pages */
		{ PAGE, 16 * MIB, 1 },	/* 1-4096 pages */
		{ 64 << 10, 0, 0 },		/* up to 1/16 of the pool */
		{ MIB, 0, 0 },			/* up to 1/4 of the pool */
		{ 16, 0, 0 },			/* 16 B to 1/4 of the pool */
	};
	size_t budget = pool;
	struct kheap_stats ks;
	int rc = 0;

	/* the budget every allocator gets: kheap's pool size */
	if (device) {
		if (kheap_stats(&ks))
			return 1;
		budget = (size_t)ks.pool_size;
	}
	rs[4].hi = budget / 16;
	rs[5].hi = budget / 4;
	rs[6].hi = budget / 4;
	for (unsigned int k = 0; k < sizeof(rs) / sizeof(*rs); k++) {
		/* The four, then (ai == NALLOC) the best-fit reference where
		 * blocks come near contiguity's limits. */
		for (int ai = 0; ai <= NALLOC; ai++) {
			int ref = ai == NALLOC, ok = 1;
			const char *name = ref ? "bestfit" : A[ai].name;
			double sum = 0, worst = 100;

			if (ref ? rs[k].hi < MIB : !A[ai].ok)
				continue;
			for (int s = 0; s < seeds; s++) {
				uint64_t seed = 1234567 + (uint64_t)s;
				double u = ref ? ref_run(&rs[k], budget, seed) :
					   in_child(ai, &rs[k], device, &budget, seed);

				if (u < 0) {
					ok = 0;
					break;
				}
				sum += u;
				if (u < worst)
					worst = u;
			}
			if (!ok) {
				printf("utilisation=n/a allocator=%s sizes=%zu-%zu%s\n",
				       name, rs[k].lo, rs[k].hi,
				       rs[k].pages ? "/4096" : "");
				rc = 1;
				continue;
			}
			printf("utilisation=%.2f allocator=%s sizes=%zu-%zu%s "
			       "seeds=%d min=%.2f\n", sum / seeds, name,
			       rs[k].lo, rs[k].hi, rs[k].pages ? "/4096" : "",
			       seeds, worst);
			fflush(stdout);
		}
	}
	return rc;
}
