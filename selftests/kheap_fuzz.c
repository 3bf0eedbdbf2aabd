// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_fuzz: bounded random sequences over the /dev/kheap ABI.
 *
 * Several processes, each with several threads, run random operations
 * (open, close, ALLOC, FREE, QUERY, SYNC, INFO, the device commands with
 * bad arguments, mmap, munmap, mremap, mprotect, madvise, fork) with
 * arguments biased to edge values.  Every thread keeps a model of what it
 * owns and maps, predicts the result of each call from it, and checks:
 *
 * - the result: the exact errno the uapi header documents for the case,
 *   or (for ALLOC and the memory calls) ENOMEM where the pool or the
 *   address space may legitimately run out;
 * - its own files' counters (INFO file_chunks and file_bytes) after every
 *   operation on a file, and the pool's counters for sanity;
 * - contents: a new chunk reads zero; each chunk is filled with a pattern
 *   tied to the process id and the token, and verified before it is
 *   freed, after MADV_DONTNEED and whenever it is read;
 * - QUERY against the model, and /proc/self/pagemap against QUERY when
 *   frame numbers are visible (root);
 * - at every epoch (all workers stopped): INFO free_bytes and
 *   chunks_in_use equal exactly what the workers hold (chunks owned by
 *   open files plus freed chunks still mapped); every fourth epoch the
 *   workers drop everything first, so the pool must be entirely free;
 *   after all processes exited, the pool is entirely free.
 *
 * fork(): a child only reads the mappings it inherited, without judging
 * what it reads (fork semantics of kheap mappings are not settled), and
 * runs a few checked operations on a /dev/kheap file it opens itself.
 *
 * The seed is printed first; --seed replays the same operation sequence
 * for every thread (the interleaving of threads and processes is up to
 * the scheduler).  Usage:
 *   kheap_fuzz [--seed S] [--duration SECONDS] [--procs N] [--threads N]
 *	      [--epoch SECONDS]
 * Needs the module loaded; root for frame numbers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP	4
#endif

#define MAX_PROCS	16
#define MAX_THREADS	16
#define MAX_WORKERS	(MAX_PROCS * MAX_THREADS)
#define MAX_FILES	4	/* open kheap files per thread */
#define MAX_CHUNKS	48	/* chunks owned or mapped, per thread */
#define MAX_MAPS	48	/* mappings, per thread */
#define MAX_KIDS	4	/* fork children alive per thread */
#define LOG_RING	16	/* last operations kept for a failure report */
#define SAMPLE_ALL	64	/* chunks up to this many pages are fully checked */

static int kmsg_fd = -1;

/* Options, set by main() before the harness runs. */
static uint64_t opt_seed;
static unsigned int opt_duration = 60;
static unsigned int opt_procs = 2;
static unsigned int opt_threads = 2;
static unsigned int opt_epoch = 3;

/* Shared by every process (MAP_SHARED | MAP_ANONYMOUS). */
struct fuzz_shared {
	uint64_t pool;
	uint64_t pg;
	uint64_t pool_phys;
	int abort;			/* stop now: a failure or a dead worker */
	unsigned int failures;
	unsigned int arrived;		/* barrier arrivals, cumulative */
	unsigned int released;		/* epochs the leader checked */
	struct {
		uint64_t held_bytes;
		uint64_t held_chunks;
		uint64_t ops;
		uint64_t enomem;
		uint64_t forks;
		uint64_t pagemap_checks;
		uint64_t pagemap_hidden;
	} w[MAX_WORKERS];
};

static struct fuzz_shared *G;

struct kfile {
	int fd;			/* -1: slot free */
	bool rdonly;
};

struct chunk {
	bool used;
	int file;		/* owning file slot, while owned */
	bool owned;
	bool filled;		/* the pattern was written */
	uint64_t token;
	uint64_t phys;
	uint64_t size;
	uint64_t seed;
	int nmaps;
	bool shared;		/* KHEAP_ALLOC_SHARED: children write it too */
	uint64_t span;		/* EXTEND goes up to here: the allocated
				 * size, the pool's for a growable chunk */
};

struct map {
	bool used;
	char *addr;
	uint64_t len;
	int chunk;
	uint64_t off;		/* offset of addr within the chunk */
	int file;		/* file slot it was mapped through; -1 once closed */
	int prot;
	bool maywrite;		/* the file was opened for writing */
	bool dontfork;
};

struct worker {
	int id;			/* index in G->w */
	int proc, thread;
	uint64_t rng;
	uint64_t ops;
	uint64_t last_token;
	struct kfile files[MAX_FILES];
	struct chunk chunks[MAX_CHUNKS];
	struct map maps[MAX_MAPS];
	pid_t kids[MAX_KIDS];
	char *guard;		/* one RW page, then one PROT_NONE page */
	char *rdonly;		/* one PROT_READ page of zeroes */
	char ring[LOG_RING][160];
	unsigned int nring;
	bool failed;
};

/* ---- output ---------------------------------------------------------- */

/* One write() per line, so lines of different processes do not mix. */
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDOUT_FILENO, buf, n) < 0)
		return;
}

static void note(struct worker *w, const char *fmt, ...)
{
	char *slot = w->ring[w->nring++ % LOG_RING];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(slot, sizeof(w->ring[0]), fmt, ap);
	va_end(ap);
}

static void fail(struct worker *w, const char *fmt, ...)
{
	char buf[400];
	unsigned int i, first;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("# FAIL p%d t%d pid %d op %llu: %s", w->proc, w->thread, getpid(),
	    (unsigned long long)w->ops, buf);
	if (!w->failed) {
		first = w->nring > LOG_RING ? w->nring - LOG_RING : 0;
		for (i = first; i < w->nring; i++)
			say("#   p%d t%d recent: %s", w->proc, w->thread,
			    w->ring[i % LOG_RING]);
	}
	w->failed = true;
	__atomic_add_fetch(&G->failures, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&G->abort, 1, __ATOMIC_SEQ_CST);
}

static bool aborted(void)
{
	return __atomic_load_n(&G->abort, __ATOMIC_SEQ_CST);
}

/* ---- randomness ------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(struct worker *w)
{
	w->rng += 0x9e3779b97f4a7c15ULL;
	return mix64(w->rng);
}

static uint64_t below(struct worker *w, uint64_t n)
{
	return n ? rnd(w) % n : 0;
}

static bool chance(struct worker *w, unsigned int one_in)
{
	return below(w, one_in) == 0;
}

static uint64_t round_up_pg(uint64_t v)
{
	return (v + G->pg - 1) / G->pg * G->pg;
}

/* A size for ALLOC, mostly small, often on an edge. */
static uint64_t pick_size(struct worker *w)
{
	uint64_t pg = G->pg;

	switch (below(w, 20)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return pg - 1;
	case 3:
		return pg + 1;
	case 4:
		return G->pool;
	case 5:
		return G->pool + 1 + below(w, 2);
	case 6:
		return UINT64_MAX - below(w, 2 * pg);
	case 7:
		return (1ULL << (32 + below(w, 31)));
	case 8:
		return G->pool / (4 + below(w, 12)) + below(w, 2);
	case 9:
		return (1 + below(w, 64)) * pg + below(w, 3) - 1;
	default:
		return (1 + below(w, 8)) * pg;
	}
}

static uint64_t pick_align(struct worker *w)
{
	switch (below(w, 12)) {
	case 0:
		return 1;
	case 1:
		return G->pg;
	case 2:
		return G->pg << below(w, 10);
	case 3:
		return G->pool;
	case 4:
		return G->pool * 2;
	case 5:
		return 3 * G->pg;
	case 6:
		return 1ULL << 63;
	case 7:
		return G->pg + 1;
	default:
		return 0;
	}
}

/* Read one byte, so that the page is faulted in. */
static void touch(const char *p)
{
	(void)__atomic_load_n(p, __ATOMIC_RELAXED);
}

/* ---- model ----------------------------------------------------------- */

static int free_map_slots(struct worker *w)
{
	int i, n = 0;

	for (i = 0; i < MAX_MAPS; i++)
		n += !w->maps[i].used;
	return n;
}

static int new_map(struct worker *w)
{
	int i;

	for (i = 0; i < MAX_MAPS; i++)
		if (!w->maps[i].used)
			return i;
	return -1;
}

static int new_chunk(struct worker *w)
{
	int i;

	for (i = 0; i < MAX_CHUNKS; i++)
		if (!w->chunks[i].used)
			return i;
	return -1;
}

/* Forget a chunk that is neither owned nor mapped any more. */
static void chunk_settle(struct worker *w, int ci)
{
	struct chunk *c = &w->chunks[ci];

	if (c->used && !c->owned && c->nmaps == 0)
		c->used = false;
}

static void map_drop(struct worker *w, int mi)
{
	struct map *m = &w->maps[mi];

	m->used = false;
	w->chunks[m->chunk].nmaps--;
	chunk_settle(w, m->chunk);
}

/* Split mapping @mi at byte @at (page aligned, inside): the tail is new. */
static int map_split(struct worker *w, int mi, uint64_t at)
{
	struct map *m = &w->maps[mi];
	int ni = new_map(w);

	if (ni < 0)
		return -1;
	w->maps[ni] = *m;
	w->maps[ni].addr = m->addr + at;
	w->maps[ni].len = m->len - at;
	w->maps[ni].off = m->off + at;
	m->len = at;
	w->chunks[m->chunk].nmaps++;
	return ni;
}

/*
 * What munmap(@addr, @len) does to our mappings.  The callers guarantee
 * two free slots (a middle piece needs one).
 */
