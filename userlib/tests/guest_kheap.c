// SPDX-License-Identifier: MIT
/*
 * guest_kheap.c - libkheap through the real /dev/kheap (run in a guest
 * with the kheap module loaded; KHEAP_DEVICE names another node).
 *
 * Physical truth of random allocations against /proc/self/pagemap,
 * contiguity of whole allocations up to an arena and beyond, realloc
 * across moves, exhaustion then full recovery, calloc, fork (private
 * blocks of every kind both ways, shared blocks, 1,000 forks while threads
 * allocate), threads, kheap_export() of aligned blocks (the dma-buf maps
 * the block's own pages).
 * SKIPs (exit 4) without the device.  Needs root (CAP_SYS_ADMIN) for the
 * pagemap comparisons; without it those cases are skipped.
 *
 * Built twice: guest_kheap (static library, also runs the integrity
 * checker) and guest_kheap_shared (shared library, public API only).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/dma-buf.h>

#include "kheap.h"
#include "ktap.h"

#ifdef KHEAP_SHARED_ONLY
#define HEAP_OK() 1
#else
int kheap__check(void);
#define HEAP_OK() (kheap__check() == 0)
#endif

#define MIB ((size_t)1 << 20)

static struct kheap_stats st0;
static int pm_fd = -1, pm_ok, restricted;
static long page;
/* Physical truth can be verified: against the pagemap, or (restricted)
 * as kheap_phys refusing with EPERM.  Otherwise kheap_phys could only be
 * compared with itself, which proves nothing. */
static int phys_checkable;

/* Physical address of a (touched) byte from /proc/self/pagemap; 0 when
 * the page is not present, or when the kernel hides frame numbers from
 * this reader (not CAP_SYS_ADMIN: present pages read as frame 0). */
static uint64_t pagemap_phys(const void *addr)
{
	uint64_t e, pfn;
	uintptr_t v = (uintptr_t)addr;

	if (pread(pm_fd, &e, 8, (off_t)(v / (uintptr_t)page * 8)) != 8)
		return 0;
	pfn = e & ((1ull << 55) - 1);
	if (!(e >> 63) || !pfn)
		return 0;
	return pfn * (uint64_t)page + v % (uintptr_t)page;
}

/* Touch every page of [p, p+n) and compare with the pagemap. */
static int phys_true(unsigned char *p, size_t n)
{
	uint64_t base = kheap_phys(p);
	size_t step = (size_t)page;

	if (!phys_checkable) {
		/* Nothing to compare with: only that every page is there. */
		for (size_t off = 0; off < n; off += step)
			*(volatile unsigned char *)(p + off) = p[off];
		*(volatile unsigned char *)(p + n - 1) = p[n - 1];
		return 1;
	}
	if (restricted) {
		/* No physical addresses: every page must still be there. */
		for (size_t off = 0; off < n; off += step)
			*(volatile unsigned char *)(p + off) = p[off];
		*(volatile unsigned char *)(p + n - 1) = p[n - 1];
		errno = 0;
		return kheap_phys(p + n - 1) == 0 && errno == EPERM;
	}
	if (!base)
		return 0;
	for (size_t off = 0; off < n; off += step) {
		size_t o = off ? off - ((uintptr_t)(p + off) % step) : 0;

		p[o] ^= 0;
		*(volatile unsigned char *)(p + o) = p[o];
		if (kheap_phys(p + o) != base + o)
			return 0;
		if (pm_ok && pagemap_phys(p + o) != base + o) {
			printf("# %p+%zu: kheap_phys %#llx, pagemap %#llx\n",
			       (void *)p, o, (unsigned long long)(base + o),
			       (unsigned long long)pagemap_phys(p + o));
			return 0;
		}
	}
	*(volatile unsigned char *)(p + n - 1) = p[n - 1];
	if (kheap_phys(p + n - 1) != base + n - 1)
		return 0;
	if (pm_ok && pagemap_phys(p + n - 1) != base + n - 1)
		return 0;
	return kheap_phys_to_virt(base + n - 1) == p + n - 1;
}

