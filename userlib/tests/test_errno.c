// SPDX-License-Identifier: MIT
/*
 * test_errno.c - one documented errno per case (kheap.h): whatever the
 * provider's ioctl or mmap said, the allocation functions answer ENOMEM,
 * ENODEV or EACCES, on the arena path and the dedicated one alike; and
 * with physical addresses withheld kheap_phys says EPERM for every block,
 * even one placed beyond pool_size in the larger window; in a fork child
 * whose copy cannot be adopted, kheap_phys says what adopt said (ENOMEM,
 * EIO), and succeeds once it can.
 */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ktap.h"

#define FAKE_PHYS	0x1c3e00000ull	/* not 1 GiB aligned */
#define MIB		((size_t)1 << 20)

/* ---- the region provider, with failures injected into alloc ---- */

static struct kheap_provider faulty;
static int (*real_alloc)(size_t, size_t, unsigned int, struct kheap_chunk *);
static int (*real_adopt)(struct kheap_chunk *);
static int inject;		/* -errno every alloc returns, 0 for none */
static int inject_adopt;	/* -errno every adopt returns, 0 for none */

static int faulty_alloc(size_t size, size_t align, unsigned int flags,
			struct kheap_chunk *c)
{
	return inject ? inject : real_alloc(size, align, flags, c);
}

static int faulty_adopt(struct kheap_chunk *c)
{
	return inject_adopt ? inject_adopt : real_adopt(c);
}

static void use_faulty(size_t pool)
{
	faulty = *kheap_region_provider(pool, FAKE_PHYS);
	real_alloc = faulty.alloc;
	faulty.alloc = faulty_alloc;
	real_adopt = faulty.adopt;
	faulty.adopt = faulty_adopt;
	inject = 0;
	inject_adopt = 0;
	if (kheap__use_provider(&faulty)) {
		printf("# region provider failed\n");
		exit(1);
	}
}

/* Every allocation function fails with want while alloc says err. */
static void fails_with(int err, int want)
{
	static const size_t sizes[] = { 1, 700, 5000, 300000, 20 * MIB };
	void *p;

	use_faulty(64 * MIB);
	inject = -err;
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		errno = 0;
		CHECKF(kheap_malloc(n) == NULL && errno == want,
		       "malloc(%zu), provider %s: %s", n, strerror(err),
		       strerror(errno));
		errno = 0;
		CHECKF(kheap_calloc(1, n) == NULL && errno == want,
		       "calloc(%zu), provider %s: %s", n, strerror(err),
		       strerror(errno));
		errno = 0;
		CHECKF(kheap_aligned_alloc(4096, n) == NULL && errno == want,
		       "aligned_alloc(%zu), provider %s: %s", n, strerror(err),
		       strerror(errno));
		CHECK(kheap_posix_memalign(&p, 256, n) == want);
	}
	/* realloc growing out of a block it cannot keep */
	inject = 0;
	p = kheap_malloc(100);
	CHECK(p != NULL);
	inject = -err;
	errno = 0;
	CHECK(kheap_realloc(p, 5 * MIB) == NULL && errno == want);
	inject = 0;
	kheap_free(p);
	CHECK(kheap__check() == 0);
}

static void test_provider_errors(void)
{
	fails_with(ENOMEM, ENOMEM);
	fails_with(EIO, ENOMEM);	/* device said nonsense */
	fails_with(EFAULT, ENOMEM);
	fails_with(EBADF, ENOMEM);
	fails_with(EMFILE, ENOMEM);
	fails_with(ENODEV, ENODEV);	/* a fork child could not reopen */
	fails_with(EACCES, EACCES);
	fails_with(EPERM, EACCES);
	/* and back to work */
	inject = 0;
	CHECK(kheap_malloc(20 * MIB) != NULL);
}

/* ---- physical addresses withheld ---- */