static void model_unmap(struct worker *w, char *addr, uint64_t len)
{
	char *end = addr + len;
	int i;

again:
	for (i = 0; i < MAX_MAPS; i++) {
		struct map *m = &w->maps[i];

		if (!m->used || m->addr + m->len <= addr || m->addr >= end)
			continue;
		if (m->addr < addr) {
			/* Keep the head here; the rest goes to a new slot. */
			map_split(w, i, addr - m->addr);
			goto again;
		}
		if (m->addr + m->len > end)
			map_split(w, i, end - m->addr);
		map_drop(w, i);
	}
}

/* Isolate [@addr, @addr + @len) of mapping @mi into its own slot. */
static int map_isolate(struct worker *w, int mi, char *addr, uint64_t len)
{
	struct map *m = &w->maps[mi];
	int ni = mi;

	if (free_map_slots(w) < 2)
		return -1;
	if (addr > m->addr)
		ni = map_split(w, mi, addr - m->addr);
	if (w->maps[ni].len > len)
		map_split(w, ni, len);
	return ni;
}

static void file_owned(struct worker *w, int fi, uint64_t *chunks,
		       uint64_t *bytes)
{
	int i;

	*chunks = 0;
	*bytes = 0;
	for (i = 0; i < MAX_CHUNKS; i++) {
		struct chunk *c = &w->chunks[i];

		if (c->used && c->owned && c->file == fi) {
			(*chunks)++;
			*bytes += c->size;
		}
	}
}

static void held(struct worker *w, uint64_t *chunks, uint64_t *bytes)
{
	int i;

	*chunks = 0;
	*bytes = 0;
	for (i = 0; i < MAX_CHUNKS; i++) {
		if (w->chunks[i].used) {
			(*chunks)++;
			*bytes += w->chunks[i].size;
		}
	}
}

/* ---- checks ---------------------------------------------------------- */

/* The file's counters match the model; the pool's are plausible. */
static void check_file(struct worker *w, int fi, const char *after)
{
	uint64_t chunks, bytes, hc, hb;
	struct kheap_info info;
	int ret;

	ret = kheap_info(w->files[fi].fd, &info);
	if (ret) {
		fail(w, "INFO after %s: %s", after, kheap_errname(ret));
		return;
	}
	file_owned(w, fi, &chunks, &bytes);
	held(w, &hc, &hb);
	if (info.file_chunks != chunks || info.file_bytes != bytes)
		fail(w, "after %s: file has %llu chunks / %llu bytes, model %llu / %llu",
		     after, (unsigned long long)info.file_chunks,
		     (unsigned long long)info.file_bytes,
		     (unsigned long long)chunks, (unsigned long long)bytes);
	if (info.pool_size != G->pool || info.free_bytes > G->pool ||
	    info.largest_free > info.free_bytes ||
	    info.free_bytes + hb > G->pool || info.chunks_in_use < hc ||
	    info.free_bytes % G->pg)
		fail(w, "after %s: pool size %llu free %llu largest %llu chunks %llu; "
		     "this thread holds %llu / %llu bytes",
		     after, (unsigned long long)info.pool_size,
		     (unsigned long long)info.free_bytes,
		     (unsigned long long)info.largest_free,
		     (unsigned long long)info.chunks_in_use,
		     (unsigned long long)hc, (unsigned long long)hb);
}

static void check_ret(struct worker *w, const char *what, int got, int want)
{
	if (got != want)
		fail(w, "%s: got %s, want %s", what, kheap_errname(got),
		     kheap_errname(want));
}

/* Which pages of an @n page range are filled and checked. */
static bool sampled(uint64_t n, uint64_t i)
{
	if (n <= SAMPLE_ALL || i < 8 || i >= n - 8)
		return true;
	return i % (n / 32) == 0;
}

/*
 * Check pages [@first, @first + @n) of chunk @c mapped at @p: the pattern
 * if filled, else zero.  @full: also the pages that are not sampled.
 */
static void check_pages(struct worker *w, struct chunk *c, const char *p,
			uint64_t first, uint64_t n, const char *why)
{
	uint64_t pg = G->pg, npages = c->size / pg, i;
	ssize_t bad;

	for (i = 0; i < n; i++) {
		uint64_t idx = first + i;
		const char *page = p + i * pg;

		if (!sampled(npages, idx))
			continue;
		if (c->filled)
			bad = kheap_check(page, pg, c->seed + idx);
		else
			bad = kheap_check_zero(page, pg);
		if (bad >= 0) {
			fail(w, "%s: token %#llx page %llu byte %zd: %#02x, want %s",
			     why, (unsigned long long)c->token,
			     (unsigned long long)idx, bad,
			     (unsigned char)page[bad],
			     c->filled ? "the owner's pattern" : "zero");
			return;
		}
	}
}

static void fill_pages(struct chunk *c, char *p, uint64_t first, uint64_t n)
{
	uint64_t pg = G->pg, npages = c->size / pg, i;

	for (i = 0; i < n; i++)
		if (sampled(npages, first + i))
			kheap_fill(p + i * pg, pg, c->seed + first + i);
}

/*
 * Map the whole chunk through its owner for a moment: check it (zero
 * when new), fill it if it was new and the file can write.
 */
static void chunk_through_owner(struct worker *w, int ci, bool fill)
{
	struct chunk *c = &w->chunks[ci];
	struct kfile *f = &w->files[c->file];
	int prot = f->rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	char *p;

	p = mmap(NULL, c->size, prot, MAP_SHARED, f->fd, c->token);
	if (p == MAP_FAILED) {
		if (errno == ENOMEM) {
			G->w[w->id].enomem++;
			return;
		}
		fail(w, "mmap of owned chunk %#llx (%llu bytes): %s",
		     (unsigned long long)c->token,
		     (unsigned long long)c->size, strerror(errno));
		return;
	}
	check_pages(w, c, p, 0, c->size / G->pg,
		    c->filled ? "before FREE" : "new chunk");
	if (fill && !c->filled && !f->rdonly) {
		fill_pages(c, p, 0, c->size / G->pg);
		c->filled = true;
	}
	if (munmap(p, c->size))
		fail(w, "munmap of a whole chunk: %s", strerror(errno));
}

/* A QUERY answer for byte @delta of mapping @mi is exact. */
static void check_answer(struct worker *w, int mi, uint64_t delta,
			 const struct kheap_query *q)
{
	struct map *m = &w->maps[mi];
	struct chunk *c = &w->chunks[m->chunk];
	uint64_t off = m->off + delta;

	if (q->token != c->token || q->offset != off ||
	    q->chunk_size != c->size ||
	    q->phys != (c->phys ? c->phys + off : 0))
		fail(w, "QUERY token %#llx off %llu size %llu phys %#llx; "
		     "want %#llx %llu %llu %#llx",
		     (unsigned long long)q->token,
		     (unsigned long long)q->offset,
		     (unsigned long long)q->chunk_size,
		     (unsigned long long)q->phys, (unsigned long long)c->token,
		     (unsigned long long)off, (unsigned long long)c->size,
		     (unsigned long long)(c->phys ? c->phys + off : 0));
}

/* QUERY byte @delta of mapping @mi through its file: exact answer. */
static void check_query(struct worker *w, int mi, uint64_t delta)
{
	struct map *m = &w->maps[mi];
	struct kheap_query q;
	int ret;

	ret = kheap_query(w->files[m->file].fd, m->addr + delta, &q);
	if (ret) {
		fail(w, "QUERY %p (token %#llx + %llu): %s", m->addr + delta,
		     (unsigned long long)w->chunks[m->chunk].token,
		     (unsigned long long)(m->off + delta), kheap_errname(ret));
		return;
	}
	check_answer(w, mi, delta, &q);
}

/* Frame numbers of a readable mapping: consecutive, at the chunk's phys. */
static void check_pagemap(struct worker *w, int mi)
{
	struct map *m = &w->maps[mi];
	struct chunk *c = &w->chunks[m->chunk];
	uint64_t pg = G->pg, pfns[8], n = m->len / pg, i;
	int ret;

	if (!(m->prot & PROT_READ) || !c->phys)
		return;
	if (n > 8)
		n = 8;
	/*
	 * A fork() by another thread of this process drops the mapping's
	 * page tables (ABI 3) at any moment, even between the touch and the
	 * pagemap read: touch again then, a few times.
	 */
	for (int tries = 0; tries < 5; tries++) {
		for (i = 0; i < n; i++)
			touch(m->addr + i * pg);
		ret = kheap_pagemap_pfns(m->addr, n, pfns);
		if (ret != -ENOENT || opt_threads == 1)
			break;
	}
	if (ret == -EPERM) {
		G->w[w->id].pagemap_hidden++;
		return;
	}
	if (ret) {
		fail(w, "pagemap of %p: %s", m->addr, kheap_errname(ret));
		return;
	}
	for (i = 0; i < n; i++) {
		if (pfns[i] * pg != c->phys + m->off + i * pg) {
			fail(w, "pagemap: page %llu of %#llx: frame %#llx, phys %#llx",
			     (unsigned long long)(m->off / pg + i),
			     (unsigned long long)c->token,
			     (unsigned long long)pfns[i],
			     (unsigned long long)(c->phys + m->off + i * pg));
			return;
		}
	}
	G->w[w->id].pagemap_checks++;
}

/* ---- operations ------------------------------------------------------ */

static int pick_file(struct worker *w)
{
	int i, start = below(w, MAX_FILES);

	for (i = 0; i < MAX_FILES; i++) {
		int fi = (start + i) % MAX_FILES;

		if (w->files[fi].fd >= 0)
			return fi;
	}
	return -1;
}

