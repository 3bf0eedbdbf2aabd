// SPDX-License-Identifier: MIT
/*
 * test_misuse.c - a double free or a free of anything but a block's start
 * aborts with a clear message on every path (thread cache, slab, TLSF,
 * dedicated chunk, another thread's cache, a fork child's inherited
 * block, realloc), and the integrity checker sees every thread's cache:
 * a block twice in caches, or cached and marked in use.
 *
 * Each misuse runs in a child process that must die of SIGABRT having
 * said the expected words on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ktap.h"
#include "tcache.h"

#define FAKE_PHYS	0x163a50000ull	/* not 1 GiB aligned */
#define MIB		((size_t)1 << 20)

static void use_region(size_t pool)
{
	if (kheap__use_provider(kheap_region_provider(pool, FAKE_PHYS))) {
		printf("# region provider failed\n");
		exit(1);
	}
}

/* Run fn in a child: 1 if it died of SIGABRT saying want on stderr. */
static int aborts(void (*fn)(void), const char *want)
{
	char buf[1024];
	size_t len = 0;
	ssize_t r;
	int pfd[2], status = 0;
	pid_t pid;

	if (pipe(pfd))
		return 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fn();
		_exit(0);	/* the misuse went unnoticed */
	}
	close(pfd[1]);
	while (len < sizeof(buf) - 1 &&
	       (r = read(pfd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT ||
	    !strstr(buf, want)) {
		printf("# status %#x, stderr: %s\n", status, buf);
		return 0;
	}
	return 1;
}

#define DOUBLE	"kheap_free(): double free detected"
#define INVALID	"kheap_free(): invalid pointer"

/* ---- double frees, one per path ---- */

static void df_small_cached(void)
{
	void *p = kheap_malloc(32);

	kheap_free(p);		/* into this thread's cache */
	kheap_free(p);
}

static void df_small_slab(void)
{
	void *p = kheap_malloc(100);

	kheap_free(p);
	kheap__flush_thread_cache();	/* back on its slab's chain */
	kheap_free(p);
}

static void *free_it(void *p)
{
	kheap_free(p);		/* into that thread's cache */
	return NULL;
}

static void df_no_cache_yet(void)
{
	void *p = kheap_malloc(48);
	pthread_t t;

	kheap_free(p);
	/* a thread that never allocated has no cache: the slow path's check */
	pthread_create(&t, NULL, free_it, p);
	pthread_join(t, NULL);
}

static void df_medium_cached(void)
{
	void *p = kheap_malloc(5000);

	kheap_free(p);
	kheap_free(p);
}

static void df_medium_tlsf(void)
{
	void *p = kheap_malloc(5000), *q = kheap_malloc(5000);

	kheap_free(p);
	kheap__flush_thread_cache();	/* free in TLSF, merged */
	kheap_free(p);
	kheap_free(q);
}

static void *nothing(void *arg)
{
	return arg;
}

/* Batches are for processes with threads (tcache.c): start one. */
static void start_a_thread(void)
{
	pthread_t t;

	pthread_create(&t, NULL, nothing, NULL);
	pthread_join(t, NULL);
}

/* A block of a batch refill (tcache.c), freed twice. */
static void df_medium_batch(void)
{
	void *v[4];

	start_a_thread();
	for (int i = 0; i < 4; i++)	/* the second and fourth take batches */
		v[i] = kheap_malloc(3000);
	kheap_free(v[2]);	/* handed out from the second's batch */
	kheap_free(v[2]);
}

/* A block the overflow of its bin gave back to TLSF, freed again. */
static void df_medium_overflow(void)
{
	void *v[40];

	start_a_thread();
	for (int i = 0; i < 40; i++)
		v[i] = kheap_malloc(3000);
	/* 7 cached from the last batch: v[9] overflows the bin of 16 and
	 * its newer half, v[1..8], goes back */
	for (int i = 0; i < 40; i++)
		kheap_free(v[i]);
	kheap_free(v[5]);
}

static void df_large_tlsf(void)
{
	void *p = kheap_malloc(300000);	/* above the thread cache */

	kheap_free(p);
	kheap_free(p);
}

static void df_huge_cached(void)
{
	void *p = kheap_malloc(5 * MIB);	/* dedicated, then cached */

	kheap_free(p);
	kheap_free(p);
}

static void df_huge_released(void)
{
	void *p = kheap_malloc(20 * MIB);	/* too big to cache */

	kheap_free(p);
	kheap_free(p);
}

static void df_small_aligned(void)
{
	void *p = kheap_aligned_alloc(64, 64);

	kheap_free(p);
	kheap_free(p);
}

static void df_other_thread(void)
{
	void *p = kheap_malloc(200), *q = kheap_malloc(3000);
	pthread_t t;

	pthread_create(&t, NULL, free_it, p);
	pthread_join(t, NULL);
	pthread_create(&t, NULL, free_it, q);
	pthread_join(t, NULL);
	kheap_free(q);
}

static void df_realloc_then_free(void)
{
	void *p = kheap_malloc(100), *q = kheap_realloc(p, 5000);

	if (q == p)
		_exit(2);
	kheap_free(q);
	kheap_free(p);		/* realloc freed it */
}

static void *parent_block;

static void df_inherited(void)
{
	/* a fork child's inherited block: freeing it does nothing, twice
	 * is still a bug */
	kheap_free(parent_block);
	kheap_free(parent_block);
}

static void test_double_free(void)
{
	use_region(64 * MIB);
	CHECK(aborts(df_small_cached, DOUBLE));
	CHECK(aborts(df_small_slab, DOUBLE));
	CHECK(aborts(df_no_cache_yet, DOUBLE));
	CHECK(aborts(df_small_aligned, DOUBLE));
	CHECK(aborts(df_medium_cached, DOUBLE));
	CHECK(aborts(df_medium_tlsf, DOUBLE));
	CHECK(aborts(df_medium_batch, DOUBLE));
	CHECK(aborts(df_medium_overflow, DOUBLE));
	CHECK(aborts(df_large_tlsf, DOUBLE));
	CHECK(aborts(df_huge_cached, DOUBLE));
	/* a chunk given back to the kernel is no kheap memory any more */
	CHECK(aborts(df_huge_released, INVALID));
	CHECK(aborts(df_other_thread, DOUBLE));
	CHECK(aborts(df_realloc_then_free, DOUBLE));
	parent_block = kheap_malloc(700);
	CHECK(aborts(df_inherited, DOUBLE));
	kheap_free(parent_block);
	CHECK(kheap__check() == 0);
}

/* ---- frees of what is not a block's start ---- */

static void bad_small_interior(void)
{
	char *p = kheap_malloc(64);

	kheap_free(p + 16);
}

static void bad_small_misaligned(void)
{
	char *p = kheap_malloc(64);

	kheap_free(p + 1);
}

static void bad_slab_header(void)
{
	char *p = kheap_malloc(16);
	uintptr_t frame = (uintptr_t)p & ~(GRANULE - 1);

	kheap_free((void *)(frame + 32));	/* before the first object */
}

static void bad_medium_interior(void)
{
	char *p = kheap_malloc(20000);

	kheap_free(p + 4096);
}

static void bad_huge_interior(void)
{
	char *p = kheap_malloc(6 * MIB);

	kheap_free(p + GRANULE);
}

static void bad_stack(void)
{
	int x;

	kheap_free(&x);
}

static void bad_never_allocated(void)
{
	char *p = kheap_malloc(48);

	kheap_free(p + 48 * 100);	/* a slot of the slab never handed out */
}

static void bad_realloc_freed(void)
{
	void *p = kheap_malloc(300);

	kheap_free(p);
	p = kheap_realloc(p, 600);
	_exit(p ? 3 : 4);
}

static void bad_realloc_interior(void)
{
	char *p = kheap_malloc(3000);

	p = kheap_realloc(p + 32, 6000);
	_exit(p ? 3 : 4);
}

static void test_invalid_free(void)
{
	use_region(64 * MIB);
	CHECK(aborts(bad_small_interior, INVALID));
	CHECK(aborts(bad_small_misaligned, INVALID));
	CHECK(aborts(bad_slab_header, INVALID));
	CHECK(aborts(bad_medium_interior, INVALID));
	CHECK(aborts(bad_huge_interior, INVALID));
	CHECK(aborts(bad_stack, INVALID));
	CHECK(aborts(bad_never_allocated, INVALID));
	CHECK(aborts(bad_realloc_freed, "kheap_realloc(): invalid pointer"));
	CHECK(aborts(bad_realloc_interior, "kheap_realloc(): invalid pointer"));
	/* and nothing of it touched this process's heap */
	CHECK(kheap__check() == 0);
}

/* ---- the checker sees every thread's cache ---- */

static pthread_barrier_t parked, resume;

/* Frees its block into its own cache and waits there. */
static void *park(void *p)
{
	kheap_free(p);
	pthread_barrier_wait(&parked);
	pthread_barrier_wait(&resume);
	return NULL;
}

static int checker_errors(void)
{
	int saved = dup(2), null = open("/dev/null", O_WRONLY), n;

	dup2(null, 2);		/* it describes what it finds: not wanted */
	n = kheap__check();
	dup2(saved, 2);
	close(saved);
	close(null);
	return n;
}

static void test_checker_sees_caches(void)
{
	struct tcache *tc;
	void *p, *q;
	pthread_t t;
	unsigned c = size_class(32);

	use_region(64 * MIB);
	/* twice in this thread's cache */
	p = kheap_malloc(32);
	kheap_free(p);
	tc = kh_tc;
	CHECK(tc && tc->small[c].count >= 1);
	if (!tc)
		return;
	CHECK(kheap__check() == 0);
	tc->small[c].items[tc->small[c].count++] = p;
	CHECK(checker_errors() > 0);
	tc->small[c].count--;
	CHECK(kheap__check() == 0);
	/* cached and marked in use */
	*live_of((uintptr_t)p) = LIVE_USED;
	CHECK(checker_errors() > 0);
	*live_of((uintptr_t)p) = LIVE_FREED;
	/* in a medium bin and marked in use */
	q = kheap_malloc(4000);
	kheap_free(q);
	CHECK(kheap__check() == 0);
	*live_of((uintptr_t)q) = LIVE_USED;
	CHECK(checker_errors() > 0);
	*live_of((uintptr_t)q) = LIVE_FREED;
	/* handed out but marked free: in no cache and not in use */
	q = kheap_malloc(4000);
	*live_of((uintptr_t)q) = LIVE_FREED;
	CHECK(checker_errors() > 0);
	*live_of((uintptr_t)q) = LIVE_USED;
	kheap_free(q);
	CHECK(kheap__check() == 0);

	/* another thread's cache, and the same block in ours */
	pthread_barrier_init(&parked, NULL, 2);
	pthread_barrier_init(&resume, NULL, 2);
	q = kheap_malloc(32);
	pthread_create(&t, NULL, park, q);
	pthread_barrier_wait(&parked);
	CHECK(kheap__check() == 0);
	*live_of((uintptr_t)q) = LIVE_USED;
	CHECK(checker_errors() > 0);
	*live_of((uintptr_t)q) = LIVE_FREED;
	tc->small[c].items[tc->small[c].count++] = q;
	CHECK(checker_errors() > 0);
	tc->small[c].count--;
	CHECK(kheap__check() == 0);
	pthread_barrier_wait(&resume);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&parked);
	pthread_barrier_destroy(&resume);
	CHECK(kheap__check() == 0);
}

int main(void)
{
	ktap_plan(3);
	RUN(test_double_free);
	RUN(test_invalid_free);
	RUN(test_checker_sees_caches);
	return ktap_finish();
}