static void test_phys_truth_random(void)
{
	struct rng r = { 2024 };
	unsigned char *v[512];
	size_t maxsz = st0.arena_size / 4;

	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 512; i++) {
			size_t n = rng_logu(&r, 1, i % 50 ? 65536 : maxsz);

			v[i] = kheap_malloc(n);
			CHECKF(v[i] != NULL, "malloc(%zu): %s", n,
			       strerror(errno));
			if (v[i])
				CHECKF(phys_true(v[i], n), "block %p size %zu",
				       (void *)v[i], n);
		}
		for (int i = 0; i < 512; i += 1 + round)
			kheap_free(v[i]), v[i] = NULL;
		for (int i = 0; i < 512; i++)
			kheap_free(v[i]);
	}
	CHECK(HEAP_OK());
}

/* Whole allocations: half an arena, an arena, and beyond (dedicated
 * chunks), up to a quarter of the pool. */
static void test_contiguity_large(void)
{
	size_t a = st0.arena_size;
	size_t sizes[] = { a / 2 - 4096, a / 2 + 1, a, 2 * a + 12345,
			   st0.pool_size / 4 };

	for (unsigned i = 0; i < 5; i++) {
		unsigned char *p;

		if (sizes[i] > st0.pool_size / 4 || !sizes[i])
			continue;
		p = kheap_malloc(sizes[i]);
		CHECKF(p != NULL, "malloc(%zu): %s", sizes[i], strerror(errno));
		if (!p)
			continue;
		CHECKF(phys_true(p, sizes[i]), "size %zu", sizes[i]);
		CHECK(kheap_malloc_usable_size(p) >= sizes[i]);
		kheap_free(p);
	}
	for (size_t al = 4096; al <= 2 * MIB && al <= st0.pool_size / 4;
	     al <<= 1) {
		unsigned char *p = kheap_aligned_alloc(al, al);

		CHECKF(p && kheap_phys(p) % al == 0 && (uintptr_t)p % al == 0,
		       "align %zu", al);
		if (p)
			CHECK(phys_true(p, al));
		kheap_free(p);
	}
	CHECK(HEAP_OK());
}

/*
 * A dedicated block grows in place (KHEAP_IOC_EXTEND) into the free pool
 * pages after its chunk and shrinks in place (KHEAP_IOC_SHRINK), giving
 * its tail back: same address, same physical pages (pagemap), bytes
 * kept.  Runs first, while the pool after the process's one arena is
 * free.
 */
static void test_realloc_in_place(void)
{
	size_t a = st0.arena_size, n = a * 3 / 4, keep;
	struct kheap_stats s1, s2;
	unsigned char *p, *q;
	uint64_t phys, pm = 0;

	p = kheap_malloc(n);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < n; i += 4096)
		p[i] = (unsigned char)(i / 4096 * 13);
	phys = kheap_phys(p);
	if (pm_ok)
		pm = pagemap_phys(p);
	kheap_stats(&s1);
	q = kheap_realloc(p, 4 * n);
	kheap_stats(&s2);
	CHECKF(q == p, "grown block moved: %p -> %p", (void *)p, (void *)q);
	if (!q)
		return;
	CHECK(kheap_phys(q) == phys);
	CHECK(!pm_ok || pagemap_phys(q) == pm);
	CHECKF(s2.bytes_held == s1.bytes_held + 3 * n,
	       "held %llu -> %llu", (unsigned long long)s1.bytes_held,
	       (unsigned long long)s2.bytes_held);
	for (size_t i = 0; i < n; i += 4096)
		if (q[i] != (unsigned char)(i / 4096 * 13)) {
			CHECKF(0, "byte %zu changed", i);
			break;
		}
	CHECK(phys_true(q, 4 * n));
	memset(q + n, 0x3c, 3 * n);
	/* Back to two thirds of an arena (64 KiB granules): the rest
	 * returns to the pool. */
	keep = (a * 2 / 3 + 65535) & ~(size_t)65535;
	p = kheap_realloc(q, a * 2 / 3);
	kheap_stats(&s1);
	CHECK(p == q);
	CHECKF(s1.bytes_held == s2.bytes_held - (4 * n - keep),
	       "held %llu -> %llu", (unsigned long long)s2.bytes_held,
	       (unsigned long long)s1.bytes_held);
	CHECK(s1.pool_free == s2.pool_free + (4 * n - keep));
	CHECK(kheap_phys(p) == phys);
	CHECK(!pm_ok || pagemap_phys(p) == pm);
	CHECK(phys_true(p, a * 2 / 3));
	for (size_t i = 0; i < keep; i += 4096)
		if (p[i] != (unsigned char)(i / 4096 * 13)) {
			CHECKF(0, "byte %zu changed by the shrink", i);
			break;
		}
	kheap_free(p);
	CHECK(HEAP_OK());
}