static int pick_owned(struct worker *w, int fi)
{
	int i, start = below(w, MAX_CHUNKS);

	for (i = 0; i < MAX_CHUNKS; i++) {
		int ci = (start + i) % MAX_CHUNKS;
		struct chunk *c = &w->chunks[ci];

		if (c->used && c->owned && (fi < 0 || c->file == fi))
			return ci;
	}
	return -1;
}

static int pick_map(struct worker *w)
{
	int i, start = below(w, MAX_MAPS);

	for (i = 0; i < MAX_MAPS; i++) {
		int mi = (start + i) % MAX_MAPS;

		if (w->maps[mi].used)
			return mi;
	}
	return -1;
}

static void op_open(struct worker *w)
{
	int fi, fd;
	bool rdonly = chance(w, 8);

	for (fi = 0; fi < MAX_FILES; fi++)
		if (w->files[fi].fd < 0)
			break;
	if (fi == MAX_FILES)
		return;
	note(w, "open%s", rdonly ? " O_RDONLY" : "");
	fd = open(KHEAP_DEV, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		fail(w, "open: %s", strerror(errno));
		return;
	}
	w->files[fi].fd = fd;
	w->files[fi].rdonly = rdonly;
	check_file(w, fi, "open");
}

/* Verify what the file owns, then close it. */
static void file_close(struct worker *w, int fi)
{
	int i;

	for (i = 0; i < MAX_CHUNKS; i++) {
		struct chunk *c = &w->chunks[i];

		if (c->used && c->owned && c->file == fi && chance(w, 2))
			chunk_through_owner(w, i, false);
	}
	note(w, "close fd %d", w->files[fi].fd);
	if (close(w->files[fi].fd))
		fail(w, "close: %s", strerror(errno));
	w->files[fi].fd = -1;
	for (i = 0; i < MAX_MAPS; i++)
		if (w->maps[i].used && w->maps[i].file == fi)
			w->maps[i].file = -1;
	for (i = 0; i < MAX_CHUNKS; i++) {
		struct chunk *c = &w->chunks[i];

		if (c->used && c->owned && c->file == fi) {
			c->owned = false;
			chunk_settle(w, i);
		}
	}
}

static void op_close(struct worker *w)
{
	int fi = pick_file(w);

	if (fi >= 0)
		file_close(w, fi);
}

static void op_alloc(struct worker *w)
{
	int fi = pick_file(w), ci, ret, want = 0;
	struct kheap_alloc a;
	uint64_t size = pick_size(w), align = pick_align(w), hc, hb;
	bool maybe_enomem = true;

	if (fi < 0)
		return;
	held(w, &hc, &hb);
	/* Leave room for the others: big requests only while holding little. */
	if (hb > G->pool / 4 && size > 16 * G->pg && size < G->pool)
		size = G->pg;
	ci = new_chunk(w);
	if (ci < 0)
		return;
	memset(&a, 0, sizeof(a));
	a.size = size;
	a.align = align;
	/* Growable chunks are what op_resize can extend. */
	if (chance(w, 3))
		a.flags = KHEAP_ALLOC_GROWABLE;
	switch (below(w, 24)) {
	case 0:
		a.flags = 1ULL << below(w, 64);
		break;
	case 1:
		a.reserved[below(w, 2)] = 1 + below(w, 3);
		break;
	case 2:
		a.token = G->pg;
		break;
	case 3:
		a.phys = 1;
		break;
	case 4:
		a.size_out = size;
		break;
	}
	if ((a.flags & ~KHEAP_ALLOC_FLAGS_VALID) || a.reserved[0] ||
	    a.reserved[1] || a.token || a.phys ||
	    a.size_out || !size || size > UINT64_MAX - (G->pg - 1) ||
	    (align & (align - 1)) || align > G->pool) {
		want = -EINVAL;
		maybe_enomem = false;
	} else if (round_up_pg(size) > G->pool) {
		want = -ENOMEM;
		maybe_enomem = false;
	}
	note(w, "ALLOC fd %d size %#llx align %#llx", w->files[fi].fd,
	     (unsigned long long)size, (unsigned long long)align);
	ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_ALLOC, &a);
	if (ret == -ENOMEM && maybe_enomem) {
		G->w[w->id].enomem++;
		check_file(w, fi, "ALLOC ENOMEM");
		return;
	}
	check_ret(w, "ALLOC", ret, want);
	if (ret)
		goto out;
	if (a.size_out != round_up_pg(size) || a.token % G->pg ||
	    a.token <= w->last_token ||
	    (G->pool_phys && (a.phys < G->pool_phys ||
			      a.phys + a.size_out > G->pool_phys + G->pool ||
			      a.phys % (align > G->pg ? align : G->pg))) ||
	    (!G->pool_phys && a.phys))
		fail(w, "ALLOC %#llx align %#llx: token %#llx (last %#llx) phys %#llx size %#llx",
		     (unsigned long long)size, (unsigned long long)align,
		     (unsigned long long)a.token,
		     (unsigned long long)w->last_token,
		     (unsigned long long)a.phys,
		     (unsigned long long)a.size_out);
	w->last_token = a.token;
	w->chunks[ci] = (struct chunk){
		.used = true, .file = fi, .owned = true, .token = a.token,
		.phys = a.phys, .size = a.size_out,
		.seed = kheap_pattern_word(getpid(), a.token / G->pg),
		.shared = a.flags & KHEAP_ALLOC_SHARED,
		.span = a.flags & KHEAP_ALLOC_GROWABLE ? G->pool : a.size_out,
	};
	note(w, "  -> token %#llx phys %#llx", (unsigned long long)a.token,
	     (unsigned long long)a.phys);
	/* Most chunks are checked and filled at once; the rest on first use. */
	if (!chance(w, 4))
		chunk_through_owner(w, ci, true);
out:
	check_file(w, fi, "ALLOC");
}

static void op_free(struct worker *w)
{
	int fi = pick_file(w), ci, ret, want = 0;
	struct kheap_free fr;
	uint64_t token;

	if (fi < 0)
		return;
	ci = pick_owned(w, fi);
	memset(&fr, 0, sizeof(fr));
	if (ci < 0 || chance(w, 5)) {
		/* Tokens this file does not own. */
		int other = pick_owned(w, -1);

		switch (below(w, 5)) {
		case 0:
			token = 0;
			break;
		case 1:
			token = UINT64_MAX - below(w, 2 * G->pg);
			break;
		case 2:
			token = w->last_token + 1024 * G->pg;
			break;
		default:
			token = other >= 0 ? w->chunks[other].token +
					     below(w, 2) * G->pg : 1;
			break;
		}
		/* Never one this file owns: make it unaligned then. */
		for (ci = 0; ci < MAX_CHUNKS; ci++)
			if (w->chunks[ci].used && w->chunks[ci].owned &&
			    w->chunks[ci].file == fi &&
			    w->chunks[ci].token == token)
				token++;
		fr.token = token;
		note(w, "FREE fd %d foreign token %#llx", w->files[fi].fd,
		     (unsigned long long)token);
		ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_FREE, &fr);
		check_ret(w, "FREE of a token the file does not own", ret,
			  -EINVAL);
		check_file(w, fi, "FREE foreign");
		return;
	}
	fr.token = w->chunks[ci].token;
	if (chance(w, 6))
		fr.flags = KHEAP_FREE_DEVICES;
	if (chance(w, 12)) {
		fr.flags |= 1ULL << (1 + below(w, 63));
		want = -EINVAL;
	} else if (chance(w, 12)) {
		fr.reserved[below(w, 2)] = 1;
		want = -EINVAL;
	}
	/* Still the owner's pattern, or zero if never written. */
	if (!want)
		chunk_through_owner(w, ci, false);
	note(w, "FREE fd %d token %#llx flags %#llx", w->files[fi].fd,
	     (unsigned long long)fr.token, (unsigned long long)fr.flags);
	ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_FREE, &fr);
	check_ret(w, "FREE", ret, want);
	if (!ret) {
		w->chunks[ci].owned = false;
		chunk_settle(w, ci);
		/* Freed twice: refused, nothing changes. */
		if (chance(w, 4)) {
			fr.flags = 0;
			ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_FREE, &fr);
			check_ret(w, "second FREE", ret, -EINVAL);
		}
	}
	check_file(w, fi, "FREE");
}

static void op_sync(struct worker *w)
{
	int fi = pick_file(w), ci, ret, want = 0;
	struct kheap_sync s;
	uint64_t size, end;

	if (fi < 0)
		return;
	ci = pick_owned(w, fi);
	memset(&s, 0, sizeof(s));
	s.token = ci >= 0 ? w->chunks[ci].token : w->last_token + G->pg;
	size = ci >= 0 ? w->chunks[ci].size : 0;
	switch (below(w, 6)) {
	case 0:
		s.offset = 0;
		s.length = size;
		break;
	case 1:
		s.offset = below(w, size + 2);
		s.length = below(w, size + 2);
		break;
	case 2:
		s.offset = UINT64_MAX - below(w, 3);
		s.length = 2 + below(w, 3);
		break;
	case 3:
		s.offset = size;
		s.length = 1;
		break;
	default:
		s.offset = below(w, size ? size : 1);
		s.length = 1 + below(w, size - s.offset ? size - s.offset : 1);
		break;
	}
	s.flags = below(w, 8);
	if (chance(w, 10))
		s.flags |= 1ULL << (3 + below(w, 61));
	if (chance(w, 10))
		s.reserved[below(w, 2)] = 1;
	if (ci < 0 || (s.flags & ~KHEAP_SYNC_FLAGS_VALID) ||
	    !(s.flags & KHEAP_SYNC_RW) || s.reserved[0] || s.reserved[1] ||
	    !s.length || __builtin_add_overflow(s.offset, s.length, &end) ||
	    end > size)
		want = -EINVAL;
	note(w, "SYNC token %#llx off %#llx len %#llx flags %#llx",
	     (unsigned long long)s.token, (unsigned long long)s.offset,
	     (unsigned long long)s.length, (unsigned long long)s.flags);
	ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_SYNC, &s);
	check_ret(w, "SYNC", ret, want);
	check_file(w, fi, "SYNC");
}

