// SPDX-License-Identifier: MIT
/*
 * test_sync.c - kheap_sync() over the region provider, which records what
 * it was asked: the chunk and the offset inside it for blocks of every
 * kind, ranges up to the chunk's last byte and one beyond, errno per
 * misuse, and fork children (a private inherited block is adopted first,
 * a shared one is the parent's business).  The kernel side
 * (KHEAP_IOC_SYNC) is exercised in guests through the Python binding.
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
#define REGION_PAGE	4096u

static void use_region(size_t pool)
{
	int err = kheap__use_provider(kheap_region_provider(pool, FAKE_PHYS));

	if (err) {
		printf("# region provider failed: %d\n", err);
		exit(1);
	}
}

static const struct chunk *chunk_of(const void *p)
{
	return kh.owner[gran_of((uintptr_t)p)];
}

/* The provider saw exactly [p, p + n) of p's chunk, with these flags. */
static int synced(const void *p, size_t n, int flags, unsigned long before)
{
	const struct kheap_region_sync *s = &kheap__region_last_sync;
	const struct chunk *ch = chunk_of(p);

	return s->count == before + 1 && s->token == ch->c.token &&
	       s->off == (uintptr_t)p - ch->start && s->len == n &&
	       s->flags == (unsigned int)flags &&
	       /* the region's token is its pool offset plus one page */
	       s->token - REGION_PAGE + s->off == (uintptr_t)p - khm.base;
}

static void test_blocks_of_every_kind(void)
{
	static const size_t sizes[] = { 1, 24, 1000, 5000, 70000, 300000,
					3 * MIB, 9 * MIB };
	unsigned long n0;
	char *p;

	use_region(64 * MIB);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		p = kheap_malloc(n);
		CHECK(p != NULL);
		if (!p)
			continue;
		n0 = kheap__region_last_sync.count;
		CHECK(kheap_sync(p, n, KHEAP_SYNC_FOR_DEVICE) == 0);
		CHECKF(synced(p, n, KHEAP_SYNC_FOR_DEVICE, n0), "size %zu", n);
		n0 = kheap__region_last_sync.count;
		CHECK(kheap_sync(p + n / 2, n - n / 2, KHEAP_SYNC_FOR_CPU) == 0);
		CHECKF(synced(p + n / 2, n - n / 2, KHEAP_SYNC_FOR_CPU, n0),
		       "second half of %zu", n);
		kheap_free(p);
	}
	CHECK(kheap__check() == 0);
}

static void test_chunk_bounds(void)
{
	const struct chunk *ch;
	unsigned long n0;
	size_t left;
	char *p;

	use_region(64 * MIB);
	p = kheap_malloc(3 * MIB + 5);	/* a dedicated chunk */
	CHECK(p != NULL);
	if (!p)
		return;
	ch = chunk_of(p);
	left = ch->start + ch->c.size - (uintptr_t)p;
	n0 = kheap__region_last_sync.count;
	/* Up to the chunk's last byte: fine; one more: not. */
	CHECK(kheap_sync(p, left, KHEAP_SYNC_FOR_DEVICE) == 0);
	CHECK(synced(p, left, KHEAP_SYNC_FOR_DEVICE, n0));
	errno = 0;
	CHECK(kheap_sync(p, left + 1, KHEAP_SYNC_FOR_DEVICE) == -1 &&
	      errno == EINVAL);
	errno = 0;
	CHECK(kheap_sync(p + left - 1, 2, KHEAP_SYNC_FOR_CPU) == -1 &&
	      errno == EINVAL);
	CHECK(kheap_sync(p + left - 1, 1, KHEAP_SYNC_FOR_CPU) == 0);
	/* Lengths that wrap the address space. */
	errno = 0;
	CHECK(kheap_sync(p, SIZE_MAX, KHEAP_SYNC_FOR_CPU) == -1 &&
	      errno == EINVAL);
	errno = 0;
	CHECK(kheap_sync(p + 1, SIZE_MAX, KHEAP_SYNC_FOR_CPU) == -1 &&
	      errno == EINVAL);
	kheap_free(p);
}

static void test_errors(void)
{
	char stack_byte = 0, *p, *big;
	unsigned long n0;

	use_region(64 * MIB);
	p = kheap_malloc(100);
	CHECK(p != NULL);
	n0 = kheap__region_last_sync.count;
	static const int bad_flags[] = { 0, 3, 4, 8, -1,
					 KHEAP_SYNC_FOR_DEVICE | 4 };
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		errno = 0;
		CHECKF(kheap_sync(p, 1, bad_flags[i]) == -1 && errno == EINVAL,
		       "flags %d", bad_flags[i]);
	}
	errno = 0;
	CHECK(kheap_sync(&stack_byte, 1, KHEAP_SYNC_FOR_CPU) == -1 &&
	      errno == EINVAL);
	errno = 0;
	CHECK(kheap_sync(NULL, 1, KHEAP_SYNC_FOR_CPU) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_sync(NULL, 0, KHEAP_SYNC_FOR_CPU) == -1 && errno == EINVAL);
	/* Length 0 checks the pointer and asks the provider nothing. */
	CHECK(kheap_sync(p, 0, KHEAP_SYNC_FOR_DEVICE) == 0);
	CHECK(kheap__region_last_sync.count == n0);
	/* A dedicated chunk handed back (or parked in the chunk cache) is
	 * no longer this process's memory to sync. */
	big = kheap_malloc(9 * MIB);
	CHECK(big != NULL);
	CHECK(kheap_sync(big, 9 * MIB, KHEAP_SYNC_FOR_DEVICE) == 0);
	kheap_free(big);
	errno = 0;
	CHECK(kheap_sync(big, 1, KHEAP_SYNC_FOR_DEVICE) == -1 &&
	      errno == EINVAL);
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

/* Before the heap has any memory, nothing is kheap memory. */
static void test_before_first_use(void)
{
	char x = 0;

	kheap__reset();
	errno = 0;
	CHECK(kheap_sync(&x, 1, KHEAP_SYNC_FOR_DEVICE) == -1 &&
	      errno == EINVAL);
}

static void test_fork_child(void)
{
	char *priv, *shared;
	pid_t pid;
	int st;

	use_region(64 * MIB);
	priv = kheap_malloc(3 * MIB);
	shared = kheap_malloc_shared(70000);
	CHECK(priv && shared);
	if (!priv || !shared)
		return;
	pid = fork();
	if (pid == 0) {
		unsigned long n0 = kheap__region_last_sync.count;
		int bad = 0;

		/* Shared: still the parent's chunk, nothing to do here. */
		bad |= kheap_sync(shared, 70000, KHEAP_SYNC_FOR_DEVICE) != 0;
		bad |= kheap__region_last_sync.count != n0;
		/* Private: adopted, then synced as the child's own. */
		bad |= chunk_of(priv)->c.inherited != 1;
		bad |= kheap_sync(priv, 4096, KHEAP_SYNC_FOR_CPU) != 0;
		bad |= chunk_of(priv)->c.inherited != 0;
		bad |= !synced(priv, 4096, KHEAP_SYNC_FOR_CPU, n0);
		_exit(bad);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	kheap_free(priv);
	kheap_free(shared);
}

int main(void)
{
	ktap_plan(5);
	RUN(test_blocks_of_every_kind);
	RUN(test_chunk_bounds);
	RUN(test_errors);
	RUN(test_before_first_use);
	RUN(test_fork_child);
	return ktap_finish();
}
