// SPDX-License-Identifier: MIT
/*
 * test_resize.c - realloc of dedicated blocks in place (resize.c), over
 * the region provider: growth extends the chunk into the free pool pages
 * after it without moving a byte, and moves only when they are taken; a
 * large enough shrink gives the tail back to the pool, which hands it to
 * the next chunk, zeroed; nothing is resized while devices are attached,
 * for shared chunks, or for a fork child's inherited chunks.  The kernel
 * side (KHEAP_IOC_SHRINK/EXTEND) is tested in guests (kheap_resize_test
 * and userlib/tests/guest_kheap.c).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ktap.h"

#define FAKE_PHYS	0x140000000ull
#define MIB		((size_t)1 << 20)

static void use_region(size_t pool)
{
	int err = kheap__use_provider(kheap_region_provider(pool, FAKE_PHYS));

	if (err) {
		printf("# region provider failed: %d\n", err);
		exit(1);
	}
}

static void fill(void *p, size_t n, unsigned int seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < n / 8; i++)
		w[i] = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
}

static int intact(const void *p, size_t n, unsigned int seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < n / 8; i++)
		if (w[i] != ((i + 1) * 0x9e3779b97f4a7c15ull ^ seed))
			return 0;
	return 1;
}

static int all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

static struct kheap_stats stats(void)
{
	struct kheap_stats st;

	if (kheap_stats(&st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/*
 * A fresh provider of @pool bytes and a 40 MiB dedicated block on it,
 * filled from @seed (0: left as the kernel gave it); NULL, counted as a
 * failure, if the block cannot be had.
 */
static char *fresh_block(size_t pool, unsigned int seed)
{
	char *p;

	use_region(pool);
	p = kheap_malloc(40 * MIB);
	CHECK(p != NULL);
	if (p && seed)
		fill(p, 40 * MIB, seed);
	return p;
}

static const struct chunk *chunk_of(const void *p)
{
	return kh.owner[gran_of((uintptr_t)p)];
}