static void op_query(struct worker *w)
{
	int mi = pick_map(w), fi, ret;
	struct kheap_query q;
	char local[8];
	char *addr;

	if (mi >= 0 && w->maps[mi].file >= 0 && !chance(w, 4)) {
		struct map *m = &w->maps[mi];
		uint64_t delta = below(w, m->len);

		note(w, "QUERY %p", m->addr + delta);
		check_query(w, mi, delta);
		return;
	}
	fi = pick_file(w);
	if (fi < 0)
		return;
	/* Addresses that are no kheap mapping of this file. */
	switch (below(w, 6)) {
	case 0:
		addr = NULL;
		break;
	case 1:
		addr = local;
		break;
	case 2:
		addr = (char *)0xffffffff81000000UL;
		break;
	case 3:
		addr = w->guard + G->pg;	/* PROT_NONE anonymous */
		break;
	default:
		/* A mapping of another file, or of a closed one. */
		if (mi < 0 || w->maps[mi].file == fi)
			return;
		addr = w->maps[mi].addr + below(w, w->maps[mi].len);
		break;
	}
	note(w, "QUERY fd %d foreign %p", w->files[fi].fd, addr);
	ret = kheap_query(w->files[fi].fd, addr, &q);
	check_ret(w, "QUERY of an address the file did not map", ret,
		  -EINVAL);
}

/* One ioctl with the argument struct at an edge, or a bad command. */
static void op_bad_ioctl(struct worker *w)
{
	static const struct {
		unsigned long cmd;
		size_t ver0;
		bool writes;
	} cmds[] = {
		{ KHEAP_IOC_INFO, KHEAP_INFO_SIZE_VER0, true },
		{ KHEAP_IOC_ALLOC, KHEAP_ALLOC_SIZE_VER0, true },
		{ KHEAP_IOC_FREE, KHEAP_FREE_SIZE_VER0, false },
		{ KHEAP_IOC_QUERY, KHEAP_QUERY_SIZE_VER0, true },
		{ KHEAP_IOC_SYNC, KHEAP_SYNC_SIZE_VER0, false },
		{ KHEAP_IOC_ATTACH, KHEAP_ATTACH_SIZE_VER0, true },
		{ KHEAP_IOC_DETACH, KHEAP_DETACH_SIZE_VER0, false },
		{ KHEAP_IOC_DMA_ADDR, KHEAP_DMA_ADDR_SIZE_VER0, true },
		{ KHEAP_IOC_SHRINK, KHEAP_RESIZE_SIZE_VER0, true },
		{ KHEAP_IOC_EXTEND, KHEAP_RESIZE_SIZE_VER0, true },
	};
	int fi = pick_file(w), k = below(w, ARRAY_SIZE(cmds)), ret, want;
	size_t ksize, usize;
	unsigned long cmd;
	char *arg;

	if (fi < 0)
		return;
	ksize = _IOC_SIZE(cmds[k].cmd);
	/* Every struct here is valid and harmless when all zero but INFO. */
	switch (below(w, 10)) {
	case 0:		/* below the first published size */
		usize = below(w, 2) ? below(w, cmds[k].ver0) :
				      cmds[k].ver0 - 8;
		cmd = kheap_cmd_sized(cmds[k].cmd, usize);
		arg = w->guard + G->pg - 256;
		memset(arg, 0, 256);
		want = -EINVAL;
		break;
	case 1:		/* NULL, a kernel address, a guard page */
		cmd = cmds[k].cmd;
		switch (below(w, 4)) {
		case 0:
			arg = NULL;
			break;
		case 1:
			arg = (char *)1;
			break;
		case 2:
			arg = (char *)0xffffffff81000000UL;
			break;
		default:
			arg = w->guard + G->pg;
			break;
		}
		want = -EFAULT;
		break;
	case 2:		/* a larger struct running into the guard page */
		usize = ksize + 8 * (1 + below(w, 8));
		cmd = kheap_cmd_sized(cmds[k].cmd, usize);
		arg = w->guard + G->pg - ksize;
		memset(arg, 0, ksize);
		want = -EFAULT;
		break;
	case 3:		/* a larger struct with a non-zero tail */
		usize = ksize + 8 * (1 + below(w, 8));
		cmd = kheap_cmd_sized(cmds[k].cmd, usize);
		arg = w->guard + G->pg - usize;
		memset(arg, 0, usize);
		arg[ksize + below(w, usize - ksize)] = 1 + below(w, 255);
		want = -E2BIG;
		break;
	case 4:		/* unknown command number, wrong magic, wrong direction */
		switch (below(w, 3)) {
		case 0:
			/* 0x09 is EXPORT (ABI 4), 0x0a-0x0b SHRINK, EXTEND (5) */
			cmd = _IOWR(KHEAP_IOC_MAGIC, 12 + below(w, 244), __u64);
			break;
		case 1:
			cmd = _IOC(_IOC_READ | _IOC_WRITE,
				   KHEAP_IOC_MAGIC ^ (1 + below(w, 255)),
				   _IOC_NR(cmds[k].cmd), ksize);
			break;
		default:
			cmd = _IOC(_IOC_DIR(cmds[k].cmd) ^ (1 + below(w, 3)),
				   KHEAP_IOC_MAGIC, _IOC_NR(cmds[k].cmd),
				   ksize);
			break;
		}
		arg = w->guard + G->pg - 256;
		memset(arg, 0, 256);
		want = -ENOTTY;
		break;
	default:	/* all zero, the struct in a read-only page */
		cmd = cmds[k].cmd;
		arg = w->rdonly;
		/*
		 * INFO: all zero is valid input, the write-back faults.  The
		 * others fail validation first (zero size, token 0, no
		 * name...), except FREE and SYNC, which only read.
		 */
		switch (k) {
		case 0:
			want = -EFAULT;
			break;
		case 5:
			want = -EFAULT;	/* name pointer NULL */
			break;
		default:
			want = -EINVAL;
			break;
		}
		break;
	}
	note(w, "ioctl fd %d cmd %#lx arg %p", w->files[fi].fd, cmd, arg);
	ret = kheap_ioctl(w->files[fi].fd, cmd, arg);
	if (ret != want)
		fail(w, "ioctl %#lx (nr %lu, size %lu) arg %p: got %s, want %s",
		     cmd, (unsigned long)_IOC_NR(cmd),
		     (unsigned long)_IOC_SIZE(cmd), arg, kheap_errname(ret),
		     kheap_errname(want));
	check_file(w, fi, "bad ioctl");
}

/* INFO, ATTACH, DETACH and DMA_ADDR with well-formed but wrong input. */
static void op_info_misc(struct worker *w)
{
	int fi = pick_file(w), ret;
	union {
		struct kheap_info info;
		struct kheap_attach at;
		struct kheap_detach de;
		struct kheap_dma_addr da;
	} u;
	static const char *const names[] = {
		"0000:ff:1f.7", "platform:kheap-fuzz-none", "pci:0000:fe:00.0",
	};

	if (fi < 0)
		return;
	memset(&u, 0, sizeof(u));
	switch (below(w, 5)) {
	case 0:
		note(w, "INFO fd %d", w->files[fi].fd);
		check_file(w, fi, "INFO");
		return;
	case 1:
		((__u64 *)&u.info)[below(w, sizeof(u.info) / 8)] = 1;
		ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_INFO, &u.info);
		check_ret(w, "INFO with non-zero input", ret, -EINVAL);
		return;
	case 2:
		u.at.name = (uintptr_t)names[below(w, 3)];
		ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_ATTACH, &u.at);
		check_ret(w, "ATTACH of no device", ret, -ENODEV);
		return;
	case 3:
		u.de.handle = below(w, 3) ? 1 + below(w, 20) : UINT64_MAX;
		ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_DETACH, &u.de);
		check_ret(w, "DETACH of no attachment", ret, -EINVAL);
		return;
	default:
		u.da.token = w->last_token;
		u.da.handle = below(w, 3);
		ret = kheap_ioctl(w->files[fi].fd, KHEAP_IOC_DMA_ADDR, &u.da);
		check_ret(w, "DMA_ADDR with no attachment", ret, -EINVAL);
		return;
	}
}

