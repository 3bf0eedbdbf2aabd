// SPDX-License-Identifier: MIT
/*
 * test_preload.c - the malloc family as libkheap-preload.so serves it.
 *
 * Built without libkheap and run with LD_PRELOAD: on the host over the
 * region provider (build/tests/libkheap-preload-region.so), in a guest
 * over /dev/kheap (libkheap-preload.so).  kheap_phys and kheap_stats are
 * found with dlsym, i.e. in the preload: a block is kheap's exactly when
 * kheap_phys knows it.  With KHEAP_PRELOAD_FALLBACK=1 in the environment
 * the exhaustion case expects glibc's blocks instead of NULL.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ktap.h"

/* glibc's own allocator: blocks the preload did not make. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

/* struct kheap_stats as far as used here (kheap.h, ABI-stable). */
struct stats_head {
	uint64_t bytes_in_use, bytes_cached, peak_in_use, bytes_held;
	uint64_t chunks_held, peak_held, failed_requests, largest_free;
	uint64_t pool_size, pool_free, arena_size;
	uint64_t more[6];
};

static uint64_t (*k_phys)(const void *p);
static int (*k_stats)(struct stats_head *st);
static int fallback;

#define MIB ((size_t)1 << 20)

static int ours(const void *p)
{
	return p && k_phys(p) != 0;
}

static int aligned_to(const void *p, size_t a)
{
	return !((uintptr_t)p & (a - 1)) && !(k_phys(p) & (a - 1));
}

/* Every function of the family hands out kheap memory, aligned as asked,
 * at least as large as asked, and realloc keeps contents. */
static void family_is_kheap(void)
{
	static const size_t sizes[] = { 0, 1, 16, 100, 1024, 1025, 4096,
					65536, 200000, 3 * MIB, 20 * MIB };
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *p, *q;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		p = malloc(n);
		CHECKF(ours(p) && aligned_to(p, 16), "malloc(%zu)", n);
		CHECK(malloc_usable_size(p) >= n);
		memset(p, 0x5a, n);
		q = realloc(p, 2 * n + 1);
		CHECKF(ours(q), "realloc(%zu)", 2 * n + 1);
		for (size_t j = 0; q && j < n; j++)
			if (((unsigned char *)q)[j] != 0x5a) {
				CHECKF(0, "realloc lost byte %zu of %zu", j, n);
				break;
			}
		free(q);
		p = calloc(1, n);
		CHECKF(ours(p), "calloc(%zu)", n);
		free(p);
		p = valloc(n);
		CHECKF(ours(p) && aligned_to(p, pg), "valloc(%zu)", n);
		free(p);
		p = pvalloc(n);
		CHECKF(ours(p) && aligned_to(p, pg) &&
		       malloc_usable_size(p) >= (n + pg - 1) / pg * pg,
		       "pvalloc(%zu)", n);
		free(p);
	}
	for (size_t a = 32; a <= 4 * MIB; a <<= 1) {
		p = memalign(a, 100);
		CHECKF(ours(p) && aligned_to(p, a), "memalign(%zu)", a);
		free(p);
		p = aligned_alloc(a, 3 * a);
		CHECKF(ours(p) && aligned_to(p, a), "aligned_alloc(%zu)", a);
		free(p);
		p = NULL;
		CHECK(posix_memalign(&p, a, a + 1) == 0);
		CHECKF(ours(p) && aligned_to(p, a), "posix_memalign(%zu)", a);
		free(p);
	}
	p = reallocarray(NULL, 1000, 8);
	CHECK(ours(p) && malloc_usable_size(p) >= 8000);
	free(p);
}

/* The C library's own allocations (through the interposed symbols). */
static void libc_internal_blocks(void)
{
	char *s = strdup("contiguous"), *line = NULL, *buf = NULL;
	size_t cap = 0, len = 0;
	FILE *f;

	CHECK(ours(s) && !strcmp(s, "contiguous"));
	free(s);
	CHECK(asprintf(&s, "%d %s", 42, "bytes") == 8 && ours(s));
	free(s);
	f = open_memstream(&buf, &len);
	CHECK(f != NULL);
	for (int i = 0; f && i < 10000; i++)
		fprintf(f, "line %d\n", i);
	if (f)
		fclose(f);
	CHECK(ours(buf) && len == 98890);
	f = fmemopen(buf, len, "r");
	CHECK(f && getline(&line, &cap, f) == 7 && !strcmp(line, "line 0\n"));
	CHECK(ours(line));
	if (f)
		fclose(f);
	free(line);
	free(buf);
}

/* Blocks glibc's allocator made: freed, resized and measured by glibc;
 * realloc moves them into kheap. */