static void test_phys_withheld(void)
{
	const size_t pool = 16 * MIB;
	unsigned char *h1, *h2, *h3;
	struct kheap_stats st;
	int local;

	if (kheap__use_provider(kheap_region_provider_withheld(pool))) {
		CHECK(0);
		return;
	}
	/* A hole too small for the third block: it lands beyond pool_size
	 * in the four-times-larger window. */
	h1 = kheap_malloc(6 * MIB);
	h2 = kheap_malloc(6 * MIB);
	CHECK(h1 && h2);
	kheap_free(h1);		/* above the chunk cache's bound: gone */
	h3 = kheap_malloc(8 * MIB);
	CHECK(h3 != NULL);
	if (!h2 || !h3)
		return;
	CHECKF((uintptr_t)h3 + 8 * MIB - khm.base > pool,
	       "h3 at window offset %#lx", (unsigned long)((uintptr_t)h3 - khm.base));
	memset(h3, 0x3c, 8 * MIB);
	CHECK(kheap_stats(&st) == 0 && st.bytes_held <= pool);
	errno = 0;
	CHECK(kheap_phys(h2) == 0 && errno == EPERM);
	errno = 0;
	CHECK(kheap_phys(h3) == 0 && errno == EPERM);
	errno = 0;
	CHECKF(kheap_phys(h3 + 8 * MIB - 1) == 0 && errno == EPERM,
	       "beyond pool_size: %s", strerror(errno));
	/* Above 2 MiB an alignment could not hold physically: EINVAL. */
	{
		void *q = NULL;

		errno = 0;
		CHECK(kheap_aligned_alloc(4 * MIB, 100) == NULL &&
		      errno == EINVAL);
		CHECK(kheap_posix_memalign(&q, 4 * MIB, 100) == EINVAL && !q);
		q = kheap_aligned_alloc(2 * MIB, 100);
		CHECK(q && (uintptr_t)q % (2 * MIB) == 0);
		kheap_free(q);
	}
	/* not ours: still EINVAL */
	errno = 0;
	CHECK(kheap_phys(&local) == 0 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys(h1) == 0 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys_to_virt(0x1000) == NULL && errno == EINVAL);
	/* the pool's bytes, not the window's, bound what is held */
	errno = 0;
	CHECK(kheap_malloc(4 * MIB) == NULL && errno == ENOMEM);
	kheap_free(h2);
	kheap_free(h3);
	CHECK(kheap_malloc(pool) != NULL);
	CHECK(kheap__check() == 0);
}

/* ---- a fork child's copies ---- */

/* In the child: 0 when every check held, else the failing check's line. */
static int child_adopt_checks(unsigned char *small, unsigned char *big,
			      uint64_t phys_small, uint64_t phys_big)
{
	inject_adopt = -ENOMEM;
	errno = 0;
	if (kheap_phys(small) != 0 || errno != ENOMEM)
		return __LINE__;
	inject_adopt = -EIO;
	errno = 0;
	if (kheap_phys(big + 5) != 0 || errno != EIO)
		return __LINE__;
	/* Not ours stays EINVAL, whatever adopt would say. */
	errno = 0;
	if (kheap_phys(&inject) != 0 || errno != EINVAL)
		return __LINE__;
	/* The blocks are usable all the same. */
	if (small[3] != 0x5a || big[4 * MIB] != 0xa5)
		return __LINE__;
	inject_adopt = 0;
	if (kheap_phys(small) != phys_small ||
	    kheap_phys(big + 5) != phys_big + 5)
		return __LINE__;
	kheap_free(small);
	kheap_free(big);
	return kheap__check() ? __LINE__ : 0;
}

static void test_fork_adopt_errors(void)
{
	unsigned char *small, *big;
	uint64_t ps, pb;
	int st;
	pid_t pid;

	use_faulty(64 * MIB);
	small = kheap_malloc(100);
	big = kheap_malloc(8 * MIB);
	CHECK(small && big);
	if (!small || !big)
		return;
	memset(small, 0x5a, 100);
	memset(big, 0xa5, 8 * MIB);
	ps = kheap_phys(small);
	pb = kheap_phys(big);
	pid = fork();
	if (pid == 0)
		_exit(child_adopt_checks(small, big, ps, pb));
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "child failed at line %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(kheap_phys(small) == ps && kheap_phys(big) == pb);
	kheap_free(small);
	kheap_free(big);
}

int main(void)
{
	ktap_plan(3);
	RUN(test_provider_errors);
	RUN(test_phys_withheld);
	RUN(test_fork_adopt_errors);
	return ktap_finish();
}