static void op_mmap(struct worker *w)
{
	int fi = pick_file(w), ci, mi, prot, flags = MAP_SHARED, want = 0;
	uint64_t pg = G->pg, off = 0, len, npages;
	char *hint = NULL, *p;
	off_t offset;
	int fixed_over = -1;

	if (fi < 0 || free_map_slots(w) < 3)
		return;
	ci = pick_owned(w, fi);
	if (ci < 0)
		return;
	npages = w->chunks[ci].size / pg;
	prot = w->files[fi].rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	switch (below(w, 8)) {
	case 0:
		off = below(w, npages) * pg;
		len = (1 + below(w, npages - off / pg)) * pg;
		break;
	case 1:		/* running past the end of the chunk */
		off = below(w, npages) * pg;
		len = (npages - off / pg + 1 + below(w, 2)) * pg;
		want = -EINVAL;
		break;
	case 2:		/* misaligned or empty */
		len = below(w, 2) ? 0 : pg;
		off = len ? 1 + below(w, pg - 1) : 0;
		want = -EINVAL;
		break;
	case 3:		/* private, executable, read-only file */
		len = pg;
		switch (below(w, 3)) {
		case 0:
			flags = MAP_PRIVATE;
			want = -EINVAL;
			break;
		case 1:
			prot |= PROT_EXEC;
			want = -EPERM;
			break;
		default:
			prot = PROT_READ | PROT_WRITE;
			want = w->files[fi].rdonly ? -EACCES : 0;
			break;
		}
		break;
	case 4:		/* MAP_FIXED over a part of one of our mappings */
		mi = pick_map(w);
		if (mi < 0)
			return;
		fixed_over = mi;
		hint = w->maps[mi].addr + below(w, w->maps[mi].len / pg) * pg;
		len = (1 + below(w, npages)) * pg;
		if (hint + len > w->maps[mi].addr + w->maps[mi].len)
			len = w->maps[mi].addr + w->maps[mi].len - hint;
		if (len > npages * pg)
			len = npages * pg;
		flags |= MAP_FIXED;
		break;
	default:
		len = npages * pg;
		break;
	}
	offset = (off_t)(w->chunks[ci].token + off);
	note(w, "mmap fd %d off %#llx len %#llx prot %d flags %#x at %p",
	     w->files[fi].fd, (unsigned long long)offset,
	     (unsigned long long)len, prot, flags, hint);
	if (!want && !w->chunks[ci].filled)
		chunk_through_owner(w, ci, true);	/* first use: fill */
	p = mmap(hint, len, prot, flags, w->files[fi].fd, offset);
	if (p == MAP_FAILED) {
		if (errno == ENOMEM && !want) {
			G->w[w->id].enomem++;
			/* A failed MAP_FIXED may have unmapped the range. */
			if (fixed_over >= 0)
				fail(w, "MAP_FIXED mmap failed with ENOMEM: the model is lost");
			return;
		}
		check_ret(w, "mmap", -errno, want);
		return;
	}
	if (want) {
		fail(w, "mmap off %#llx len %#llx prot %d flags %#x succeeded, want %s",
		     (unsigned long long)offset, (unsigned long long)len,
		     prot, flags, kheap_errname(want));
		munmap(p, len);
		return;
	}
	if (fixed_over >= 0) {
		if (p != hint)
			fail(w, "MAP_FIXED at %p mapped at %p", hint, p);
		model_unmap(w, p, len);
	}
	mi = new_map(w);
	w->maps[mi] = (struct map){
		.used = true, .addr = p, .len = len, .chunk = ci, .off = off,
		.file = fi, .prot = prot, .maywrite = !w->files[fi].rdonly,
	};
	w->chunks[ci].nmaps++;
	check_pages(w, &w->chunks[ci], p, off / pg, len / pg, "new mapping");
	check_query(w, mi, below(w, len));
	check_pagemap(w, mi);
	check_file(w, fi, "mmap");
}

static void op_munmap(struct worker *w)
{
	int mi = pick_map(w);
	uint64_t pg = G->pg, n, first, cnt;
	struct map *m;

	if (mi < 0 || free_map_slots(w) < 2)
		return;
	m = &w->maps[mi];
	n = m->len / pg;
	switch (below(w, 4)) {
	case 0:		/* head */
		first = 0;
		cnt = 1 + below(w, n);
		break;
	case 1:		/* tail */
		cnt = 1 + below(w, n);
		first = n - cnt;
		break;
	case 2:		/* middle */
		first = below(w, n);
		cnt = 1 + below(w, n - first);
		break;
	default:
		first = 0;
		cnt = n;
		break;
	}
	note(w, "munmap %p + %llu pages of %llu", m->addr,
	     (unsigned long long)first, (unsigned long long)n);
	if (munmap(m->addr + first * pg, cnt * pg)) {
		fail(w, "munmap: %s", strerror(errno));
		return;
	}
	model_unmap(w, m->addr + first * pg, cnt * pg);
}