static void foreign_blocks(void)
{
	char *p = __libc_malloc(100), *q;

	CHECK(p && !ours(p));
	CHECK(malloc_usable_size(p) >= 100 && malloc_usable_size(p) < 200);
	memset(p, 7, 100);
	q = realloc(p, 5000);
	CHECK(ours(q));
	for (int i = 0; q && i < 100; i++)
		if (q[i] != 7) {
			CHECKF(0, "byte %d lost in the move", i);
			break;
		}
	free(q);
	p = __libc_calloc(10, 10);
	CHECK(p && !ours(p));
	CHECK(realloc(p, 0) == NULL);	/* frees it */
	p = __libc_memalign(4096, 300);
	CHECK(p && !ours(p));
	free(p);
	p = __libc_malloc(3 * MIB);	/* glibc mmaps this one */
	CHECK(p && !ours(p));
	memset(p, 1, 3 * MIB);
	free(p);
	/* gone from glibc's headers and link-time symbols; old programs
	 * still call it */
	void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT,
							    "cfree");

	CHECK(cfree_fn != NULL);
	if (cfree_fn) {
		cfree_fn(__libc_malloc(10));
		cfree_fn(malloc(10));
	}
}

/* C and POSIX details a drop-in must keep. */
static void semantics(void)
{
	void *a = malloc(0), *b = malloc(0), *p;
	/* volatile: the compiler must not see that these overflow */
	volatile size_t half = SIZE_MAX / 2;

	CHECK(ours(a) && ours(b) && a != b);
	free(a);
	free(b);
	free(NULL);
	p = realloc(NULL, 10);
	CHECK(ours(p));
	CHECK(realloc(p, 0) == NULL);
	errno = 0;
	CHECK(calloc(half, 3) == NULL && errno == ENOMEM);
	p = malloc(32);
	errno = 0;
	CHECK(reallocarray(p, half, 3) == NULL && errno == ENOMEM);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
	CHECK(malloc_usable_size(p) >= 32);	/* still ours */
	free(p);
#pragma GCC diagnostic pop
	p = (void *)1;
	CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == (void *)1);
	CHECK(posix_memalign(&p, 4, 10) == EINVAL && p == (void *)1);
	CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == (void *)1);
	p = memalign(24, 10);	/* rounded up to 32, as glibc does */
	CHECK(ours(p) && aligned_to(p, 32));
	free(p);
	p = memalign(1, 10);
	CHECK(ours(p));
	free(p);
	errno = 0;
	CHECK(memalign(half + 2, 10) == NULL && errno == EINVAL);
	/* free keeps errno, even when a whole chunk goes back */
	p = malloc(40 * MIB);
	CHECK(ours(p));
	errno = 12345;
	free(p);
	CHECK(errno == 12345);
	/* calloc over memory a previous block dirtied */
	for (size_t n = 48; n <= 8 * MIB; n *= 4) {
		unsigned char *d = malloc(n), *z;

		memset(d, 0xff, n);
		free(d);
		z = calloc(n, 1);
		CHECK(ours(z));
		for (size_t i = 0; z && i < n; i++)
			if (z[i]) {
				CHECKF(0, "calloc(%zu) byte %zu is %d", n, i, z[i]);
				break;
			}
		free(z);
	}
}

#define NTHREADS 4
#define SLOTS 512
static void *slots[SLOTS];
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static int thread_bad;

/* Blocks change hands between threads: frees from other threads. */
static void *churn(void *arg)
{
	struct rng r = { (uintptr_t)arg * 7919 + 1 };

	for (int i = 0; i < 10000; i++) {
		unsigned s = (unsigned)rng_below(&r, SLOTS);
		size_t n = rng_logu(&r, 1, 256 * 1024);
		void *p = rng_below(&r, 4) ? malloc(n) : calloc(1, n), *old;

		if (!ours(p) || (n <= 1024 && !aligned_to(p, 16)))
			__atomic_store_n(&thread_bad, 1, __ATOMIC_RELAXED);
		if (p)
			*(volatile char *)p = 1;
		pthread_mutex_lock(&slot_lock);
		old = slots[s];
		slots[s] = p;
		pthread_mutex_unlock(&slot_lock);
		if (rng_below(&r, 8) == 0 && old)
			old = realloc(old, n + 1);
		free(old);
	}
	return NULL;
}

static void threads(void)
{
	pthread_t t[NTHREADS];

	for (uintptr_t i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&t[i], NULL, churn, (void *)(i + 1)) == 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	CHECK(!thread_bad);
	for (int i = 0; i < SLOTS; i++) {
		free(slots[i]);
		slots[i] = NULL;
	}
}

/* A fork child frees and resizes what its parent allocated, allocates
 * its own, and exits normally; the parent's blocks are unharmed. */
