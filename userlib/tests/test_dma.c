// SPDX-License-Identifier: MIT
/*
 * test_dma.c - kheap_attach / kheap_dma_addr / kheap_detach bookkeeping
 * over the region provider, whose made-up devices see each chunk at a base
 * of their own (as behind an IOMMU): the contiguity promise per
 * allocation, addresses for blocks allocated before and after attach,
 * handles, errors, threads and fork.  The kernel side is tested in guests.
 */
#include <errno.h>
#include <pthread.h>
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

/* Every byte at stride steps, and the last, is one addition away. */
static int contiguous(const void *p, size_t n, int h)
{
	const char *c = p;
	uint64_t base = kheap_dma_addr(c, h);
	size_t i;

	if (!base)
		return 0;
	for (i = 0; i < n; i += n / 64 + 1)
		if (kheap_dma_addr(c + i, h) != base + i)
			return 0;
	return kheap_dma_addr(c + n - 1, h) == base + n - 1;
}

static void test_before_and_after_attach(void)
{
	static const size_t sizes[] = { 1, 24, 4000, 70000, 300000,
					5 * MIB, 20 * MIB };
	void *old[7], *new[7];
	int h, h2, i;

	use_region(64 * MIB);
	for (i = 0; i < 7; i++)
		CHECK((old[i] = kheap_malloc(sizes[i])) != NULL);
	h = kheap_attach("0000:00:03.0");
	CHECKF(h >= 1, "attach: %d (%s)", h, strerror(errno));
	for (i = 0; i < 7; i++) {
		CHECK((new[i] = kheap_malloc(sizes[i])) != NULL);
		CHECKF(contiguous(old[i], sizes[i], h), "old block %zu", sizes[i]);
		CHECKF(contiguous(new[i], sizes[i], h), "new block %zu", sizes[i]);
		/* Device addresses are not physical addresses here. */
		CHECK(kheap_dma_addr(new[i], h) != kheap_phys(new[i]));
	}
	h2 = kheap_attach("0000:00:04.0");
	CHECK(h2 >= 1 && h2 != h);
	for (i = 0; i < 7; i++) {
		CHECK(contiguous(new[i], sizes[i], h2));
		CHECK(kheap_dma_addr(new[i], h2) != kheap_dma_addr(new[i], h));
	}
	for (i = 0; i < 7; i++) {
		kheap_free(old[i]);
		kheap_free(new[i]);
	}
	CHECK(kheap_detach(h) == 0);
	CHECK(kheap_detach(h2) == 0);
	CHECK(kheap__check() == 0);
}

static void test_errors(void)
{
	int h, hs[KHEAP_MAX_DEVICES], i;
	char stack_byte = 0;
	void *p;

	use_region(16 * MIB);
	p = kheap_malloc(100);
	errno = 0;
	CHECK(kheap_attach("missing-device") == -1 && errno == ENODEV);
	errno = 0;
	CHECK(kheap_attach("") == -1 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_attach(NULL) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_attach_bits("dev", 65) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_dma_addr(p, 1) == 0 && errno == EBADF);
	for (i = 0; i < KHEAP_MAX_DEVICES; i++) {
		hs[i] = kheap_attach("dev");
		CHECK(hs[i] == i + 1);
	}
	errno = 0;
	CHECK(kheap_attach("dev") == -1 && errno == ENOSPC);
	h = hs[3];
	errno = 0;
	CHECK(kheap_dma_addr(&stack_byte, h) == 0 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_dma_addr(NULL, h) == 0 && errno == EINVAL);
	CHECK(kheap_dma_addr(p, h) != 0);
	CHECK(kheap_detach(h) == 0);
	errno = 0;
	CHECK(kheap_dma_addr(p, h) == 0 && errno == EBADF);
	errno = 0;
	CHECK(kheap_detach(h) == -1 && errno == EBADF);
	errno = 0;
	CHECK(kheap_detach(0) == -1 && errno == EBADF);
	errno = 0;
	CHECK(kheap_detach(KHEAP_MAX_DEVICES + 1) == -1 && errno == EBADF);
	/* The freed slot is reused. */
	CHECK(kheap_attach("dev") == h);
	kheap_free(p);
	errno = 0;
	CHECK(kheap_dma_addr(p, h) == 0 || errno == 0);
	for (i = 0; i < KHEAP_MAX_DEVICES; i++)
		CHECK(kheap_detach(hs[i]) == 0);
}

static void test_realloc_moves_and_follows(void)
{
	char *p;
	int h;

	use_region(64 * MIB);
	h = kheap_attach("dev");
	p = kheap_malloc(1000);
	CHECK(p && contiguous(p, 1000, h));
	p = kheap_realloc(p, 3 * MIB);
	CHECK(p && contiguous(p, 3 * MIB, h));
	p = kheap_realloc(p, 40);
	CHECK(p && contiguous(p, 40, h));
	kheap_free(p);
	kheap_detach(h);
}

static int thread_h;

static void *worker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;
	int bad = 0;

	for (int i = 0; i < 2000; i++) {
		size_t n = 1 + rand_r(&seed) % 200000;
		char *p = kheap_malloc(n);

		if (!p || !contiguous(p, n, thread_h))
			bad++;
		kheap_free(p);
	}
	return (void *)(uintptr_t)bad;
}

static void test_threads(void)
{
	pthread_t t[4];
	void *bad;
	int i;

	use_region(128 * MIB);
	thread_h = kheap_attach("dev");
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}
	kheap_detach(thread_h);
}

static void test_fork_child_has_none(void)
{
	void *p;
	pid_t pid;
	int h, st;

	use_region(16 * MIB);
	h = kheap_attach("dev");
	p = kheap_malloc(4096);
	CHECK(kheap_dma_addr(p, h) != 0);
	pid = fork();
	if (pid == 0) {
		errno = 0;
		_exit(kheap_dma_addr(p, h) == 0 && errno == EBADF ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	CHECK(kheap_dma_addr(p, h) != 0);
	kheap_free(p);
	kheap_detach(h);
}

int main(void)
{
	ktap_plan(5);
	RUN(test_before_and_after_attach);
	RUN(test_errors);
	RUN(test_realloc_moves_and_follows);
	RUN(test_threads);
	RUN(test_fork_child_has_none);
	return ktap_finish();
}