static void op_mremap(struct worker *w)
{
	int mi = pick_map(w), err;
	uint64_t pg = G->pg, n;
	struct map *m;
	char *r, *dst;

	if (mi < 0 || free_map_slots(w) < 3)
		return;
	m = &w->maps[mi];
	n = m->len / pg;
	switch (below(w, 3)) {
	case 0:		/* grow, in place or moving: refused */
		note(w, "mremap grow %p", m->addr);
		r = mremap(m->addr, m->len, m->len + pg * (1 + below(w, 4)),
			   below(w, 2) ? MREMAP_MAYMOVE : 0);
		err = errno;
		if (r != MAP_FAILED)
			fail(w, "mremap grew a kheap mapping");
		else if (err != ENOMEM)
			check_ret(w, "mremap grow", -err, -EFAULT);
		return;
	case 1:		/* MREMAP_DONTUNMAP: refused for VM_DONTEXPAND */
		note(w, "mremap dontunmap %p", m->addr);
		r = mremap(m->addr, m->len, m->len,
			   MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
		err = errno;
		if (r != MAP_FAILED)
			fail(w, "mremap MREMAP_DONTUNMAP moved a kheap mapping");
		else
			check_ret(w, "mremap DONTUNMAP", -err, -EINVAL);
		return;
	default:	/* move a piece elsewhere */
	{
		uint64_t first = below(w, n), cnt = 1 + below(w, n - first);
		char *src = m->addr + first * pg;
		int pi;

		dst = mmap(NULL, cnt * pg, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dst == MAP_FAILED)
			return;
		note(w, "mremap move %p +%llu pages -> %p", src,
		     (unsigned long long)cnt, dst);
		r = mremap(src, cnt * pg, cnt * pg,
			   MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (r != dst) {
			err = errno;
			munmap(dst, cnt * pg);
			if (err == ENOMEM) {
				G->w[w->id].enomem++;
				return;
			}
			fail(w, "mremap move: %s", strerror(err));
			return;
		}
		pi = map_isolate(w, mi, src, cnt * pg);
		w->maps[pi].addr = dst;
		if (w->maps[pi].prot & PROT_READ)
			check_pages(w, &w->chunks[w->maps[pi].chunk], dst,
				    w->maps[pi].off / pg, cnt,
				    "after mremap move");
		if (w->maps[pi].file >= 0)
			check_query(w, pi, below(w, cnt * pg));
		check_pagemap(w, pi);
		return;
	}
	}
}

static void op_mremap_shrink(struct worker *w)
{
	int mi = pick_map(w);
	uint64_t pg = G->pg, n, keep;
	struct map *m;
	char *r;

	if (mi < 0 || free_map_slots(w) < 2)
		return;
	m = &w->maps[mi];
	n = m->len / pg;
	if (n < 2)
		return;
	keep = 1 + below(w, n - 1);
	note(w, "mremap shrink %p %llu -> %llu pages", m->addr,
	     (unsigned long long)n, (unsigned long long)keep);
	r = mremap(m->addr, m->len, keep * pg, 0);
	if (r != m->addr) {
		fail(w, "mremap shrink: %s", strerror(errno));
		return;
	}
	model_unmap(w, m->addr + keep * pg, (n - keep) * pg);
}

static void op_mprotect(struct worker *w)
{
	static const int prots[] = {
		PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE,
		PROT_READ | PROT_EXEC, PROT_EXEC,
	};
	int mi = pick_map(w), prot, ret, want = 0, pi;
	uint64_t pg = G->pg, n, first, cnt;
	struct map *m;

	if (mi < 0 || free_map_slots(w) < 3)
		return;
	m = &w->maps[mi];
	n = m->len / pg;
	first = below(w, n);
	cnt = 1 + below(w, n - first);
	prot = prots[below(w, 6)];
	/*
	 * No VM_MAYEXEC on any kheap mapping, and no VM_MAYWRITE on one of
	 * a file opened read-only: mprotect(2) answers EACCES.
	 */
	if ((prot & PROT_EXEC) || ((prot & PROT_WRITE) && !m->maywrite))
		want = -EACCES;
	note(w, "mprotect %p +%llu pages of %llu: %d", m->addr,
	     (unsigned long long)first, (unsigned long long)n, prot);
	ret = mprotect(m->addr + first * pg, cnt * pg, prot) ? -errno : 0;
	if (ret == -ENOMEM && !want) {
		G->w[w->id].enomem++;
		return;
	}
	check_ret(w, "mprotect", ret, want);
	if (ret)
		return;
	pi = map_isolate(w, mi, m->addr + first * pg, cnt * pg);
	/* x86: write implies read. */
	w->maps[pi].prot = prot & PROT_WRITE ? PROT_READ | PROT_WRITE : prot;
}

#ifndef MADV_COLD
#define MADV_COLD		20
#define MADV_PAGEOUT		21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

/*
 * Advice that reclaims or populates pages: the pool's pages are neither
 * on an LRU list nor in a page cache, which these paths must cope with.
 * Returns whether @ret is an answer madvise(2) documents for the case.
 */
static bool madvise_ok(int adv, int ret)
{
	switch (adv) {
	case MADV_COLD:
	case MADV_PAGEOUT:
		return ret == 0;
	case MADV_POPULATE_READ:
	case MADV_POPULATE_WRITE:
		/*
		 * Every pool is pages, which populate; a mapping without
		 * the access asked for answers EINVAL, EFAULT or ENOMEM
		 * depending on the kernel.
		 */
		return ret == 0 || ret == -EFAULT || ret == -ENOMEM ||
		       ret == -EINVAL;
	case MADV_FREE:
		return ret == -EINVAL;		/* private anonymous only */
	default:
		/*
		 * MADV_REMOVE: no hole punching in a chunk; fallocate() of
		 * the mapping's (anonymous inode) file is ENODEV, and a
		 * mapping that may not write is EACCES.
		 */
		return ret == -ENODEV || ret == -EACCES;
	}
}

static void op_madvise(struct worker *w)
{
	static const int advs[] = {
		MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WILLNEED,
		MADV_NORMAL, MADV_RANDOM, MADV_COLD, MADV_PAGEOUT,
		MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_FREE,
		MADV_REMOVE,
	};
	int mi = pick_map(w), adv, ret, pi;
	uint64_t pg = G->pg, n, first, cnt;
	struct map *m;
	char *a;

	if (mi < 0 || free_map_slots(w) < 3)
		return;
	m = &w->maps[mi];
	n = m->len / pg;
	first = below(w, n);
	cnt = 1 + below(w, n - first);
	adv = advs[below(w, ARRAY_SIZE(advs))];
	a = m->addr + first * pg;
	note(w, "madvise %p +%llu pages: %d", a, (unsigned long long)cnt, adv);
	ret = madvise(a, cnt * pg, adv) ? -errno : 0;
	if (adv >= MADV_COLD || adv == MADV_FREE || adv == MADV_REMOVE) {
		if (!madvise_ok(adv, ret))
			fail(w, "madvise %d of a kheap mapping (prot %d): %s",
			     adv, m->prot, kheap_errname(ret));
		if (m->prot & PROT_READ)
			check_pages(w, &w->chunks[m->chunk], a,
				    (m->off + first * pg) / pg, cnt,
				    "after madvise");
		return;
	}
	if (ret == -ENOMEM) {
		G->w[w->id].enomem++;
		return;
	}
	check_ret(w, "madvise", ret, 0);
	if (ret)
		return;
	if (adv != MADV_DONTNEED && adv != MADV_WILLNEED) {
		/* These change VMA flags: the core splits the mapping. */
		pi = map_isolate(w, mi, a, cnt * pg);
		if (adv == MADV_DONTFORK || adv == MADV_DOFORK)
			w->maps[pi].dontfork = adv == MADV_DONTFORK;
	} else if (adv == MADV_DONTNEED && (m->prot & PROT_READ)) {
		/* The pages come back from the chunk on the next access. */
		check_pages(w, &w->chunks[m->chunk], a,
			    (m->off + first * pg) / pg, cnt,
			    "after MADV_DONTNEED");
	}
}

/* Read or rewrite (with the same pattern) part of a mapping. */
static void op_touch(struct worker *w)
{
	int mi = pick_map(w);
	uint64_t pg = G->pg, n, first, cnt;
	struct chunk *c;
	struct map *m;

	if (mi < 0)
		return;
	m = &w->maps[mi];
	c = &w->chunks[m->chunk];
	n = m->len / pg;
	first = below(w, n);
	cnt = 1 + below(w, n - first < 16 ? n - first : 16);
	if ((m->prot & PROT_WRITE) && c->filled && chance(w, 3)) {
		note(w, "write %p +%llu pages", m->addr + first * pg,
		     (unsigned long long)cnt);
		fill_pages(c, m->addr + first * pg, m->off / pg + first, cnt);
	}
	if (m->prot & PROT_READ) {
		note(w, "read %p +%llu pages", m->addr + first * pg,
		     (unsigned long long)cnt);
		check_pages(w, c, m->addr + first * pg, m->off / pg + first,
			    cnt, "read");
		if (chance(w, 2))
			check_pagemap(w, mi);
	}
}

/* ---- fork ------------------------------------------------------------ */

static void reap_kids(struct worker *w, bool block)
{
	int i, status;

	for (i = 0; i < MAX_KIDS; i++) {
		pid_t r;

		if (!w->kids[i])
			continue;
		r = waitpid(w->kids[i], &status, block ? 0 : WNOHANG);
		if (r == 0)
			continue;
		if (r < 0) {
			fail(w, "waitpid %d: %s", w->kids[i], strerror(errno));
		} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fail(w, "fork child %d: %s %d", w->kids[i],
			     WIFSIGNALED(status) ? "signal" : "exit status",
			     WIFSIGNALED(status) ? WTERMSIG(status) :
						   WEXITSTATUS(status));
		}
		w->kids[i] = 0;
	}
}

static sigjmp_buf child_jmp;

static void child_fault(int sig)
{
	siglongjmp(child_jmp, sig);
}

/* Read every page of [@addr, @addr + @len): 0, or the signal it raised. */
static int read_inherited(const char *addr, uint64_t len)
{
	uint64_t i;
	int sig;

	sig = sigsetjmp(child_jmp, 1);
	if (sig)
		return sig;
	for (i = 0; i < len; i += G->pg)
		touch(addr + i);
	return 0;
}

/*
 * Scribble over a private inherited mapping: the child's copy, never the
 * parent's chunk (ABI 3), which the parent checks before every FREE and
 * close.  A pool too full for the copy gives SIGBUS, which is allowed.
 */
static int scribble_inherited(char *addr, uint64_t len)
{
	uint64_t i;
	int sig;

	sig = sigsetjmp(child_jmp, 1);
	if (sig)
		return sig;
	for (i = 0; i < len; i += G->pg)
		((volatile char *)addr)[i] = (char)0xee;
	return 0;
}

/*
 * In a fork child: read (only) what was inherited, then a short checked
 * sequence on a file of its own.  Exit status 0 when all went well.
 *
 * The child also writes over its private inherited mappings: the parent
 * must never see those bytes.  SIGBUS on an inherited mapping is a copy
 * the pool could not hold (allowed); any other signal fails.
 */
static void fork_child(struct worker *w)
{
	uint64_t pg = G->pg, rounds = 1 + below(w, 4);
	struct kheap_alloc a;
	struct kheap_info info;
	struct kheap_query q;
	int fd, ret, sig, mi;
	char *m;

	signal(SIGSEGV, child_fault);
	signal(SIGBUS, child_fault);
	for (mi = 0; mi < MAX_MAPS; mi++) {
		if (!w->maps[mi].used || w->maps[mi].dontfork ||
		    !(w->maps[mi].prot & PROT_READ))
			continue;
		sig = read_inherited(w->maps[mi].addr, w->maps[mi].len);
		if (!sig && (w->maps[mi].prot & PROT_WRITE) &&
		    w->maps[mi].chunk >= 0 &&
		    !w->chunks[w->maps[mi].chunk].shared)
			sig = scribble_inherited(w->maps[mi].addr,
						 w->maps[mi].len);
		/* SIGBUS: a copy the pool could not hold, as documented. */
		if (sig && sig != SIGBUS) {
			say("# fork child %d: signal %d on what it inherited",
			    getpid(), sig);
			_exit(1);
		}
	}
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	fd = kheap_open();
	if (fd < 0) {
		say("# fork child: open: %s", kheap_errname(fd));
		_exit(1);
	}
	while (rounds--) {
		uint64_t size = (1 + below(w, 4)) * pg, seed;

		ret = kheap_alloc(fd, size, 0, &a);
		if (ret == -ENOMEM)
			continue;
		if (ret) {
			say("# fork child: ALLOC: %s", kheap_errname(ret));
			_exit(1);
		}
		m = kheap_map(fd, a.token, size);
		if (m == MAP_FAILED) {
			say("# fork child: mmap: %s", strerror(errno));
			_exit(1);
		}
		if (kheap_check_zero(m, size) >= 0) {
			say("# fork child: a new chunk is not zero");
			_exit(1);
		}
		seed = kheap_pattern_word(getpid(), a.token / pg);
		kheap_fill(m, size, seed);
		ret = kheap_query(fd, m + size - 1, &q);
		if (ret || q.token != a.token || q.offset != size - 1 ||
		    q.phys != (a.phys ? a.phys + size - 1 : 0)) {
			say("# fork child: QUERY: %s", kheap_errname(ret));
			_exit(1);
		}
		if (kheap_check(m, size, seed) >= 0) {
			say("# fork child: own chunk changed under it");
			_exit(1);
		}
		if (below(w, 2))
			munmap(m, size);
		ret = kheap_free(fd, a.token);
		if (ret) {
			say("# fork child: FREE: %s", kheap_errname(ret));
			_exit(1);
		}
	}
	ret = kheap_info(fd, &info);
	if (ret || info.file_chunks || info.file_bytes) {
		say("# fork child: INFO %s, %llu chunks left", kheap_errname(ret),
		    (unsigned long long)info.file_chunks);
		_exit(1);
	}
	_exit(0);
}

static void op_fork(struct worker *w)
{
	int slot;
	pid_t pid;

	reap_kids(w, false);
	for (slot = 0; slot < MAX_KIDS; slot++)
		if (!w->kids[slot])
			break;
	if (slot == MAX_KIDS)
		return;
	note(w, "fork");
	pid = fork();
	if (pid < 0) {
		if (errno != EAGAIN && errno != ENOMEM)
			fail(w, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		w->rng ^= 0x5eed;
		fork_child(w);
	}
	w->kids[slot] = pid;
	G->w[w->id].forks++;
}

/* ---- two threads on one file ---------------------------------------- */

/*
 * A race between this thread and a helper on the same file or the same
 * mapping.  The outcome's order is up to the scheduler, so each side's
 * result must be one of the orders' answers, and the model follows what
 * happened.
 */
struct race {
	int kind;
	int fd;
	uint64_t token;
	char *addr;
	uint64_t len;
	int go;
	int ret;
};

enum { RACE_FREE_FREE, RACE_FREE_MMAP, RACE_MUNMAP_QUERY };

static void *race_helper(void *p)
{
	struct race *r = p;

	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	switch (r->kind) {
	case RACE_FREE_FREE:
	case RACE_FREE_MMAP:
		r->ret = kheap_free(r->fd, r->token);
		break;
	default:
		r->ret = munmap(r->addr, r->len) ? -errno : 0;
		break;
	}
	return NULL;
}

static void op_race(struct worker *w)
{
	int fi = pick_file(w), ci = -1, mi = -1, ret = 0, i;
	struct race r = { .kind = below(w, 3) };
	struct kheap_query q;
	bool gone = false;
	pthread_t th;
	char *p = MAP_FAILED;

	if (fi < 0 || free_map_slots(w) < 3)
		return;
	r.fd = w->files[fi].fd;
	if (r.kind == RACE_MUNMAP_QUERY) {
		mi = pick_map(w);
		if (mi < 0 || w->maps[mi].file != fi)
			return;
		r.addr = w->maps[mi].addr;
		r.len = w->maps[mi].len;
	} else {
		ci = pick_owned(w, fi);
		if (ci < 0)
			return;
		r.token = w->chunks[ci].token;
		r.len = w->chunks[ci].size;
		if (r.kind == RACE_FREE_MMAP && !w->chunks[ci].filled)
			chunk_through_owner(w, ci, true);
		else if (w->chunks[ci].filled)
			chunk_through_owner(w, ci, false);
	}
	note(w, "race %d fd %d token %#llx addr %p", r.kind, r.fd,
	     (unsigned long long)r.token, r.addr);
	if (pthread_create(&th, NULL, race_helper, &r))
		return;
	__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
	switch (r.kind) {
	case RACE_FREE_FREE:
		ret = kheap_free(r.fd, r.token);
		break;
	case RACE_FREE_MMAP:
		p = mmap(NULL, r.len, w->files[fi].rdonly ? PROT_READ :
			 PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, r.token);
		ret = p == MAP_FAILED ? -errno : 0;
		break;
	default:
		/* Each answer is exact or EINVAL, and EINVAL stays. */
		for (i = 0; i < 16; i++) {
			uint64_t delta = below(w, r.len);

			ret = kheap_query(r.fd, r.addr + delta, &q);
			if (ret == -EINVAL) {
				gone = true;
				continue;
			}
			if (ret || gone) {
				fail(w, "QUERY racing munmap: %s after %s",
				     kheap_errname(ret),
				     gone ? "EINVAL" : "answers");
				break;
			}
			check_answer(w, mi, delta, &q);
		}
		ret = 0;
		break;
	}
	pthread_join(th, NULL);

	switch (r.kind) {
	case RACE_FREE_FREE:
		/* Exactly one of the two FREEs succeeds. */
		if (!((ret == 0 && r.ret == -EINVAL) ||
		      (ret == -EINVAL && r.ret == 0)))
			fail(w, "two racing FREEs of %#llx: %s and %s",
			     (unsigned long long)r.token, kheap_errname(ret),
			     kheap_errname(r.ret));
		w->chunks[ci].owned = false;
		chunk_settle(w, ci);
		break;
	case RACE_FREE_MMAP:
		check_ret(w, "FREE racing mmap", r.ret, 0);
		w->chunks[ci].owned = false;
		if (ret == -ENOMEM) {
			G->w[w->id].enomem++;
		} else if (ret) {
			check_ret(w, "mmap racing FREE", ret, -EINVAL);
		} else {
			/* Mapped in time: the mapping keeps the chunk. */
			mi = new_map(w);
			w->maps[mi] = (struct map){
				.used = true, .addr = p, .len = r.len,
				.chunk = ci, .file = fi,
				.prot = w->files[fi].rdonly ? PROT_READ :
					PROT_READ | PROT_WRITE,
				.maywrite = !w->files[fi].rdonly,
			};
			w->chunks[ci].nmaps++;
			check_pages(w, &w->chunks[ci], p, 0, r.len / G->pg,
				    "mapped while freed");
		}
		chunk_settle(w, ci);
		break;
	default:
		check_ret(w, "munmap racing QUERY", r.ret, 0);
		model_unmap(w, r.addr, r.len);
		ret = kheap_query(r.fd, r.addr, &q);
		check_ret(w, "QUERY after munmap", ret, -EINVAL);
		break;
	}
	check_file(w, fi, "race");
}

/*
 * Chunk @ci went from @old to @size bytes: the kept pages hold what they
 * held (checked with the old size's sampling), grown ones are zero, and
 * the pattern is written again for the new size's sampling.
 */
static void resize_recheck(struct worker *w, int ci, uint64_t old,
			   uint64_t size)
{
	struct chunk *c = &w->chunks[ci];
	uint64_t pg = G->pg, kept = old < size ? old : size;
	char *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 w->files[c->file].fd, c->token);
	if (p == MAP_FAILED) {
		if (errno == ENOMEM) {
			G->w[w->id].enomem++;
			c->size = size;
			c->filled = false;	/* cannot tell any more */
			return;
		}
		fail(w, "mmap of resized chunk %#llx (%llu bytes): %s",
		     (unsigned long long)c->token, (unsigned long long)size,
		     strerror(errno));
		return;
	}
	check_pages(w, c, p, 0, kept / pg, "kept by resize");
	if (size > old && kheap_check_zero(p + old, size - old) >= 0)
		fail(w, "EXTEND of %#llx: grown pages not zero",
		     (unsigned long long)c->token);
	c->size = size;
	if (c->filled)
		fill_pages(c, p, 0, size / pg);
	if (munmap(p, size))
		fail(w, "munmap of a resized chunk: %s", strerror(errno));
}

/*
 * SHRINK or EXTEND an owned chunk that is not shared with children.
 * SHRINK is tried only when no mapping of this worker reaches past the
 * new end (an access there would be SIGBUS): then only a fork() child's
 * copy or a pin can hold it back (EBUSY).  EXTEND works or finds the
 * pages after the chunk taken (ENOSPC).  After either, the kept pages
 * still hold their pattern; the chunk is refilled for its new size.
 */
static void op_resize(struct worker *w)
{
	int fi = pick_file(w), ci, mi, ret, want = 0;
	bool grow = chance(w, 2), maybe_busy = false;
	uint64_t pg = G->pg, old, size, npages;
	struct kheap_resize rs;
	struct chunk *c;
	const char *what = grow ? "EXTEND" : "SHRINK";

	if (fi < 0)
		return;
	ci = pick_owned(w, fi);
	/* Refilling after a resize needs a writable file. */
	if (ci < 0 || w->chunks[ci].shared || w->files[fi].rdonly)
		return;
	c = &w->chunks[ci];
	old = c->size;
	npages = old / pg;
	memset(&rs, 0, sizeof(rs));
	rs.token = c->token;
	if (grow)
		size = old + pg * (1 + below(w, chance(w, 8) ? 64 : 4));
	else
		size = npages > 1 ? pg * (1 + below(w, npages - 1)) : old;
	rs.size = size - below(w, 2) * below(w, pg);
	if (chance(w, 16)) {
		((uint64_t *)&rs)[2 + below(w, 6)] = 1 + below(w, 7);
		want = -EINVAL;
	} else if (grow && size > c->span) {
		want = -EFBIG;
	}
	if (!grow && !want) {
		for (mi = 0; mi < MAX_MAPS; mi++)
			if (w->maps[mi].used && w->maps[mi].chunk == ci &&
			    w->maps[mi].off + w->maps[mi].len > size)
				return;
		maybe_busy = true;
	}
	note(w, "%s token %#llx %#llx -> %#llx", what,
	     (unsigned long long)c->token, (unsigned long long)old,
	     (unsigned long long)size);
	ret = kheap_ioctl(w->files[fi].fd,
			  grow ? KHEAP_IOC_EXTEND : KHEAP_IOC_SHRINK, &rs);
	if ((ret == -EBUSY && maybe_busy) ||
	    (ret == -ENOSPC && grow && !want))
		ret = 0, size = old;
	else
		check_ret(w, what, ret, want);
	if (!ret && !want && rs.size_out != size && size != old)
		fail(w, "%s to %#llx: size_out %#llx", what,
		     (unsigned long long)size,
		     (unsigned long long)rs.size_out);
	if (!ret && !want && size != old)
		resize_recheck(w, ci, old, size);
	check_file(w, fi, what);
}

/* ---- worker ---------------------------------------------------------- */

static void drop_everything(struct worker *w)
{
	int i;

	for (i = 0; i < MAX_MAPS; i++) {
		if (w->maps[i].used) {
			if (munmap(w->maps[i].addr, w->maps[i].len))
				fail(w, "munmap: %s", strerror(errno));
			map_drop(w, i);
		}
	}
	for (i = 0; i < MAX_FILES; i++)
		if (w->files[i].fd >= 0)
			file_close(w, i);
}

static void run_op(struct worker *w)
{
	unsigned int r = below(w, 100);

	w->ops++;
	if (r < 6)
		op_open(w);
	else if (r < 9)
		op_close(w);
	else if (r < 24)
		op_alloc(w);
	else if (r < 34)
		op_free(w);
	else if (r < 38)
		op_sync(w);
	else if (r < 44)
		op_query(w);
	else if (r < 49)
		op_bad_ioctl(w);
	else if (r < 52)
		op_info_misc(w);
	else if (r < 64)
		op_mmap(w);
	else if (r < 70)
		op_munmap(w);
	else if (r < 73)
		op_mremap(w);
	else if (r < 75)
		op_mremap_shrink(w);
	else if (r < 79)
		op_mprotect(w);
	else if (r < 84)
		op_madvise(w);
	else if (r < 94)
		op_touch(w);
	else if (r < 96)
		op_race(w);
	else if (r < 98)
		op_resize(w);
	else
		op_fork(w);
}

static uint64_t now_ms(void)
{
	return kheap_now_ms();
}

/* Wait at epoch @e's barrier: reap, publish, arrive, wait for release. */
static void barrier(struct worker *w, unsigned int e)
{
	uint64_t hc, hb;

	reap_kids(w, true);
	if (e % 4 == 0)
		drop_everything(w);
	held(w, &hc, &hb);
	G->w[w->id].held_bytes = hb;
	G->w[w->id].held_chunks = hc;
	G->w[w->id].ops = w->ops;
	__atomic_add_fetch(&G->arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&G->released, __ATOMIC_SEQ_CST) < e &&
	       !aborted())
		usleep(1000);
}