static void test_realloc_moves(void)
{
	size_t top = st0.pool_size / 4 < 64 * MIB ? st0.pool_size / 4 : 64 * MIB;
	unsigned char *p = kheap_malloc(16), *q, *blocker = NULL;
	int moves = 0;

	CHECK(p != NULL);
	if (!p)
		return;
	memset(p, 0x5a, 16);
	for (size_t n = 32, prev = 16; n <= top; prev = n, n *= 2) {
		/* an allocation right after p forces some moves */
		if (n == 4096)
			blocker = kheap_malloc(100);
		q = kheap_realloc(p, n);
		CHECKF(q != NULL, "realloc to %zu", n);
		if (!q)
			break;
		moves += q != p;
		for (size_t i = 0; i < prev; i += 997)
			if (q[i] != (unsigned char)(0x5a + i % 7)) {
				CHECKF(0, "contents lost at %zu/%zu", i, n);
				break;
			}
		for (size_t i = 0; i < n; i += 997)
			q[i] = (unsigned char)(0x5a + i % 7);
		CHECKF(phys_true(q, n), "size %zu", n);
		p = q;
	}
	ktap_diag("realloc doubling to %zu: %d moves", top, moves);
	CHECK(moves >= 2);
	kheap_free(p);
	kheap_free(blocker);
	CHECK(HEAP_OK());
}

static void test_calloc(void)
{
	for (int round = 0; round < 3; round++) {
		size_t sizes[] = { 10, 3000, 70000, 1 << 20, st0.arena_size };
		void *v[5];

		for (int i = 0; i < 5; i++) {
			unsigned char *p = kheap_calloc(1, sizes[i]);
			size_t j;

			CHECK(p != NULL);
			if (!p) {
				v[i] = NULL;
				continue;
			}
			for (j = 0; j < sizes[i] && !p[j]; j++)
				;
			CHECKF(j == sizes[i], "calloc(%zu) byte %zu", sizes[i], j);
			memset(p, 0xff, sizes[i]);
			v[i] = p;
		}
		for (int i = 0; i < 5; i++)
			kheap_free(v[i]);
	}
	CHECK(HEAP_OK());
}

/* A freed dedicated chunk is kept and reused: same physical memory, still
 * contiguous and true, zero again through calloc; the pool comes back
 * whole before any ENOMEM (test_exhaustion_recovery, which runs later). */
static void test_chunk_cache(void)
{
	size_t n = st0.arena_size - st0.arena_size / 8;	/* dedicated */
	size_t m = st0.arena_size - st0.arena_size / 4;	/* fits in it */
	struct kheap_stats a, b;
	unsigned char *p, *q;
	uint64_t ph;
	size_t j;

	p = kheap_malloc(n);
	CHECK(p != NULL);
	if (!p)
		return;
	memset(p, 0xa5, n);
	ph = kheap_phys(p);
	kheap_free(p);
	CHECK(kheap_stats(&a) == 0);
	CHECK(a.chunks_cached >= 1 && a.bytes_chunks_cached >= n);
	q = kheap_calloc(1, m);		/* at most 25 % of the chunk unused */
	CHECK(q == p);
	if (!q)
		return;
	CHECK(kheap_stats(&b) == 0);
	CHECK(b.chunk_reuses == a.chunk_reuses + 1);
	CHECK(b.pool_free == a.pool_free);	/* no kernel call */
	CHECK(restricted || kheap_phys(q) == ph);
	for (j = 0; j < m && !q[j]; j++)
		;
	CHECKF(j == m, "calloc over a reused chunk: byte %zu", j);
	CHECK(phys_true(q, m));
	/* grows in place within the chunk */
	CHECK(kheap_realloc(q, n) == q);
	kheap_free(q);
	CHECK(HEAP_OK());
}