/* Growth into free pool pages: same address, bytes kept, held exact. */
static void test_grow_in_place(void)
{
	struct kheap_stats a, b;
	char *p, *q;

	p = fresh_block(256 * MIB, 1);
	if (!p)
		return;
	a = stats();
	q = kheap_realloc(p, 100 * MIB);
	CHECK(q == p);
	b = stats();
	CHECK(intact(q, 40 * MIB, 1));
	CHECK(all_zero(q + 40 * MIB, 60 * MIB));
	CHECKF(b.bytes_held == a.bytes_held + 60 * MIB, "held %llu -> %llu",
	       (unsigned long long)a.bytes_held,
	       (unsigned long long)b.bytes_held);
	CHECK(b.pool_free == a.pool_free - 60 * MIB);
	CHECK(b.chunks_held == a.chunks_held);
	CHECK(chunk_of(q)->c.size == 100 * MIB);
	CHECK(kheap_malloc_usable_size(q) == 100 * MIB);
	memset(q + 40 * MIB, 7, 60 * MIB);
	CHECK(kheap__check() == 0);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

/* The pages after are another chunk's: the block moves, bytes kept. */
static void test_grow_blocked_moves(void)
{
	char *p, *q, *r;

	use_region(256 * MIB);
	p = kheap_malloc(20 * MIB);
	q = kheap_malloc(20 * MIB);
	CHECK(p && q);
	if (!p || !q)
		return;
	CHECK(q == p + 20 * MIB);
	fill(p, 20 * MIB, 2);
	r = kheap_realloc(p, 30 * MIB);
	CHECK(r != NULL && r != p);
	CHECK(r && intact(r, 20 * MIB, 2));
	/* Once q is gone, the moved block grows in place again. */
	kheap_free(q);
	p = kheap_realloc(r, 60 * MIB);
	CHECK(p == r);
	CHECK(p && intact(p, 20 * MIB, 2));
	CHECK(kheap__check() == 0);
	kheap_free(p);
}

/* 40 MiB -> 5 MiB keeps 5 MiB; the tail goes to the next chunk, zeroed. */
static void test_shrink_gives_back(void)
{
	struct kheap_stats a, b;
	char *p, *q, *r;

	/* Arenas of 8 MiB: 5 MiB is still a dedicated block. */
	p = fresh_block(64 * MIB, 3);
	if (!p)
		return;
	a = stats();
	q = kheap_realloc(p, 5 * MIB);
	b = stats();
	CHECK(q == p);
	CHECK(intact(q, 5 * MIB, 3));
	CHECKF(b.bytes_held == a.bytes_held - 35 * MIB, "held %llu -> %llu",
	       (unsigned long long)a.bytes_held,
	       (unsigned long long)b.bytes_held);
	CHECK(b.pool_free == a.pool_free + 35 * MIB);
	CHECK(kheap_malloc_usable_size(q) == 5 * MIB);
	CHECK(b.bytes_in_use == a.bytes_in_use - 35 * MIB);
	CHECK(kheap__check() == 0);
	/* The next dedicated chunk lands in the freed tail, zeroed. */
	r = kheap_malloc(30 * MIB);
	CHECK(r == q + 5 * MIB);
	CHECK(r && all_zero(r, 30 * MIB));
	CHECK(intact(q, 5 * MIB, 3));
	kheap_free(r);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

/* A small cut is not worth a system call: the chunk stays whole. */
static void test_small_shrink_keeps_chunk(void)
{
	struct kheap_stats a, b;
	char *p, *q;

	p = fresh_block(256 * MIB, 0);
	if (!p)
		return;
	a = stats();
	q = kheap_realloc(p, 39 * MIB);
	b = stats();
	CHECK(q == p);
	CHECK(b.bytes_held == a.bytes_held);
	CHECK(chunk_of(q)->c.size == 40 * MIB);
	/* Growing back needs no extension either. */
	CHECK(kheap_realloc(q, 40 * MIB) == q);
	CHECK(stats().bytes_held == a.bytes_held);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

/*
 * Doubling from 1 MiB to 128 MiB: the block gets a chunk of its own when
 * it reaches an eighth of an arena (a copy of half that), and then never
 * moves.
 */
static void test_doubling(void)
{
	char *p, *q, *first_huge = NULL;
	size_t n, alone_at = 0;
	int moves = 0;

	use_region(512 * MIB);
	p = kheap_malloc(MIB);
	CHECK(p != NULL);
	if (!p)
		return;
	fill(p, MIB, 4);
	for (n = 2 * MIB; n <= 128 * MIB; n *= 2) {
		q = kheap_realloc(p, n);
		CHECK(q != NULL);
		if (!q)
			break;
		CHECKF(intact(q, MIB, 4), "at %zu MiB", n / MIB);
		if (khm.kind[gran_of((uintptr_t)q)] == K_HUGE) {
			if (!first_huge) {
				first_huge = q;
				alone_at = n;
			} else if (q != p)
				moves++;
		}
		p = q;
	}
	CHECK(first_huge != NULL);
	CHECKF(alone_at == stats().arena_size / 8,
	       "dedicated at %zu MiB, arenas of %llu MiB", alone_at / MIB,
	       (unsigned long long)(stats().arena_size / MIB));
	CHECKF(moves == 0, "%d moves after the block became dedicated",
	       moves);
	CHECK(chunk_of(p)->c.size == 128 * MIB);
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

/* Attached devices map each chunk whole: no resizing while they are. */
static void test_devices_block_resize(void)
{
	struct kheap_stats a;
	char *p, *q;
	int h;

	p = fresh_block(256 * MIB, 0);
	if (!p)
		return;
	h = kheap_attach("fake0");
	CHECK(h >= 0);
	a = stats();
	q = kheap_realloc(p, 20 * MIB);
	CHECK(q == p);
	CHECK(stats().bytes_held == a.bytes_held);
	CHECK(chunk_of(q)->c.size == 40 * MIB);
	p = kheap_realloc(q, 60 * MIB);
	CHECK(p != NULL && p != q);	/* moved, not extended */
	CHECK(kheap_detach(h) == 0);
	a = stats();
	q = kheap_realloc(p, 20 * MIB);
	CHECK(q == p);
	CHECK(stats().bytes_held == a.bytes_held - 40 * MIB);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

/* Shared chunks are never resized (a child maps them too). */
static void test_shared_not_resized(void)
{
	struct kheap_stats a;
	char *p, *q;

	use_region(256 * MIB);
	p = kheap_malloc_shared(40 * MIB);
	CHECK(p != NULL);
	if (!p)
		return;
	a = stats();
	q = kheap_realloc(p, 20 * MIB);
	CHECK(q == p);
	CHECK(stats().bytes_held == a.bytes_held);
	q = kheap_realloc(p, 80 * MIB);
	CHECK(q != NULL && q != p);
	kheap_free(q);
	CHECK(kheap__check() == 0);
}

/* A fork child's inherited chunk is the parent's file's: it moves. */
static void test_fork_child(void)
{
	char *p;
	pid_t pid;
	int st;

	p = fresh_block(256 * MIB, 5);
	if (!p)
		return;
	pid = fork();
	if (pid == 0) {
		struct kheap_stats a = stats();
		char *q = kheap_realloc(p, 20 * MIB);
		int bad = 0;

		bad |= q != p || stats().bytes_held != a.bytes_held;
		q = kheap_realloc(q, 60 * MIB);
		bad |= !q || q == p || !intact(q, 20 * MIB, 5);
		bad |= kheap__check() != 0;
		kheap_free(q);
		_exit(bad);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	/* The parent's block is untouched, and still grows in place. */
	CHECK(intact(p, 40 * MIB, 5));
	CHECK(kheap_realloc(p, 60 * MIB) == p);
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

/* Withheld physical addresses: chunks are placed; growth still works
 * where the window has room. */
static void test_withheld(void)
{
	char *p, *q;
	int err = kheap__use_provider(kheap_region_provider_withheld(256 * MIB));

	CHECK(err == 0);
	if (err)
		return;
	p = kheap_malloc(40 * MIB);
	CHECK(p != NULL);
	if (!p)
		return;
	fill(p, 40 * MIB, 6);
	q = kheap_realloc(p, 20 * MIB);
	CHECK(q == p && intact(q, 20 * MIB, 6));
	CHECK(stats().bytes_held == 20 * MIB);
	p = kheap_realloc(q, 100 * MIB);
	CHECK(p == q && intact(p, 20 * MIB, 6));
	CHECK(stats().bytes_held == 100 * MIB);
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

int main(void)
{
	ktap_plan(9);
	RUN(test_grow_in_place);
	RUN(test_grow_blocked_moves);
	RUN(test_shrink_gives_back);
	RUN(test_small_shrink_keeps_chunk);
	RUN(test_doubling);
	RUN(test_devices_block_resize);
	RUN(test_shared_not_resized);
	RUN(test_fork_child);
	RUN(test_withheld);
	return ktap_finish();
}
