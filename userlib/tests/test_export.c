// SPDX-License-Identifier: MIT
/*
 * test_export.c - kheap_export()'s rules, over the region provider with
 * an export hook that records what the library asked for: the range must
 * be page aligned, non-empty and inside one chunk; the chunk offset
 * handed to the provider is the byte's place in its chunk (checked
 * against kheap_phys(), which the region provider makes up consistently);
 * kheap_aligned_alloc(4096, n) blocks are always exportable whole; bad
 * flags, foreign pointers and a provider without dma-bufs fail with the
 * documented errno.  The real dma-buf is the guest's business
 * (guest_kheap, kheap_dmabuf_test).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "ktap.h"

#define FAKE_PHYS	0x240000000ull
#define MIB		((size_t)1 << 20)
#define PG		4096u

static struct kheap_provider hooked;
static struct {
	int calls;
	uint64_t phys;		/* chunk phys + offset asked for */
	size_t off, len;
	int flags;
	int ret;		/* what the hook returns */
} seen;

static int hook_export(const struct kheap_chunk *c, size_t off, size_t len,
		       int flags)
{
	seen.calls++;
	seen.phys = c->phys + off;
	seen.off = off;
	seen.len = len;
	seen.flags = flags;
	/* Whatever the provider is given must lie inside the chunk. */
	if (off % PG || len % PG || !len || off + len > c->size)
		return -ERANGE;
	return seen.ret;
}

static void use_hooked(int with_export)
{
	hooked = *kheap_region_provider(64 * MIB, FAKE_PHYS);
	hooked.export = with_export ? hook_export : NULL;
	if (kheap__use_provider(&hooked)) {
		printf("# region provider failed\n");
		exit(1);
	}
	memset(&seen, 0, sizeof(seen));
	seen.ret = 42;
}

/* kheap_export(p, len, flags) returned the hook's fd for exactly p. */
static int exported(void *p, size_t len, int flags)
{
	int calls = seen.calls;

	return kheap_export(p, len, flags) == seen.ret &&
	       seen.calls == calls + 1 && seen.phys == kheap_phys(p) &&
	       seen.len == len && seen.flags == flags;
}

static void test_aligned_blocks_export(void)
{
	static const size_t sizes[] = { PG, 2 * PG, 3 * PG, 16 * PG, 64 * PG,
					MIB, 3 * MIB, 20 * MIB };
	void *blocks[sizeof(sizes) / sizeof(sizes[0])];
	unsigned int i;

	use_hooked(1);
	/* Arena blocks and dedicated chunks, among other allocations. */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *noise = kheap_malloc(100 + i * 700);

		blocks[i] = kheap_aligned_alloc(PG, sizes[i]);
		CHECK(blocks[i] != NULL && noise != NULL);
		CHECKF(exported(blocks[i], sizes[i], O_RDWR | O_CLOEXEC),
		       "aligned_alloc(4096, %zu): errno %s", sizes[i],
		       strerror(errno));
		/* Any page range of it too, read-only. */
		if (sizes[i] >= 3 * PG)
			CHECK(exported((char *)blocks[i] + PG, PG, O_RDONLY));
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		kheap_free(blocks[i]);
	CHECK(kheap__check() == 0);
}

/* errno for kheap_export(p, len, flags), with the hook not called. */
static int refused(void *p, size_t len, int flags)
{
	int calls = seen.calls;

	errno = 0;
	if (kheap_export(p, len, flags) != -1 || seen.calls != calls)
		return 0;
	return errno;
}

static void test_bad_ranges(void)
{
	char *small, *big, stack[2 * PG];
	char *heap = malloc(3 * PG);

	use_hooked(1);
	small = kheap_malloc(100);
	big = kheap_aligned_alloc(PG, 20 * MIB);	/* a chunk of its own */
	CHECK(small && big && heap);

	CHECK(refused(NULL, PG, O_RDWR) == EINVAL);
	CHECK(refused(stack, PG, O_RDWR) == EINVAL);
	CHECK(refused(heap, PG, O_RDWR) == EINVAL);
	CHECK(refused(big, 0, O_RDWR) == EINVAL);
	CHECK(refused(big + 1, PG, O_RDWR) == EINVAL);
	CHECK(refused(big, PG + 1, O_RDWR) == EINVAL);
	CHECK(refused(big, PG - 1, O_RDWR) == EINVAL);
	CHECK(refused(big, SIZE_MAX & ~(size_t)(PG - 1), O_RDWR) == EINVAL);
	/* kheap_malloc(100) is not page aligned. */
	CHECK(refused(small, PG, O_RDWR) == EINVAL);
	/* Past the end of big's chunk (its last page, then two pages). */
	CHECK(exported(big + 20 * MIB - PG, PG, O_RDWR));
	CHECK(refused(big + 20 * MIB - PG, 2 * PG, O_RDWR) == EINVAL);
	CHECK(refused(big, 64 * MIB, O_RDWR) == EINVAL);

	/* Flags: access mode RDONLY or RDWR, and CLOEXEC, nothing else. */
	CHECK(refused(big, PG, O_WRONLY) == EINVAL);
	CHECK(refused(big, PG, O_ACCMODE) == EINVAL);
	CHECK(refused(big, PG, O_RDWR | O_NONBLOCK) == EINVAL);
	CHECK(refused(big, PG, O_RDWR | O_APPEND) == EINVAL);
	CHECK(refused(big, PG, -1) == EINVAL);
	CHECK(exported(big, PG, O_RDONLY));

	/* The provider's error comes back as errno. */
	seen.ret = -EMFILE;
	errno = 0;
	CHECK(kheap_export(big, PG, O_RDWR) == -1 && errno == EMFILE);
	seen.ret = 42;

	kheap_free(small);
	kheap_free(big);
	free(heap);
	CHECK(kheap__check() == 0);
}

/* A provider that cannot make dma-bufs: EOPNOTSUPP, after the checks. */
static void test_no_export_provider(void)
{
	void *p;

	use_hooked(0);
	p = kheap_aligned_alloc(PG, 4 * PG);
	CHECK(p != NULL);
	errno = 0;
	CHECK(kheap_export(p, 4 * PG, O_RDWR) == -1 && errno == EOPNOTSUPP);
	errno = 0;
	CHECK(kheap_export(p, 4 * PG + 1, O_RDWR) == -1 && errno == EINVAL);
	kheap_free(p);
}

int main(void)
{
	ktap_plan(3);
	RUN(test_aligned_blocks_export);
	RUN(test_bad_ranges);
	RUN(test_no_export_provider);
	return ktap_finish();
}