/* Fill the pool until ENOMEM, free everything, get it all back. */
static void test_exhaustion_recovery(void)
{
	struct kheap_stats st;
	size_t cap = 1 << 22, nv = 0;
	void **v = malloc(cap * sizeof(*v));
	void *p;

	CHECK(kheap_stats(&st) == 0);
	errno = 0;
	for (size_t i = 0; nv < cap; i++) {
		size_t n = i % 3 == 0 ? 3000 : i % 3 == 1 ? 100 : 40000;

		p = kheap_malloc(n);
		if (!p)
			break;
		v[nv++] = p;
	}
	CHECK(errno == ENOMEM);
	CHECK(kheap_stats(&st) == 0);
	ktap_diag("exhausted after %zu blocks: %llu bytes in use, %llu held, "
		  "pool %llu, pool free %llu", nv,
		  (unsigned long long)st.bytes_in_use,
		  (unsigned long long)st.bytes_held,
		  (unsigned long long)st.pool_size,
		  (unsigned long long)st.pool_free);
	CHECK(st.bytes_in_use >= st0.pool_free / 10 * 8);
	CHECK(HEAP_OK());
	while (nv)
		kheap_free(v[--nv]);
	free(v);
	/* The largest extent there was at the start is there again. */
	p = kheap_malloc(st0.largest_free);
	CHECKF(p != NULL, "malloc(%llu) after freeing all: %s",
	       (unsigned long long)st0.largest_free, strerror(errno));
	if (p)
		CHECK(phys_true(p, st0.largest_free));
	kheap_free(p);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_in_use == 0);
	CHECK(HEAP_OK());
}

/*
 * fork: private by default.  Blocks of every kind (slab, TLSF, dedicated
 * chunk) are filled; after fork() each side changes them and the other
 * must not see it; the child frees, reallocates and allocates; both
 * sides' kheap_phys answers the pagemap, the child's being its copy's.
 */
#define NFB 6
static const size_t fork_sizes[NFB] = { 24, 200, 5000, 60000, 300000,
					3 * MIB };

static void fill_seed(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i += 64)
		p[i] = (unsigned char)(seed + i / 64);
	p[n - 1] = (unsigned char)seed;
}

static int holds_seed(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i += 64)
		if (p[i] != (unsigned char)(seed + i / 64))
			return 0;
	return p[n - 1] == (unsigned char)seed;
}

static void reopen_pagemap(void)
{
	/* /proc/self was resolved when the parent opened it. */
	close(pm_fd);
	pm_fd = open("/proc/self/pagemap", O_RDONLY);
}

/* The child's side: 0, or the line of the first failed check. */
static int fork_child_side(unsigned char **b, const uint64_t *ph)
{
	unsigned char *v[64];

	reopen_pagemap();
	for (int i = 0; i < NFB; i++) {
		if (!holds_seed(b[i], fork_sizes[i], 0x10 + i))
			return __LINE__;
		/* Its own copy: true, contiguous, not the parent's. */
		if (!phys_true(b[i], fork_sizes[i]))
			return __LINE__;
		if (phys_checkable && !restricted && kheap_phys(b[i]) == ph[i])
			return __LINE__;
		fill_seed(b[i], fork_sizes[i], 0x40 + i);
	}
	for (int i = 0; i < 64; i++) {
		size_t n = (size_t)(i % 4 ? 100 + 37 * i : 200000);

		v[i] = kheap_malloc(n);
		if (!v[i] || !phys_true(v[i], n))
			return __LINE__;
	}
	kheap_free(b[0]);
	b[1] = kheap_realloc(b[1], 100000);
	if (!b[1] || !holds_seed(b[1], fork_sizes[1], 0x41) ||
	    !phys_true(b[1], 100000))
		return __LINE__;
	b[5] = kheap_realloc(b[5], 5 * MIB);
	if (!b[5] || !holds_seed(b[5], fork_sizes[5], 0x45) ||
	    !phys_true(b[5], 5 * MIB))
		return __LINE__;
	for (int i = 0; i < 64; i++)
		kheap_free(v[i]);
	for (int i = 1; i < NFB; i++)
		kheap_free(b[i]);
	return HEAP_OK() ? 0 : __LINE__;
}