static void fork_child(void)
{
	char *small = strdup("parent"), *big = malloc(4 * MIB);
	char *foreign = __libc_malloc(64);
	pid_t pid;
	int st = -1;

	memset(big, 'p', 4 * MIB);
	fflush(stdout);		/* the child exits through exit() */
	pid = fork();
	if (pid == 0) {
		char *mine = malloc(1000), *grown;
		int bad = !ours(mine) || strcmp(small, "parent") ||
			  big[4 * MIB - 1] != 'p';

		free(small);
		grown = realloc(big, 8 * MIB);
		bad |= !ours(grown) || grown[4 * MIB - 1] != 'p';
		free(grown);
		free(foreign);
		free(mine);
		exit(bad);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	CHECK(!strcmp(small, "parent") && big[4 * MIB - 1] == 'p');
	free(small);
	free(big);
	free(foreign);
	CHECK(system("exit 3") == 3 << 8);	/* fork and exec */
}

/*
 * The pool runs out: NULL with ENOMEM, or in fallback mode glibc's
 * blocks (for malloc, calloc, realloc and memalign alike); afterwards
 * kheap serves again.
 */
static void exhaustion(void)
{
	struct stats_head st;
	void *blk[1024];
	size_t n = 0, pool;
	void *p, *q;

	CHECK(k_stats(&st) == 0);
	pool = st.pool_size;
	errno = 0;
	p = malloc(pool + MIB);
	if (fallback) {
		CHECK(p && !ours(p));
		if (p)
			memset(p, 3, pool + MIB);
		free(p);
	} else {
		CHECK(!p && errno == ENOMEM);
	}
	/* fill the pool with 1 MiB blocks until kheap has no more */
	while (n < 1024) {
		p = malloc(MIB);
		if (!p || !ours(p))
			break;
		blk[n++] = p;
	}
	CHECKF(n >= pool / MIB / 2 && n < 1024, "%zu blocks of a %zu MiB pool",
	       n, pool >> 20);
	if (fallback) {
		CHECK(p && !ours(p));
		q = calloc(1, MIB);
		CHECK(q && !ours(q));
		free(q);
		q = memalign(4096, MIB);
		CHECK(q && !ours(q) && !((uintptr_t)q & 4095));
		free(q);
		/* a kheap block that cannot grow in kheap moves to glibc */
		memset(blk[0], 9, MIB);
		q = realloc(blk[0], 64 * MIB);
		CHECK(q && !ours(q) && ((char *)q)[MIB - 1] == 9);
		if (q)
			blk[0] = q;
	} else {
		CHECK(!p && errno == ENOMEM);
		errno = 0;
		CHECK(calloc(1, MIB) == NULL && errno == ENOMEM);
		q = NULL;
		CHECK(posix_memalign(&q, 4096, MIB) == ENOMEM && !q);
		q = realloc(blk[0], 64 * MIB);
		CHECK(!q && errno == ENOMEM && ours(blk[0]));
	}
	free(p);
	while (n)
		free(blk[--n]);
	p = malloc(pool / 2);
	CHECK(ours(p));
	free(p);
}

/* malloc_trim(3) reaches kheap_trim: after these blocks are freed, it
 * says it gave memory back, and the process holds less of the pool, with
 * nothing left in its caches (stdio's buffers and other live blocks of
 * the C library stay). */
static void trim_gives_back(void)
{
	struct stats_head before, after;
	void *blk[64];
	int released;

	for (int i = 0; i < 64; i++) {
		blk[i] = malloc((size_t)(i % 8 + 1) * 4096 + 16);
		CHECK(ours(blk[i]));
	}
	for (int i = 0; i < 64; i++)
		free(blk[i]);
	CHECK(k_stats(&before) == 0);
	released = malloc_trim(0);
	CHECK(k_stats(&after) == 0);
	CHECKF(released == 1 && after.bytes_held < before.bytes_held &&
	       after.bytes_cached == 0,
	       "malloc_trim %d, held %llu -> %llu bytes, %llu cached", released,
	       (unsigned long long)before.bytes_held,
	       (unsigned long long)after.bytes_held,
	       (unsigned long long)after.bytes_cached);
}

int main(void)
{
	k_phys = (uint64_t (*)(const void *))dlsym(RTLD_DEFAULT, "kheap_phys");
	k_stats = (int (*)(struct stats_head *))dlsym(RTLD_DEFAULT,
							 "kheap_stats");
	if (!k_phys || !k_stats)
		ktap_skip_all("not run under libkheap-preload.so");
	fallback = getenv("KHEAP_PRELOAD_FALLBACK") &&
		   strcmp(getenv("KHEAP_PRELOAD_FALLBACK"), "0");
	ktap_plan(8);
	RUN(family_is_kheap);
	RUN(libc_internal_blocks);
	RUN(foreign_blocks);
	RUN(semantics);
	RUN(threads);
	RUN(fork_child);
	RUN(exhaustion);
	RUN(trim_gives_back);
	return ktap_finish();
}