struct worker_arg {
	int proc, thread;
	uint64_t t0, epochs;
};

static void *worker_main(void *p)
{
	struct worker_arg *arg = p;
	uint64_t end = arg->t0 + opt_duration * 1000ULL;
	struct worker *w;
	unsigned int e = 1, i;

	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->proc = arg->proc;
	w->thread = arg->thread;
	w->id = arg->proc * opt_threads + arg->thread;
	w->rng = mix64(opt_seed ^ mix64(w->id + 1));
	for (i = 0; i < MAX_FILES; i++)
		w->files[i].fd = -1;
	w->guard = mmap(NULL, 2 * G->pg, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->rdonly = mmap(NULL, G->pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (w->guard == MAP_FAILED || w->rdonly == MAP_FAILED ||
	    mprotect(w->guard + G->pg, G->pg, PROT_NONE)) {
		fail(w, "setup: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		uint64_t t = now_ms();

		if (e <= arg->epochs && t >= arg->t0 + e * opt_epoch * 1000ULL) {
			barrier(w, e++);
			continue;
		}
		if (t >= end && e > arg->epochs)
			break;
		if (aborted() || t >= end) {
			/* Still attend the remaining barriers. */
			if (e <= arg->epochs) {
				barrier(w, e++);
				continue;
			}
			break;
		}
		run_op(w);
	}
	reap_kids(w, true);
	if (!aborted())
		drop_everything(w);
	G->w[w->id].ops = w->ops;
	G->w[w->id].held_bytes = 0;
	G->w[w->id].held_chunks = 0;
	free(w);
	return NULL;
}

static void proc_main(int proc, uint64_t t0, uint64_t epochs)
{
	pthread_t th[MAX_THREADS];
	struct worker_arg args[MAX_THREADS];
	unsigned int t;

	for (t = 0; t < opt_threads; t++) {
		args[t] = (struct worker_arg){ proc, t, t0, epochs };
		if (pthread_create(&th[t], NULL, worker_main, &args[t])) {
			say("# p%d: pthread_create failed", proc);
			__atomic_store_n(&G->abort, 1, __ATOMIC_SEQ_CST);
			_exit(1);
		}
	}
	for (t = 0; t < opt_threads; t++)
		pthread_join(th[t], NULL);
	_exit(0);
}

/* ---- the test -------------------------------------------------------- */

static void __attribute__((constructor)) kheap_fuzz_init(void)
{
	kmsg_fd = kheap_kmsg_open();
}

/* TEST()'s wrapper leaves a parameter unused (harness, not our code). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
TEST(fuzz)
{
	unsigned int nworkers = opt_procs * opt_threads, p, e, i;
	uint64_t t0, epochs, ops = 0, enomem = 0, forks = 0, pm = 0, pmh = 0;
	uint64_t elapsed;
	pid_t pids[MAX_PROCS];
	struct kheap_info info;
	char buf[192];
	int fd, ret, status;

	fd = kheap_open();
	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO)
		SKIP(return, "%s: %s (is kheap.ko loaded?)", KHEAP_DEV,
		     kheap_errname(fd));
	ASSERT_GE(fd, 0) TH_LOG("open: %s", kheap_errname(fd));
	ret = kheap_wait_idle(fd, KHEAP_SETTLE_MS, &info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle at the start: %s",
				 kheap_state_str(&info, buf, sizeof(buf)));

	G = mmap(NULL, sizeof(*G), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, G);
	G->pool = info.pool_size;
	G->pg = info.page_size;
	G->pool_phys = info.pool_phys;
	ASSERT_EQ((uint64_t)getpagesize(), G->pg);

	epochs = opt_duration / opt_epoch;
	if (epochs && epochs * opt_epoch >= opt_duration)
		epochs--;
	t0 = now_ms();
	for (p = 0; p < opt_procs; p++) {
		pids[p] = fork();
		ASSERT_GE(pids[p], 0);
		if (pids[p] == 0)
			proc_main(p, t0, epochs);
	}

	for (e = 1; e <= epochs; e++) {
		uint64_t hb = 0, hc = 0;

		while (__atomic_load_n(&G->arrived, __ATOMIC_SEQ_CST) <
		       nworkers * e && !aborted()) {
			for (p = 0; p < opt_procs; p++) {
				if (!pids[p] ||
				    waitpid(pids[p], &status, WNOHANG) <= 0)
					continue;
				pids[p] = 0;
				TH_LOG("worker process %u ended early (status %#x)",
				       p, status);
				__atomic_store_n(&G->abort, 1, __ATOMIC_SEQ_CST);
			}
			usleep(2000);
		}
		if (aborted())
			break;
		for (i = 0; i < nworkers; i++) {
			hb += G->w[i].held_bytes;
			hc += G->w[i].held_chunks;
		}
		ret = kheap_wait_state(fd, G->pool - hb, hc, KHEAP_SETTLE_MS,
				       &info);
		EXPECT_EQ(0, ret)
			TH_LOG("epoch %u: workers hold %llu chunks, %llu bytes; INFO: %s",
			       e, (unsigned long long)hc,
			       (unsigned long long)hb,
			       kheap_state_str(&info, buf, sizeof(buf)));
		if (ret)
			__atomic_store_n(&G->abort, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&G->released, e, __ATOMIC_SEQ_CST);
	}

	for (p = 0; p < opt_procs; p++) {
		if (!pids[p])
			continue;
		ASSERT_EQ(pids[p], waitpid(pids[p], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("worker process %u: status %#x", p, status);
	}
	for (i = 0; i < nworkers; i++) {
		ops += G->w[i].ops;
		enomem += G->w[i].enomem;
		forks += G->w[i].forks;
		pm += G->w[i].pagemap_checks;
		pmh += G->w[i].pagemap_hidden;
	}
	elapsed = now_ms() - t0;
	EXPECT_EQ(0U, G->failures);

	/* Everything closed and unmapped: the whole pool is free. */
	ret = kheap_wait_idle(fd, KHEAP_SETTLE_MS, &info);
	EXPECT_EQ(0, ret) TH_LOG("after the run: %s",
				 kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(G->pool, info.free_bytes);
	EXPECT_EQ(G->pool, info.largest_free);
	EXPECT_EQ(0ULL, info.chunks_in_use);
	EXPECT_EQ(0ULL, info.file_chunks);

	ksft_print_msg("seed %llu: %llu operations in %llu ms (%llu/s), %u x %u workers;"
		       " %llu ENOMEM, %llu forks, %llu pagemap checks%s, %u epochs\n",
		       (unsigned long long)opt_seed, (unsigned long long)ops,
		       (unsigned long long)elapsed,
		       (unsigned long long)(ops * 1000 / (elapsed ? elapsed : 1)),
		       opt_procs, opt_threads, (unsigned long long)enomem,
		       (unsigned long long)forks, (unsigned long long)pm,
		       pmh ? " (frame numbers hidden)" : "",
		       (unsigned int)epochs);
	close(fd);
}

#pragma GCC diagnostic pop

/* Must stay the last test: it checks what the fuzzer logged. */
KHEAP_KERNEL_LOG_TEST()

static unsigned int parse_uint(const char *s, unsigned int min,
			       unsigned int max, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (*s == '\0' || *end || v < min || v > max) {
		fprintf(stderr, "kheap_fuzz: bad %s '%s' (%u..%u)\n", what, s,
			min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "procs", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "epoch", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_seed = false;
	struct timespec ts;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "s:d:p:t:e:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt_seed = strtoull(optarg, &end, 0);
			if (*optarg == '\0' || *end) {
				fprintf(stderr, "kheap_fuzz: bad seed '%s'\n",
					optarg);
				return 2;
			}
			have_seed = true;
			break;
		case 'd':
			opt_duration = parse_uint(optarg, 1, 86400, "duration");
			break;
		case 'p':
			opt_procs = parse_uint(optarg, 1, MAX_PROCS, "procs");
			break;
		case 't':
			opt_threads = parse_uint(optarg, 1, MAX_THREADS,
						 "threads");
			break;
		case 'e':
			opt_epoch = parse_uint(optarg, 1, 3600, "epoch");
			break;
		default:
			fprintf(stderr, "usage: %s [--seed S] [--duration SEC]\n"
				"\t[--procs N] [--threads N] [--epoch SEC]\n",
				argv[0]);
			return 2;
		}
	}
	if (!have_seed) {
		clock_gettime(CLOCK_REALTIME, &ts);
		opt_seed = mix64(ts.tv_sec ^ (uint64_t)ts.tv_nsec << 20 ^
				 getpid());
	}
	/* First line of output: how to replay this run. */
	printf("# kheap_fuzz: seed %llu; replay: %s -s %llu -d %u -p %u -t %u -e %u\n",
	       (unsigned long long)opt_seed, argv[0],
	       (unsigned long long)opt_seed, opt_duration, opt_procs,
	       opt_threads, opt_epoch);
	fflush(stdout);
	/* The harness kills a test that outlives its timeout. */
	_fuzz_object.timeout = opt_duration + 300;
	/* Our options are parsed: the harness gets none of them. */
	optind = 1;
	return test_harness_run(1, argv);
}