static void test_fork(void)
{
	unsigned char *b[NFB];
	struct kheap_stats before, after;
	uint64_t ph[NFB];
	int status = -1, go[2];
	pid_t pid;
	char c = 0;

	for (int i = 0; i < NFB; i++) {
		b[i] = kheap_malloc(fork_sizes[i]);
		CHECK(b[i] != NULL);
		if (!b[i])
			return;
		fill_seed(b[i], fork_sizes[i], 0x10 + i);
		ph[i] = kheap_phys(b[i]);
	}
	CHECK(kheap_stats(&before) == 0);

	/* The child changes everything; the parent sees none of it. */
	pid = fork();
	if (pid == 0)
		_exit(fork_child_side(b, ph));
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "child status %#x (a check at line %d)", status,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 0);
	for (int i = 0; i < NFB; i++) {
		CHECKF(holds_seed(b[i], fork_sizes[i], 0x10 + i), "block %d", i);
		CHECK(phys_true(b[i], fork_sizes[i]));
		CHECK(!phys_checkable || restricted || kheap_phys(b[i]) == ph[i]);
	}

	/* The parent changes everything; the child's view stays. */
	CHECK(pipe(go) == 0);
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		reopen_pagemap();
		for (int i = 0; i < NFB; i++)
			bad |= !holds_seed(b[i], fork_sizes[i], 0x10 + i) ||
			       !phys_true(b[i], fork_sizes[i]);
		_exit(bad);
	}
	close(go[0]);
	for (int i = 0; i < NFB; i++)
		fill_seed(b[i], fork_sizes[i], 0x70 + i);
	CHECK(write(go[1], &c, 1) == 1);
	close(go[1]);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %#x",
	       status);
	for (int i = 0; i < NFB; i++)
		CHECK(holds_seed(b[i], fork_sizes[i], 0x70 + i));

	/* Every copy went back with the children. */
	CHECK(kheap_stats(&after) == 0);
	CHECKF(after.pool_free == before.pool_free,
	       "pool free %llu before fork, %llu after the children exited",
	       (unsigned long long)before.pool_free,
	       (unsigned long long)after.pool_free);
	for (int i = 0; i < NFB; i++)
		kheap_free(b[i]);
	CHECK(HEAP_OK());
}

/* kheap_malloc_shared: writes cross fork() in both directions. */
static void test_fork_shared(void)
{
	unsigned char *s = kheap_malloc_shared(3 * 4096);
	uint64_t ps = kheap_phys(s);
	int go[2], back[2], status = -1;
	pid_t pid;
	char c = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	fill_seed(s, 3 * 4096, 0x21);
	CHECK(pipe(go) == 0 && pipe(back) == 0);
	pid = fork();
	if (pid == 0) {
		int bad;

		reopen_pagemap();
		bad = !holds_seed(s, 3 * 4096, 0x21) || !phys_true(s, 3 * 4096);
		bad |= phys_checkable && !restricted && kheap_phys(s) != ps;
		fill_seed(s, 4096, 0x22);
		if (write(back[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		bad |= !holds_seed(s + 4096, 4096, 0x23);
		kheap_free(s);	/* the child's mapping only */
		_exit(bad);
	}
	CHECK(read(back[0], &c, 1) == 1);
	CHECK(holds_seed(s, 4096, 0x22));
	fill_seed(s + 4096, 4096, 0x23);
	CHECK(write(go[1], &c, 1) == 1);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %#x",
	       status);
	CHECK(s[2 * 4096] == (unsigned char)(0x21 + 2 * 4096 / 64));
	kheap_free(s);
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
	CHECK(HEAP_OK());
}

/*
 * fork() while two threads allocate, then the child exits or execs, many
 * times over: the child's copies come and go, the pool's accounting
 * returns exactly, and the parent's heap is intact.
 */
static int fork_stop;

static void *fork_spinner(void *arg)
{
	unsigned x = (unsigned)(uintptr_t)arg;

	while (!__atomic_load_n(&fork_stop, __ATOMIC_RELAXED)) {
		size_t n = (x = x * 1103515245u + 12345u) % 100000 + 1;
		unsigned char *p = kheap_malloc(n);

		if (p) {
			p[0] = p[n - 1] = 1;
			kheap_free(p);
		}
	}
	return NULL;
}

/* KHEAP_FORK_LOOPS: fewer forks on a slow (debug) kernel; default 1000. */
static int fork_loops(void)
{
	const char *s = getenv("KHEAP_FORK_LOOPS");
	int n = s ? atoi(s) : 1000;

	return n > 0 ? n : 1000;
}

static void test_fork_loop(void)
{
	unsigned char *keep = kheap_malloc(200000);
	int loops = fork_loops();
	struct kheap_stats before, after;
	pthread_t t[2];
	int bad = 0;

	CHECK(keep != NULL);
	if (!keep)
		return;
	fill_seed(keep, 200000, 0x33);
	CHECK(kheap_stats(&before) == 0);
	fork_stop = 0;
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, fork_spinner, (void *)(i + 5));
	for (int i = 0; i < loops && !bad; i++) {
		int status = -1;
		pid_t pid = fork();

		if (pid == 0) {
			if (i % 2)
				execl("/bin/true", "true", (char *)NULL);
			/* (or no /bin/true:) the child's heap works */
			unsigned char *p = kheap_malloc(1000);

			_exit(!p || !holds_seed(keep, 200000, 0x33));
		}
		keep[64 * (i % 100)] ^= 0;	/* the parent writes meanwhile */
		bad |= pid < 0 || waitpid(pid, &status, 0) != pid ||
		       !WIFEXITED(status) || WEXITSTATUS(status);
	}
	__atomic_store_n(&fork_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(!bad);
	CHECK(holds_seed(keep, 200000, 0x33));
	kheap_free(keep);
	CHECK(kheap_stats(&after) == 0);
	/* The spinners' caches may hold chunks; the pool's view of this
	 * process is what counts: nothing held by the children remains. */
	CHECKF(after.pool_free + after.bytes_held ==
	       before.pool_free + before.bytes_held,
	       "pool free %llu + held %llu before, %llu + %llu after",
	       (unsigned long long)before.pool_free,
	       (unsigned long long)before.bytes_held,
	       (unsigned long long)after.pool_free,
	       (unsigned long long)after.bytes_held);
	CHECK(HEAP_OK());
}

#define NTHREADS 8
static unsigned char *volatile handoff[64];
static int thread_errors;

static void *worker(void *arg)
{
	struct rng r = { (unsigned long long)(uintptr_t)arg * 31 + 7 };
	unsigned char *v[64] = { 0 };

	for (int op = 0; op < 20000; op++) {
		unsigned i = (unsigned)rng_below(&r, 64);

		if (v[i]) {
			size_t n = kheap_malloc_usable_size(v[i]);

			if (v[i][0] != (unsigned char)i ||
			    (!restricted && kheap_phys(v[i] + n - 1) !=
			     kheap_phys(v[i]) + n - 1))
				__atomic_fetch_add(&thread_errors, 1,
						   __ATOMIC_RELAXED);
			if (op % 3 == 0) {
				/* hand it to another thread to free */
				v[i] = __atomic_exchange_n(&handoff[i], v[i],
							   __ATOMIC_ACQ_REL);
				if (v[i])
					v[i][0] = (unsigned char)i;
				continue;
			}
			kheap_free(v[i]);
			v[i] = NULL;
		} else {
			size_t n = rng_logu(&r, 1, op % 97 ? 20000 : 2 * MIB);

			v[i] = kheap_malloc(n);
			if (v[i]) {
				v[i][0] = (unsigned char)i;
				if (op % 500 == 0 && pm_ok && !phys_true(v[i], n))
					__atomic_fetch_add(&thread_errors, 1,
							   __ATOMIC_RELAXED);
			}
		}
	}
	for (int i = 0; i < 64; i++)
		kheap_free(v[i]);
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[NTHREADS];
	struct kheap_stats st;

	for (uintptr_t i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 64; i++) {
		kheap_free(handoff[i]);
		handoff[i] = NULL;
	}
	CHECK(thread_errors == 0);
	CHECK(kheap_stats(&st) == 0);
	CHECKF(st.bytes_in_use == 0, "%llu bytes still in use",
	       (unsigned long long)st.bytes_in_use);
	CHECK(HEAP_OK());
}

/*
 * kheap_export(): kheap_aligned_alloc(page, n) blocks, arena-sized and
 * dedicated, as dma-bufs: the same bytes both ways through the dma-buf's
 * mapping, the same physical pages, the size, the sync ioctl; the memory
 * outlives kheap_free() while the dma-buf holds it.  A pool that cannot
 * export (reserved) says EOPNOTSUPP.
 */
static void test_export(void)
{
	const size_t sizes[] = { (size_t)page, 16 * (size_t)page, 3 * MIB };

	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = kheap_aligned_alloc(page, n), *d;
		struct dma_buf_sync sync = {
			.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
		};
		int fd;

		CHECK(p != NULL);
		if (!p)
			return;
		for (size_t j = 0; j < n; j++)
			p[j] = (unsigned char)(j * 7 + i);
		fd = kheap_export(p, n, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == EOPNOTSUPP) {
			ktap_diag("this pool does not export (reserved?)");
			kheap_free(p);
			return;
		}
		CHECKF(fd >= 0, "kheap_export(%zu): %s", n, strerror(errno));
		if (fd < 0) {
			kheap_free(p);
			return;
		}
		CHECK(lseek(fd, 0, SEEK_END) == (off_t)n);
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		d = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(d != MAP_FAILED);
		if (d == MAP_FAILED) {
			close(fd);
			kheap_free(p);
			return;
		}
		CHECK(ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) == 0);
		CHECK(memcmp(d, p, n) == 0);
		d[n - 1] ^= 0xff;
		CHECK(p[n - 1] == (unsigned char)~((n - 1) * 7 + i));
		sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
		CHECK(ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) == 0);
		if (pm_ok) {
			CHECK(pagemap_phys(d) == kheap_phys(p));
			CHECK(pagemap_phys(d + n - 1) == kheap_phys(p + n - 1));
		}
		/* A sub-range: the last page. */
		close(fd);
		fd = kheap_export(p + n - page, page, O_RDONLY);
		CHECK(fd >= 0);
		/* The block goes back to the library; the dma-buf keeps the
		 * kernel's pages (they may be handed out again by the
		 * library, so only the mapping's existence is checked). */
		kheap_free(p);
		if (fd >= 0) {
			unsigned char *r = mmap(NULL, page, PROT_READ,
						MAP_SHARED, fd, 0);

			CHECK(r != MAP_FAILED);
			if (r != MAP_FAILED)
				munmap(r, page);
			close(fd);
		}
		munmap(d, n);
	}
	errno = 0;
	CHECK(kheap_export(&errno, (size_t)page, O_RDWR) == -1 &&
	      errno == EINVAL);
	CHECK(HEAP_OK());
}

int main(void)
{
	const char *dev = getenv("KHEAP_DEVICE");
	void *p;

	if (!dev || !*dev)
		dev = "/dev/kheap";
	if (access(dev, F_OK))
		ktap_skip_all("no kheap device (module not loaded?)");
	page = sysconf(_SC_PAGESIZE);
	p = kheap_malloc(1);
	if (!p) {
		printf("TAP version 13\n1..1\nnot ok 1 first_malloc # %s\n",
		       strerror(errno));
		printf("# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0\n");
		return KSFT_FAIL;
	}
	kheap_free(p);
	kheap_stats(&st0);
	pm_fd = open("/proc/self/pagemap", O_RDONLY);
	{
		unsigned char *q = kheap_malloc(100);

		q[0] = 1;
		errno = 0;
		restricted = kheap_phys(q) == 0 && errno == EPERM;
		pm_ok = !restricted && pm_fd >= 0 && pagemap_phys(q) != 0;
		phys_checkable = pm_ok || restricted;
		kheap_free(q);
	}
	ktap_plan(13);
	ktap_diag("device %s: pool %llu bytes, arena %llu, pool free %llu, "
		  "largest free %llu, pagemap %s", dev,
		  (unsigned long long)st0.pool_size,
		  (unsigned long long)st0.arena_size,
		  (unsigned long long)st0.pool_free,
		  (unsigned long long)st0.largest_free,
		  pm_ok ? "readable" : "not readable (need CAP_SYS_ADMIN)");
	ktap_num++;
	if (pm_ok) {
		ktap_pass++;
		printf("ok %d pagemap_available\n", ktap_num);
	} else {
		ktap_skip++;
		printf("ok %d pagemap_available # SKIP %s\n", ktap_num,
		       restricted ? "physical addresses restricted" :
		       "not root");
	}
	RUN(test_realloc_in_place);
	/* These two test physical truth and nothing else. */
	if (phys_checkable) {
		RUN(test_phys_truth_random);
		RUN(test_contiguity_large);
	} else {
		ktap_skip_case("test_phys_truth_random",
			       "pagemap not readable (not root)");
		ktap_skip_case("test_contiguity_large",
			       "pagemap not readable (not root)");
		ktap_diag("physical addresses unverifiable: the other cases "
			  "check contents and mappings only");
	}
	RUN(test_realloc_moves);
	RUN(test_calloc);
	RUN(test_chunk_cache);
	RUN(test_exhaustion_recovery);
	RUN(test_fork);
	RUN(test_fork_shared);
	RUN(test_fork_loop);
	RUN(test_threads);
	RUN(test_export);
	return ktap_finish();
}
