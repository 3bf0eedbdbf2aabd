// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_test: the /dev/kheap ABI, mmap and chunk lifetime.
 *
 * Needs the module loaded (kheap.sh does that for each pool source) and
 * root, for /proc/self/pagemap frame numbers and the loop device tests.
 * Sizes are derived from the pool that INFO reports, so the same tests
 * run against a 2 MiB buddy pool and a large contiguous or reserved one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The harness is not -Wextra clean: unused handler parameters in the
 * header, and locals of its TEST_F() wrapper that -Wclobbered flags
 * around setjmp() (the warning lands on our functions, so it stays off
 * for the whole file).
 */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

static int kmsg_fd = -1;

/* Without the device there is nothing to test: skip the whole program. */
static void __attribute__((constructor)) kheap_test_init(void)
{
	int fd = kheap_open();

	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (is kheap.ko loaded?)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	if (fd == -EACCES || fd == -EPERM) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (run as root)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	/* Any other failure is for the tests to report. */
	if (fd >= 0)
		close(fd);
	kmsg_fd = kheap_kmsg_open();
}

FIXTURE(kheap) {
	int fd;
	uint64_t pg;
	uint64_t pool;		/* pool_size */
	uint64_t pool_phys;	/* 0 when hidden from us */
	struct kheap_info info;	/* INFO at setup, pool idle */
};

FIXTURE_SETUP(kheap)
{
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0)
		TH_LOG("open %s: %s", KHEAP_DEV, kheap_errname(self->fd));
	/*
	 * Every test starts from an empty pool; chunks that an earlier test
	 * left mapped for a moment may take a little while to come back.
	 */
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle before the test: %s (%s)",
				 kheap_state_str(&self->info, buf, sizeof(buf)),
				 kheap_errname(ret));
	self->pool = self->info.pool_size;
	self->pool_phys = self->info.pool_phys;
	ASSERT_NE(0ULL, self->pool);
}

FIXTURE_TEARDOWN(kheap)
{
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * @call must fail with -@err and leave the pool and the file's counters
 * exactly as they were.
 */
#define __EXPECT_REFUSED(_fd, _err, _call, _name, _fmt, ...) do {	\
	struct kheap_info __before, __after;				\
	char __b1[192], __b2[192];					\
	int __ret;							\
									\
	ASSERT_EQ(0, kheap_info(_fd, &__before));			\
	__ret = (_call);						\
	EXPECT_EQ(-(_err), __ret)					\
		TH_LOG("%s: got %s, want %s " _fmt, _name,		\
		       kheap_errname(__ret), kheap_errname(-(_err)),	\
		       ##__VA_ARGS__);					\
	ASSERT_EQ(0, kheap_info(_fd, &__after));			\
	EXPECT_TRUE(kheap_same_state(&__before, &__after))		\
		TH_LOG("%s changed the pool: %s -> %s " _fmt, _name,	\
		       kheap_state_str(&__before, __b1, sizeof(__b1)),	\
		       kheap_state_str(&__after, __b2, sizeof(__b2)),	\
		       ##__VA_ARGS__);					\
} while (0)

#define EXPECT_REFUSED(_fd, _err, _call) \
	__EXPECT_REFUSED(_fd, _err, _call, #_call, "")

/* The same, with a printf-style note on what was being tried. */
#define EXPECT_REFUSED_MSG(_fd, _err, _call, _fmt, ...) \
	__EXPECT_REFUSED(_fd, _err, _call, #_call, _fmt, ##__VA_ARGS__)

#define ASSERT_ALLOC(_fd, _size, _align, _a) do {			\
	int __ret = kheap_alloc(_fd, _size, _align, _a);		\
									\
	ASSERT_EQ(0, __ret)						\
		TH_LOG("ALLOC size %llu align %llu: %s",		\
		       (unsigned long long)(_size),			\
		       (unsigned long long)(_align),			\
		       kheap_errname(__ret));				\
} while (0)

/* Right after the mmap() call, before anything can clobber errno. */
#define ASSERT_MAPPED(_p) do {						\
	int __err = errno;						\
									\
	ASSERT_NE(MAP_FAILED, (_p)) TH_LOG("mmap: %s", strerror(__err));	\
} while (0)

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int page_shift(uint64_t pg)
{
	return __builtin_ctzll(pg);
}

/* Each page of a test buffer gets its own pattern: seed + page index. */
static void fill_pages(void *p, uint64_t npages, uint64_t pg, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < npages; i++)
		kheap_fill((char *)p + i * pg, pg, seed + i);
}

/* First page of [first, first + npages) that does not match, or -1. */
static int64_t check_pages(const void *p, uint64_t first, uint64_t npages,
			   uint64_t pg, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < npages; i++)
		if (kheap_check((const char *)p + i * pg, pg,
				seed + first + i) >= 0)
			return first + i;
	return -1;
}

/* mmap() result as 0 or -errno, unmapping on success. */
static int try_mmap(int fd, uint64_t off, uint64_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags, fd, (off_t)off);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p, len);
	return 0;
}

/* QUERY @addr and check it against chunk @a at byte @offset. */
static void expect_query(struct __test_metadata *_metadata, int fd,
			 const void *addr, const struct kheap_alloc *a,
			 uint64_t offset)
{
	struct kheap_query q;
	int ret = kheap_query(fd, addr, &q);

	EXPECT_EQ(0, ret) TH_LOG("QUERY %p: %s", addr, kheap_errname(ret));
	if (ret)
		return;
	EXPECT_EQ((uintptr_t)addr, q.addr);
	EXPECT_EQ(a->token, q.token);
	EXPECT_EQ(offset, q.offset);
	EXPECT_EQ(a->size_out, q.chunk_size);
	EXPECT_EQ(a->phys + offset, q.phys);
	EXPECT_EQ(0ULL, q.flags);
	EXPECT_EQ(0ULL, q.reserved[0] | q.reserved[1]);
}

/* Wait for a child and return its exit code, or 128 + signal. */
static int wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* INFO */

TEST_F(kheap, info_sane)
{
	const struct kheap_info *i = &self->info;
	int k;

	EXPECT_EQ((__u64)KHEAP_ABI_VERSION, i->abi_version);
	EXPECT_EQ(self->pg, i->page_size);
	EXPECT_EQ(0ULL, i->pool_size % self->pg);
	EXPECT_EQ(i->pool_size, i->free_bytes);
	EXPECT_EQ(i->pool_size, i->largest_free);
	EXPECT_EQ(0ULL, i->chunks_in_use);
	EXPECT_EQ(0ULL, i->file_chunks);
	EXPECT_EQ(0ULL, i->file_bytes);
	EXPECT_GE(i->pool_source, (__u64)KHEAP_SOURCE_RESERVED);
	EXPECT_LE(i->pool_source, (__u64)KHEAP_SOURCE_BUDDY);
	for (k = 0; k < (int)ARRAY_SIZE(i->reserved); k++)
		EXPECT_EQ(0ULL, i->reserved[k]) TH_LOG("reserved[%d]", k);
	/* A fresh file has attached no device (ABI 2). */
	EXPECT_EQ(0ULL, i->attachments);
	/* Nothing poisoned the pool (kheap_hwpoison_test does, alone). */
	EXPECT_EQ(0ULL, i->retired_bytes);
	EXPECT_EQ(0ULL, i->pool_phys % self->pg);
	/* Nothing hides the address from a CAP_SYS_RAWIO opener. */
	if (kheap_cap_effective(CAP_SYS_RAWIO))
		EXPECT_NE(0ULL, i->pool_phys);
	EXPECT_GT(i->pool_phys + i->pool_size, i->pool_phys);
#ifdef __x86_64__
	if (i->pool_source == KHEAP_SOURCE_BUDDY)
		EXPECT_LE(i->pool_size, 4ULL << 20);
#endif
	TH_LOG("pool: %s, %llu bytes at %#llx", kheap_source_name(i->pool_source),
	       (unsigned long long)i->pool_size,
	       (unsigned long long)i->pool_phys);
}

TEST_F(kheap, info_matches_sysfs)
{
	static const char * const ro[] = {
		"pool_size", "free_bytes", "largest_free", "chunks_in_use",
		"pool_source", "quarantined_chunks", "quarantined_bytes",
		"retired_pages",
	};
	struct kheap_alloc a, b;
	struct kheap_info info;
	uint64_t v;
	char text[64];
	mode_t mode;
	unsigned int k;
	int round;

	for (k = 0; k < ARRAY_SIZE(ro); k++) {
		ASSERT_EQ(0, kheap_sysfs_mode(ro[k], &mode)) TH_LOG("%s", ro[k]);
		EXPECT_EQ(0444ULL, mode & 07777) TH_LOG("%s mode %o", ro[k], mode);
	}
	ASSERT_EQ(0, kheap_sysfs_mode("pool_phys", &mode));
	EXPECT_EQ(0400ULL, mode & 07777) TH_LOG("pool_phys mode %o", mode);

	ASSERT_EQ(0, kheap_sysfs_u64("pool_size", &v));
	EXPECT_EQ(self->pool, v);
	ASSERT_EQ(0, kheap_sysfs_str("pool_source", text, sizeof(text)));
	EXPECT_STREQ(kheap_source_name(self->info.pool_source), text);
	ASSERT_EQ(0, kheap_sysfs_str("pool_phys", text, sizeof(text)));
	EXPECT_EQ(0, strncmp(text, "0x", 2)) TH_LOG("pool_phys \"%s\"", text);
	ASSERT_EQ(0, kheap_sysfs_u64("pool_phys", &v)) TH_LOG("\"%s\"", text);
	if (kheap_cap_effective(CAP_SYS_RAWIO))
		EXPECT_EQ(self->pool_phys, v);

	/* The counters follow allocations: idle, one chunk, two chunks. */
	for (round = 0; round < 3; round++) {
		if (round == 1)
			ASSERT_ALLOC(self->fd, 3 * self->pg, 0, &a);
		if (round == 2)
			ASSERT_ALLOC(self->fd, self->pg, 0, &b);
		ASSERT_EQ(0, kheap_info(self->fd, &info));
		ASSERT_EQ(0, kheap_sysfs_u64("free_bytes", &v));
		EXPECT_EQ(info.free_bytes, v) TH_LOG("round %d", round);
		ASSERT_EQ(0, kheap_sysfs_u64("largest_free", &v));
		EXPECT_EQ(info.largest_free, v) TH_LOG("round %d", round);
		ASSERT_EQ(0, kheap_sysfs_u64("chunks_in_use", &v));
		EXPECT_EQ(info.chunks_in_use, v) TH_LOG("round %d", round);
		EXPECT_EQ((uint64_t)round, v);
	}
	EXPECT_EQ(self->pool - 4 * self->pg, info.free_bytes);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_free(self->fd, b.token));
}

TEST_F(kheap, info_per_file_accounting)
{
	struct kheap_info mine, other;
	struct kheap_alloc a, b;
	int fd2 = kheap_open();

	ASSERT_GE(fd2, 0);
	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	ASSERT_ALLOC(self->fd, 2 * self->pg, 0, &b);

	ASSERT_EQ(0, kheap_info(self->fd, &mine));
	ASSERT_EQ(0, kheap_info(fd2, &other));
	EXPECT_EQ(2ULL, mine.file_chunks);
	EXPECT_EQ(3 * self->pg, mine.file_bytes);
	EXPECT_EQ(0ULL, other.file_chunks);
	EXPECT_EQ(0ULL, other.file_bytes);
	/* Pool-wide counters are the same through any file. */
	EXPECT_EQ(2ULL, mine.chunks_in_use);
	EXPECT_EQ(2ULL, other.chunks_in_use);
	EXPECT_EQ(self->pool - 3 * self->pg, mine.free_bytes);
	EXPECT_EQ(mine.free_bytes, other.free_bytes);
	EXPECT_EQ(mine.largest_free, other.largest_free);
	EXPECT_EQ(mine.pool_phys, other.pool_phys);

	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, kheap_info(self->fd, &mine));
	EXPECT_EQ(1ULL, mine.file_chunks);
	EXPECT_EQ(2 * self->pg, mine.file_bytes);
	EXPECT_EQ(1ULL, mine.chunks_in_use);
	EXPECT_EQ(self->pool - 2 * self->pg, mine.free_bytes);
	ASSERT_EQ(0, kheap_free(self->fd, b.token));
	close(fd2);
}

/* free_extents: where the free pages are */

/* Room for every line a free_extents page can hold, at any page size. */
#define MAX_EXTENTS	(65536 / 11)

/* A chunk as an offset range of the pool. */
struct held {
	uint64_t off;
	uint64_t size;
};

static int held_cmp(const void *a, const void *b)
{
	const struct held *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Length of free_extents' line for @e. */
static size_t extent_line_len(const struct kheap_free_extent *e)
{
	return (size_t)snprintf(NULL, 0, "0x%llx 0x%llx\n",
				(unsigned long long)e->offset,
				(unsigned long long)e->length);
}

/*
 * free_extents must list exactly the complement of the chunks @a[0..@n)
 * (given by ALLOC's phys) within [0, pool size), in ascending order, and
 * agree with INFO's free_bytes and largest_free.  It may stop early with
 * "..." only where the next line would not have fit into a page.
 */
static void expect_free_extents(struct __test_metadata *_metadata, int fd,
				uint64_t pool, uint64_t pool_phys,
				const struct kheap_alloc *a, size_t n,
				const char *when)
{
	struct kheap_free_extent *want, *got;
	size_t nwant = 0, ngot = 0, bytes = 0, i, pg = getpagesize();
	uint64_t cur = 0, sum = 0, max = 0;
	struct kheap_info info;
	struct held *h;
	bool truncated;
	int ret;

	want = calloc(n + 1, sizeof(*want));
	got = calloc(MAX_EXTENTS, sizeof(*got));
	h = calloc(n + 1, sizeof(*h));
	ASSERT_TRUE(want && got && h);

	for (i = 0; i < n; i++) {
		ASSERT_GE(a[i].phys, pool_phys) TH_LOG("%s: chunk %zu", when, i);
		h[i].off = a[i].phys - pool_phys;
		h[i].size = a[i].size_out;
		ASSERT_LE(h[i].off + h[i].size, pool) TH_LOG("%s: chunk %zu", when, i);
	}
	qsort(h, n, sizeof(*h), held_cmp);
	for (i = 0; i < n; i++) {
		ASSERT_GE(h[i].off, cur) TH_LOG("%s: chunks overlap", when);
		if (h[i].off > cur) {
			want[nwant].offset = cur;
			want[nwant++].length = h[i].off - cur;
		}
		cur = h[i].off + h[i].size;
	}
	if (cur < pool) {
		want[nwant].offset = cur;
		want[nwant++].length = pool - cur;
	}
	for (i = 0; i < nwant; i++) {
		sum += want[i].length;
		if (want[i].length > max)
			max = want[i].length;
	}

	ret = kheap_sysfs_free_extents(got, MAX_EXTENTS, &ngot, &truncated,
				       &bytes);
	ASSERT_EQ(0, ret) TH_LOG("%s: reading free_extents: %s", when,
				 kheap_errname(ret));
	EXPECT_LT(bytes, pg) TH_LOG("%s: %zu bytes", when, bytes);
	if (truncated) {
		/* Cut where the next line and "...\n" did not fit. */
		EXPECT_LT(ngot, nwant) TH_LOG("%s: \"...\" after all extents", when);
		if (ngot < nwant) {
			EXPECT_GE(bytes - 4 + extent_line_len(&want[ngot]) +
				  (ngot + 1 < nwant ? 4 : 0), pg)
				TH_LOG("%s: truncated after %zu lines, %zu bytes, but more fit",
				       when, ngot, bytes);
		}
	} else {
		EXPECT_EQ(nwant, ngot) TH_LOG("%s: extents", when);
	}
	for (i = 0; i < ngot && i < nwant; i++) {
		EXPECT_EQ(want[i].offset, got[i].offset)
			TH_LOG("%s: extent %zu offset", when, i);
		EXPECT_EQ(want[i].length, got[i].length)
			TH_LOG("%s: extent %zu length", when, i);
	}
	TH_LOG("%s: %zu chunks, %zu free extents, %zu listed%s (%zu bytes)",
	       when, n, nwant, ngot, truncated ? " and \"...\"" : "", bytes);

	ASSERT_EQ(0, kheap_info(fd, &info));
	EXPECT_EQ(info.free_bytes, sum) TH_LOG("%s: sum of lengths", when);
	EXPECT_EQ(info.largest_free, max) TH_LOG("%s: largest length", when);
	if (!truncated) {
		uint64_t s = 0, m = 0, v;

		for (i = 0; i < ngot; i++) {
			s += got[i].length;
			m = got[i].length > m ? got[i].length : m;
		}
		ASSERT_EQ(0, kheap_sysfs_u64("free_bytes", &v));
		EXPECT_EQ(v, s) TH_LOG("%s: listed lengths vs sysfs free_bytes", when);
		ASSERT_EQ(0, kheap_sysfs_u64("largest_free", &v));
		EXPECT_EQ(v, m) TH_LOG("%s: listed lengths vs sysfs largest_free", when);
	}
	free(want);
	free(got);
	free(h);
}

TEST_F(kheap, free_extents_exact)
{
	struct kheap_alloc a[5];
	mode_t mode;
	int i;

	ASSERT_EQ(0, kheap_sysfs_mode("free_extents", &mode));
	EXPECT_EQ(0444ULL, mode & 07777) TH_LOG("free_extents mode %o", mode);
	if (!self->pool_phys)
		SKIP(return, "the pool's physical base is hidden from us");

	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    NULL, 0, "idle");

	/* Three chunks, then a hole in the middle. */
	ASSERT_ALLOC(self->fd, 3 * self->pg, 0, &a[0]);
	ASSERT_ALLOC(self->fd, 5 * self->pg, 0, &a[1]);
	ASSERT_ALLOC(self->fd, 2 * self->pg, 0, &a[2]);
	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    a, 3, "three chunks");
	ASSERT_EQ(0, kheap_free(self->fd, a[1].token));
	a[1] = a[2];
	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    a, 2, "a hole in the middle");

	/* One page into the hole, and an aligned chunk that leaves a gap. */
	ASSERT_ALLOC(self->fd, self->pg, 0, &a[2]);
	ASSERT_ALLOC(self->fd, self->pg, 16 * self->pg, &a[3]);
	ASSERT_ALLOC(self->fd, 2 * self->pg, 0, &a[4]);
	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    a, 5, "five chunks");

	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, kheap_free(self->fd, a[i].token));
	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    NULL, 0, "all freed");
}

TEST_F_TIMEOUT(kheap, free_extents_many, 120)
{
	uint64_t i, npages = min_u64(self->pool / self->pg, 1024), nheld = 0;
	struct kheap_alloc *a;

	if (!self->pool_phys)
		SKIP(return, "the pool's physical base is hidden from us");
	a = calloc(npages, sizeof(*a));
	ASSERT_NE(NULL, a);

	/* Single pages, every other one freed: one extent per free page. */
	for (i = 0; i < npages; i++)
		ASSERT_ALLOC(self->fd, self->pg, 0, &a[i]);
	for (i = 0; i < npages; i++) {
		if (i % 2) {
			ASSERT_EQ(0, kheap_free(self->fd, a[i].token));
		} else {
			a[nheld++] = a[i];
		}
	}
	expect_free_extents(_metadata, self->fd, self->pool, self->pool_phys,
			    a, nheld, "every other page");

	for (i = 0; i < nheld; i++)
		ASSERT_EQ(0, kheap_free(self->fd, a[i].token));
	free(a);
}

/* ALLOC, mmap, physical addresses */

TEST_F(kheap, alloc_map_rw)
{
	uint64_t npages = min_u64(16, self->pool / self->pg);
	uint64_t len = npages * self->pg;
	struct kheap_info info;
	struct kheap_alloc a;
	char *p, *q;

	ASSERT_ALLOC(self->fd, len, 0, &a);
	EXPECT_EQ(len, a.size_out);
	EXPECT_EQ(len, a.size);
	EXPECT_EQ(0ULL, a.token % self->pg);
	EXPECT_EQ(0ULL, a.phys % self->pg);
	EXPECT_EQ(0ULL, a.reserved[0] | a.reserved[1]);
	if (self->pool_phys) {
		EXPECT_GE(a.phys, self->pool_phys);
		EXPECT_LE(a.phys + len, self->pool_phys + self->pool);
	}
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(self->pool - len, info.free_bytes);
	EXPECT_EQ(1ULL, info.chunks_in_use);
	EXPECT_EQ(1ULL, info.file_chunks);
	EXPECT_EQ(len, info.file_bytes);

	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	EXPECT_EQ(-1, kheap_check_zero(p, len));
	fill_pages(p, npages, self->pg, 0x1000);
	EXPECT_EQ(-1, check_pages(p, 0, npages, self->pg, 0x1000));

	/* A second mapping of the same chunk is the same memory. */
	q = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(q);
	EXPECT_NE(p, q);
	EXPECT_EQ(-1, check_pages(q, 0, npages, self->pg, 0x1000));
	q[len - 1] ^= 0x5a;
	EXPECT_EQ(p[len - 1], q[len - 1]);
	q[len - 1] ^= 0x5a;
	ASSERT_EQ(0, munmap(q, len));

	/* The data outlives its mappings while the chunk is allocated. */
	ASSERT_EQ(0, munmap(p, len));
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	EXPECT_EQ(-1, check_pages(p, 0, npages, self->pg, 0x1000));
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

TEST_F(kheap, alloc_size_rounding)
{
	const uint64_t pg = self->pg;
	const uint64_t sizes[] = { 1, pg - 1, pg, pg + 1, 2 * pg + pg / 2 };
	struct kheap_alloc a[ARRAY_SIZE(sizes)];
	struct kheap_info info;
	uint64_t used = 0;
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(sizes); k++) {
		ASSERT_ALLOC(self->fd, sizes[k], 0, &a[k]);
		EXPECT_EQ(round_up(sizes[k], pg), a[k].size_out)
			TH_LOG("size %llu", (unsigned long long)sizes[k]);
		used += a[k].size_out;
		ASSERT_EQ(0, kheap_info(self->fd, &info));
		EXPECT_EQ(self->pool - used, info.free_bytes);
		EXPECT_EQ(used, info.file_bytes);
		EXPECT_EQ(k + 1, info.file_chunks);
	}
	for (k = 0; k < ARRAY_SIZE(sizes); k++)
		EXPECT_EQ(0, kheap_free(self->fd, a[k].token));
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(0ULL, info.file_bytes);
	EXPECT_EQ(0ULL, info.file_chunks);
}

/*
 * For every page of a chunk: ALLOC.phys + offset, QUERY and the frame
 * number the page tables hold (/proc/self/pagemap) agree.
 */
TEST_F(kheap, phys_every_page)
{
	uint64_t npages = min_u64(512, self->pool / self->pg);
	uint64_t len = npages * self->pg, i, bad = 0;
	int shift = page_shift(self->pg);
	struct kheap_alloc a;
	struct kheap_query q;
	uint64_t *pfns;
	char *p, *sub;
	int ret;

	pfns = calloc(npages, sizeof(*pfns));
	ASSERT_NE(NULL, pfns);
	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	for (i = 0; i < npages; i++)
		p[i * self->pg] = 1;

	for (i = 0; i < npages; i++) {
		/* An address inside the page, not just its first byte. */
		uint64_t off = i * self->pg + (i * 8) % self->pg;

		ret = kheap_query(self->fd, p + off, &q);
		if (ret || q.phys != a.phys + off || q.offset != off ||
		    q.token != a.token || q.chunk_size != len) {
			if (bad++ < 4)
				TH_LOG("page %llu: QUERY %s phys %#llx offset %llu token %#llx size %llu",
				       (unsigned long long)i,
				       kheap_errname(ret),
				       (unsigned long long)q.phys,
				       (unsigned long long)q.offset,
				       (unsigned long long)q.token,
				       (unsigned long long)q.chunk_size);
		}
	}
	EXPECT_EQ(0ULL, bad) TH_LOG("%llu of %llu pages answered wrongly",
				 (unsigned long long)bad,
				 (unsigned long long)npages);

	ret = kheap_pagemap_pfns(p, npages, pfns);
	if (ret == -EPERM)
		SKIP(return, "pagemap hides frame numbers (need CAP_SYS_ADMIN)");
	ASSERT_EQ(0, ret) TH_LOG("pagemap: %s", kheap_errname(ret));
	bad = 0;
	for (i = 0; i < npages; i++) {
		if ((pfns[i] << shift) != a.phys + i * self->pg) {
			if (bad++ < 4)
				TH_LOG("page %llu: pfn %#llx, chunk says %#llx",
				       (unsigned long long)i,
				       (unsigned long long)pfns[i],
				       (unsigned long long)((a.phys >> shift) + i));
		}
	}
	EXPECT_EQ(0ULL, bad) TH_LOG("%llu of %llu frames are not where ALLOC said",
				 (unsigned long long)bad,
				 (unsigned long long)npages);

	/* A mapping of part of the chunk starts at the right page. */
	if (npages > 2) {
		sub = mmap(NULL, len - 2 * self->pg, PROT_READ | PROT_WRITE,
			   MAP_SHARED, self->fd, a.token + self->pg);
		ASSERT_MAPPED(sub);
		EXPECT_EQ(1, sub[0]);
		expect_query(_metadata, self->fd, sub, &a, self->pg);
		expect_query(_metadata, self->fd, sub + len - 2 * self->pg - 1,
			     &a, len - self->pg - 1);
		ASSERT_EQ(0, kheap_pagemap_pfns(sub, 1, pfns));
		EXPECT_EQ(a.phys + self->pg, pfns[0] << shift);
		munmap(sub, len - 2 * self->pg);
	}
	munmap(p, len);
	free(pfns);
}

/*
 * A chunk handed out again is zero-filled, even when its frames last held
 * someone else's data.  Taking the whole pool guarantees the same frames.
 */
TEST_F_TIMEOUT(kheap, chunks_zeroed_on_reuse, 180)
{
	uint64_t len = self->pool;
	struct kheap_alloc a, b;
	int round, fd2;
	ssize_t off;
	char *p;

	for (round = 0; round < 2; round++) {
		fd2 = kheap_open();
		ASSERT_GE(fd2, 0);
		ASSERT_ALLOC(fd2, len, 0, &a);
		p = kheap_map(fd2, a.token, len);
		ASSERT_MAPPED(p);
		kheap_fill(p, len, 0xdead0000 + round);
		ASSERT_EQ(0, munmap(p, len));
		/* Round 0 gives the chunk back with FREE, round 1 by close. */
		if (round == 0)
			ASSERT_EQ(0, kheap_free(fd2, a.token));
		close(fd2);
		ASSERT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));

		ASSERT_ALLOC(self->fd, len, 0, &b);
		EXPECT_EQ(a.phys, b.phys);
		p = kheap_map(self->fd, b.token, len);
		ASSERT_MAPPED(p);
		off = kheap_check_zero(p, len);
		EXPECT_EQ(-1, off) TH_LOG("round %d: byte %zd of the reused chunk is not zero",
					  round, off);
		ASSERT_EQ(0, munmap(p, len));
		ASSERT_EQ(0, kheap_free(self->fd, b.token));
		ASSERT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
	}
}

/* Ownership */

TEST_F(kheap, isolation_other_file)
{
	uint64_t len = 2 * self->pg;
	struct kheap_alloc a, b;
	struct kheap_query q;
	int fd2 = kheap_open();
	char *p, *pb;

	ASSERT_GE(fd2, 0);
	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, 2, self->pg, 0x2000);

	EXPECT_REFUSED(fd2, EINVAL, try_mmap(fd2, a.token, len,
					     PROT_READ | PROT_WRITE, MAP_SHARED));
	EXPECT_REFUSED(fd2, EINVAL, try_mmap(fd2, a.token, self->pg,
					     PROT_READ, MAP_SHARED));
	EXPECT_REFUSED(fd2, EINVAL, kheap_free(fd2, a.token));
	EXPECT_REFUSED(fd2, EINVAL, kheap_query(fd2, p, &q));
	EXPECT_REFUSED(fd2, EINVAL, kheap_sync(fd2, a.token, 0, len,
					       KHEAP_SYNC_READ));

	/*
	 * Tokens are per file, so fd2's own chunk may carry the same token
	 * value; mapping that token then must give fd2's chunk, not ours.
	 */
	ASSERT_ALLOC(fd2, len, 0, &b);
	pb = kheap_map(fd2, a.token, len);
	if (b.token == a.token) {
		ASSERT_MAPPED(pb);
		expect_query(_metadata, fd2, pb, &b, 0);
		EXPECT_EQ(-1, kheap_check_zero(pb, len));
		munmap(pb, len);
	} else {
		EXPECT_EQ(MAP_FAILED, pb);
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_REFUSED(fd2, EINVAL, kheap_query(fd2, p, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, b.token == a.token ?
						    b.token + len : b.token));

	/* Our chunk is untouched and still ours. */
	EXPECT_EQ(-1, check_pages(p, 0, 2, self->pg, 0x2000));
	expect_query(_metadata, self->fd, p + self->pg, &a, self->pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_free(fd2, b.token));
	munmap(p, len);
	close(fd2);
}

TEST_F(kheap, isolation_other_process)
{
	uint64_t len = 2 * self->pg;
	struct kheap_alloc a;
	struct kheap_query q;
	int status;
	pid_t pid;
	char *p;

	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, 2, self->pg, 0x3000);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd2 = kheap_open();

		if (fd2 < 0)
			_exit(10);
		if (try_mmap(fd2, a.token, len, PROT_READ | PROT_WRITE,
			     MAP_SHARED) != -EINVAL)
			_exit(11);
		if (kheap_free(fd2, a.token) != -EINVAL)
			_exit(12);
		/* The inherited mapping belongs to the parent's file. */
		if (kheap_query(fd2, p, &q) != -EINVAL)
			_exit(13);
		if (kheap_sync(fd2, a.token, 0, len, KHEAP_SYNC_WRITE) != -EINVAL)
			_exit(14);
		/*
		 * Nor, through the inherited descriptor, to the parent's
		 * file: the child's mapping is a fork copy of the chunk,
		 * which no file owns until the child adopts it.
		 */
		if (kheap_query(self->fd, p, &q) != -EINVAL)
			_exit(15);
		if (check_pages(p, 0, 2, self->pg, 0x3000) >= 0)
			_exit(16);
		_exit(0);
	}
	status = wait_child(pid);
	EXPECT_EQ(0, status)
		TH_LOG("child step %d failed (10 open, 11 mmap, 12 FREE, 13 QUERY, 14 SYNC, 15 inherited QUERY, 16 data)",
		       status);
	EXPECT_EQ(-1, check_pages(p, 0, 2, self->pg, 0x3000));
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	munmap(p, len);
}

TEST_F(kheap, query_foreign_addresses)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	struct kheap_query q;
	int stack_var = 1;
	char *heap, *anon, *gone, *area;
	char *memfd_map;
	int mfd;

	heap = malloc(64);
	ASSERT_NE(NULL, heap);
	anon = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(anon);
	anon[0] = 1;
	gone = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(gone);
	munmap(gone, pg);
	mfd = memfd_create("kheap-test", MFD_CLOEXEC);
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, pg));
	memfd_map = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_MAPPED(memfd_map);

	/* A one-page chunk mapped between two inaccessible pages. */
	ASSERT_ALLOC(self->fd, pg, 0, &a);
	area = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(area);
	ASSERT_EQ(area + pg, mmap(area + pg, pg, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_FIXED, self->fd, a.token));

	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, NULL, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, &stack_var, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, heap, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, anon, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, gone, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, memfd_map, &q));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_query(self->fd, (void *)(uintptr_t)kheap_open, &q));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_query(self->fd, (void *)(~0UL & ~(pg - 1)), &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, area, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, area + pg - 1, &q));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, area + 2 * pg, &q));
	expect_query(_metadata, self->fd, area + pg, &a, 0);
	expect_query(_metadata, self->fd, area + 2 * pg - 1, &a, pg - 1);

	munmap(area, 3 * pg);
	munmap(memfd_map, pg);
	close(mfd);
	munmap(anon, pg);
	free(heap);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

/* Lifetime */

/*
 * FREE while mapped: the mapping keeps its pages and data, nothing new is
 * placed on them, and they come back after munmap.
 */
TEST_F_TIMEOUT(kheap, free_while_mapped, 120)
{
	uint64_t npages = self->pool / self->pg / 4;
	uint64_t len = npages * self->pg;
	struct kheap_alloc a, others[64];
	struct kheap_info info;
	struct kheap_query q;
	unsigned int n = 0, k;
	char buf[192];
	char *p;

	if (!self->pool_phys)
		SKIP(return, "physical addresses are hidden from this process");
	ASSERT_GT(npages, 0ULL);
	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, npages, self->pg, 0x4000);

	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(0ULL, info.file_chunks);
	EXPECT_EQ(0ULL, info.file_bytes);
	EXPECT_EQ(1ULL, info.chunks_in_use);
	EXPECT_EQ(self->pool - len, info.free_bytes);

	/* The token is gone from the file, the mapping is not. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, a.token));
	EXPECT_REFUSED(self->fd, EINVAL, try_mmap(self->fd, a.token, len,
						  PROT_READ, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_sync(self->fd, a.token, 0, len,
						    KHEAP_SYNC_READ));
	expect_query(_metadata, self->fd, p + len - 1, &a, len - 1);

	/* Take everything else: none of it may overlap the freed chunk. */
	for (;;) {
		ASSERT_EQ(0, kheap_info(self->fd, &info));
		if (!info.largest_free)
			break;
		ASSERT_LT(n, ARRAY_SIZE(others));
		ASSERT_ALLOC(self->fd, info.largest_free, 0, &others[n]);
		EXPECT_TRUE(others[n].phys + others[n].size_out <= a.phys ||
			    others[n].phys >= a.phys + len)
			TH_LOG("new chunk [%#llx, +%llu) overlaps the freed, mapped [%#llx, +%llu)",
			       (unsigned long long)others[n].phys,
			       (unsigned long long)others[n].size_out,
			       (unsigned long long)a.phys,
			       (unsigned long long)len);
		n++;
	}
	EXPECT_EQ(0ULL, info.free_bytes);
	EXPECT_EQ(n + 1, info.chunks_in_use);
	EXPECT_EQ(self->pool - len, info.file_bytes);
	EXPECT_EQ(-1, check_pages(p, 0, npages, self->pg, 0x4000));

	for (k = 0; k < n; k++)
		EXPECT_EQ(0, kheap_free(self->fd, others[k].token));
	EXPECT_EQ(0, kheap_wait_state(self->fd, self->pool - len, 1,
				      KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));

	ASSERT_EQ(0, munmap(p, len));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("not returned after munmap: %s",
		       kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, p, &q));
	ASSERT_ALLOC(self->fd, self->pool, 0, &a);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, close_while_mapped)
{
	uint64_t npages = min_u64(8, self->pool / self->pg);
	uint64_t len = npages * self->pg;
	struct kheap_alloc a;
	struct kheap_info info;
	struct kheap_query q;
	char buf[192];
	int fd2 = kheap_open();
	char *p;

	ASSERT_GE(fd2, 0);
	ASSERT_ALLOC(fd2, len, 0, &a);
	p = kheap_map(fd2, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, npages, self->pg, 0x5000);
	close(fd2);

	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(1ULL, info.chunks_in_use);
	EXPECT_EQ(self->pool - len, info.free_bytes);
	EXPECT_EQ(-1, check_pages(p, 0, npages, self->pg, 0x5000));
	fill_pages(p, npages, self->pg, 0x5100);
	EXPECT_EQ(-1, check_pages(p, 0, npages, self->pg, 0x5100));
	/* Not a mapping of self->fd. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, p, &q));

	ASSERT_EQ(0, munmap(p, len));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
}

/*
 * The name /proc/self/maps gives the mapping that starts at @addr (empty
 * for an anonymous one).  0, or -ENOENT when no mapping starts there.
 */
static int maps_name(const void *addr, char *name, size_t len)
{
	unsigned long start, end;
	char line[512];
	int ret = -ENOENT, pos;
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* start-end perms offset dev inode name */
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end,
			   &pos) < 2 || start != (uintptr_t)addr)
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(name, len, "%s", line + pos);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * close() gives back at once every chunk of the file that is not mapped;
 * a mapped one lives on with its mapping until munmap.  The mapping does
 * not keep /dev/kheap's file open for that: the module maps chunks
 * through a file of its own, which /proc/PID/maps shows as
 * anon_inode:[kheap].
 */
TEST_F(kheap, close_frees_unmapped_chunks)
{
	const uint64_t na = 2, nb = 3, nc = 1;
	uint64_t pg = self->pg;
	struct kheap_info before, after;
	struct kheap_alloc a, b, c;
	struct kheap_query q;
	char name[256], b1[192], b2[192];
	int fd2, ret;
	char *p;

	ASSERT_GE(self->pool / pg, na + nb + nc);
	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	ASSERT_ALLOC(fd2, na * pg, 0, &a);
	ASSERT_ALLOC(fd2, nb * pg, 0, &b);
	ASSERT_ALLOC(fd2, nc * pg, 0, &c);
	p = kheap_map(fd2, a.token, na * pg);
	ASSERT_MAPPED(p);
	fill_pages(p, na, pg, 0x5200);
	/* Through the file that made it, the mapping is still queryable. */
	expect_query(_metadata, fd2, p + pg, &a, pg);

	ASSERT_EQ(0, kheap_info(self->fd, &before));
	EXPECT_EQ(3ULL, before.chunks_in_use);
	EXPECT_EQ(self->pool - (na + nb + nc) * pg, before.free_bytes);
	close(fd2);

	/* No waiting: the release runs before close() returns. */
	ASSERT_EQ(0, kheap_info(self->fd, &after));
	EXPECT_EQ(before.free_bytes + (nb + nc) * pg, after.free_bytes)
		TH_LOG("B and C not freed by close(): %s -> %s",
		       kheap_state_str(&before, b1, sizeof(b1)),
		       kheap_state_str(&after, b2, sizeof(b2)));
	EXPECT_EQ(before.chunks_in_use - 2, after.chunks_in_use);

	/* A keeps its pages and data, and stays writable. */
	EXPECT_EQ(-1, check_pages(p, 0, na, pg, 0x5200));
	fill_pages(p, na, pg, 0x5300);
	EXPECT_EQ(-1, check_pages(p, 0, na, pg, 0x5300));

	ret = maps_name(p, name, sizeof(name));
	ASSERT_EQ(0, ret) TH_LOG("no mapping at %p in /proc/self/maps", p);
	EXPECT_NE(NULL, strstr(name, "[kheap]"))
		TH_LOG("/proc/self/maps names the mapping \"%s\", want anon_inode:[kheap]",
		       name);
	/* Another file cannot query it. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, p, &q));

	ASSERT_EQ(0, munmap(p, na * pg));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &after))
		TH_LOG("A not returned after munmap: %s",
		       kheap_state_str(&after, b1, sizeof(b1)));
}

TEST_F(kheap, close_frees_everything)
{
	uint64_t sizes[4] = { 1, 2, 3, 0 };
	struct kheap_alloc a[4];
	struct kheap_info info;
	char buf[192];
	int fd2, k;
	char *p;

	sizes[3] = self->pool / self->pg / 8 ? self->pool / self->pg / 8 : 1;
	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	for (k = 0; k < 4; k++) {
		ASSERT_ALLOC(fd2, sizes[k] * self->pg, 0, &a[k]);
		/* Map and touch half of them for a while. */
		if (k % 2)
			continue;
		p = kheap_map(fd2, a[k].token, a[k].size_out);
		ASSERT_MAPPED(p);
		fill_pages(p, sizes[k], self->pg, 0x6000);
		ASSERT_EQ(0, munmap(p, a[k].size_out));
	}
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(4ULL, info.chunks_in_use);
	close(fd2);
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("after close: %s", kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(self->pool, info.largest_free);
}

/* mmap semantics */

/*
 * A chunk allocated KHEAP_ALLOC_SHARED is shared with fork() children
 * (kheap_fork_test covers private chunks, the default).
 */
TEST_F(kheap, fork_shares_shared_memory)
{
	uint64_t len = 4 * self->pg;
	struct kheap_alloc a;
	struct kheap_info info;
	char buf[192];
	int status, sync_pipe[2];
	pid_t pid;
	char *p;

	memset(&a, 0, sizeof(a));
	a.size = len;
	a.flags = KHEAP_ALLOC_SHARED;
	ASSERT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &a));
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, 1, self->pg, 0x7000);

	/* The child sees the parent's data and the parent the child's. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (check_pages(p, 0, 1, self->pg, 0x7000) >= 0)
			_exit(1);
		fill_pages(p + self->pg, 3, self->pg, 0x7101);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child(pid));
	EXPECT_EQ(-1, check_pages(p + self->pg, 1, 3, self->pg, 0x7100));

	/*
	 * A child's inherited mapping keeps the chunk after the parent
	 * frees and unmaps it; the child still sees the data.
	 */
	ASSERT_EQ(0, pipe(sync_pipe));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;

		close(sync_pipe[1]);
		if (read(sync_pipe[0], &c, 1) != 1)
			_exit(2);
		if (check_pages(p, 0, 1, self->pg, 0x7000) >= 0 ||
		    check_pages(p + self->pg, 1, 3, self->pg, 0x7100) >= 0)
			_exit(1);
		_exit(0);
	}
	close(sync_pipe[0]);
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(1ULL, info.chunks_in_use);
	EXPECT_EQ(self->pool - len, info.free_bytes);
	ASSERT_EQ(1, write(sync_pipe[1], "x", 1));
	close(sync_pipe[1]);
	status = wait_child(pid);
	EXPECT_EQ(0, status) TH_LOG("child: %s", status == 1 ? "data lost" :
				    status > 128 ? "killed" : "failed");
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
}

TEST_F(kheap, munmap_middle_page)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	struct kheap_info info;
	struct kheap_query q;
	char buf[192];
	char *p;

	ASSERT_ALLOC(self->fd, 4 * pg, 0, &a);
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_MAPPED(p);
	fill_pages(p, 4, pg, 0x8000);

	ASSERT_EQ(0, munmap(p + pg, pg));
	EXPECT_EQ(-1, check_pages(p, 0, 1, pg, 0x8000));
	EXPECT_EQ(-1, check_pages(p + 2 * pg, 2, 2, pg, 0x8000));
	expect_query(_metadata, self->fd, p, &a, 0);
	expect_query(_metadata, self->fd, p + pg - 1, &a, pg - 1);
	expect_query(_metadata, self->fd, p + 2 * pg, &a, 2 * pg);
	expect_query(_metadata, self->fd, p + 4 * pg - 8, &a, 4 * pg - 8);
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, p + pg, &q));
	/* Both halves still write to the chunk. */
	fill_pages(p + 3 * pg, 1, pg, 0x8100 + 3);
	EXPECT_EQ(-1, check_pages(p + 3 * pg, 3, 1, pg, 0x8100));

	/* Freed, the chunk lives until the last piece is unmapped. */
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, munmap(p, pg));
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(1ULL, info.chunks_in_use);
	EXPECT_EQ(-1, check_pages(p + 2 * pg, 2, 1, pg, 0x8000));
	ASSERT_EQ(0, munmap(p + 2 * pg, 2 * pg));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
}

/*
 * A kheap mapping cannot grow, in place or by moving: that is what keeps
 * every access inside the chunk (the fault path would answer SIGBUS).
 */
TEST_F(kheap, mremap_grow_refused)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	char *area, *p, *r;

	ASSERT_ALLOC(self->fd, 4 * pg, 0, &a);
	/* Free room after the mapping, so growing in place is possible. */
	area = mmap(NULL, 8 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(area);
	p = mmap(area, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 self->fd, a.token);
	ASSERT_EQ(area, p);
	ASSERT_EQ(0, munmap(area + 2 * pg, 6 * pg));
	fill_pages(p, 2, pg, 0x9000);

	/* Still inside the chunk, and past its end: both refused. */
	r = mremap(p, 2 * pg, 3 * pg, 0);
	EXPECT_EQ(MAP_FAILED, r);
	EXPECT_EQ(EFAULT, errno);
	r = mremap(p, 2 * pg, 6 * pg, 0);
	EXPECT_EQ(MAP_FAILED, r);
	EXPECT_EQ(EFAULT, errno);
	r = mremap(p, 2 * pg, 3 * pg, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, r);
	EXPECT_EQ(EFAULT, errno);

	EXPECT_EQ(-1, check_pages(p, 0, 2, pg, 0x9000));
	expect_query(_metadata, self->fd, p + pg, &a, pg);
	munmap(p, 2 * pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, mremap_move_and_shrink)
{
	uint64_t pg = self->pg;
	int shift = page_shift(pg);
	struct kheap_alloc a;
	struct kheap_query q;
	uint64_t pfns[3];
	char *p, *dst, *r;
	int err;

	ASSERT_ALLOC(self->fd, 3 * pg, 0, &a);
	p = kheap_map(self->fd, a.token, 3 * pg);
	ASSERT_MAPPED(p);
	fill_pages(p, 3, pg, 0xa000);

	dst = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(dst);
	r = mremap(p, 3 * pg, 3 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	err = errno;
	ASSERT_EQ(dst, r) TH_LOG("mremap move: %s", strerror(err));

	EXPECT_EQ(-1, check_pages(dst, 0, 3, pg, 0xa000));
	expect_query(_metadata, self->fd, dst, &a, 0);
	expect_query(_metadata, self->fd, dst + pg + 1, &a, pg + 1);
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, p, &q));
	if (kheap_pagemap_pfns(dst, 3, pfns) == 0) {
		EXPECT_EQ(a.phys, pfns[0] << shift);
		EXPECT_EQ(a.phys + 2 * pg, pfns[2] << shift);
	}

	/* Shrinking is fine; the tail is no longer a kheap mapping. */
	r = mremap(dst, 3 * pg, pg, 0);
	err = errno;
	ASSERT_EQ(dst, r) TH_LOG("mremap shrink: %s", strerror(err));
	EXPECT_EQ(-1, check_pages(dst, 0, 1, pg, 0xa000));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_query(self->fd, dst + pg, &q));
	expect_query(_metadata, self->fd, dst + pg - 1, &a, pg - 1);

	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, munmap(dst, pg));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * remap_file_pages() re-mmaps a piece of a mapping at another offset of
 * the same file: the chunk bounds apply there too.  Accepting an offset
 * past the chunk would leave the fault path nothing but SIGBUS to give.
 */
TEST_F(kheap, remap_file_pages_bounds)
{
	uint64_t pg = self->pg, pgoff;
	struct kheap_alloc a;
	int ret, err;
	char *p;

	ASSERT_ALLOC(self->fd, 4 * pg, 0, &a);
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_MAPPED(p);
	fill_pages(p, 4, pg, 0xa800);
	pgoff = a.token / pg;

	/* Inside the chunk: the first page now shows the last one. */
	ret = remap_file_pages(p, pg, 0, pgoff + 3, 0);
	err = errno;
	if (ret && err == ENOSYS)
		SKIP(goto out, "remap_file_pages() not available");
	ASSERT_EQ(0, ret) TH_LOG("remap_file_pages: %s", strerror(err));
	EXPECT_EQ(-1, check_pages(p, 3, 1, pg, 0xa800));
	expect_query(_metadata, self->fd, p + 8, &a, 3 * pg + 8);
	EXPECT_EQ(-1, check_pages(p + pg, 1, 3, pg, 0xa800));

	/* Past the end of the chunk, or running over it: refused. */
	EXPECT_REFUSED(self->fd, EINVAL,
		       remap_file_pages(p + pg, pg, 0, pgoff + 4, 0) ? -errno : 0);
	EXPECT_REFUSED(self->fd, EINVAL,
		       remap_file_pages(p + 2 * pg, 2 * pg, 0, pgoff + 3, 0) ?
		       -errno : 0);
out:
	munmap(p, 4 * pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, map_private_refused)
{
	struct kheap_alloc a;

	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token, self->pg,
				PROT_READ | PROT_WRITE, MAP_PRIVATE));
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token, self->pg, PROT_READ,
				MAP_PRIVATE));
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, prot_exec_refused)
{
	struct kheap_alloc a;
	char *p;

	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	EXPECT_REFUSED(self->fd, EPERM,
		       try_mmap(self->fd, a.token, self->pg,
				PROT_READ | PROT_EXEC, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EPERM,
		       try_mmap(self->fd, a.token, self->pg,
				PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED));

	p = kheap_map(self->fd, a.token, self->pg);
	ASSERT_MAPPED(p);
	/* No VM_MAYEXEC: mprotect() answers EACCES (mm/mprotect.c). */
	EXPECT_EQ(-1, mprotect(p, self->pg, PROT_READ | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, mprotect(p, self->pg, PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	/* Dropping and restoring write access is fine. */
	EXPECT_EQ(0, mprotect(p, self->pg, PROT_READ));
	EXPECT_EQ(0, mprotect(p, self->pg, PROT_READ | PROT_WRITE));
	p[0] = 1;
	munmap(p, self->pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, mmap_bounds)
{
	uint64_t pg = self->pg;
	const int rw = PROT_READ | PROT_WRITE;
	struct kheap_alloc a, b, c;
	uint64_t never;
	char *p;

	ASSERT_ALLOC(self->fd, 4 * pg, 0, &a);
	ASSERT_ALLOC(self->fd, 2 * pg, 0, &b);
	ASSERT_ALLOC(self->fd, pg, 0, &c);
	ASSERT_EQ(0, kheap_free(self->fd, c.token));

	/* Inside the chunk: any page range works. */
	EXPECT_EQ(0, try_mmap(self->fd, a.token + pg, 2 * pg, rw, MAP_SHARED));
	EXPECT_EQ(0, try_mmap(self->fd, a.token + 3 * pg, pg, rw, MAP_SHARED));
	EXPECT_EQ(0, try_mmap(self->fd, a.token, 1, rw, MAP_SHARED));
	p = mmap(NULL, pg, rw, MAP_SHARED, self->fd, a.token + 2 * pg);
	ASSERT_MAPPED(p);
	expect_query(_metadata, self->fd, p + 3, &a, 2 * pg + 3);
	munmap(p, pg);

	/* Longer than the chunk, or running off its end into whatever follows. */
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token, 5 * pg, rw, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token + 3 * pg, 2 * pg, rw, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, b.token + pg, 2 * pg, rw, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token, 4 * pg + b.size_out, rw,
				MAP_SHARED));
	/* Freed, never issued, not page aligned. */
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, c.token, pg, rw, MAP_SHARED));
	never = (a.token > b.token ? a.token : b.token) + 64 * self->pool;
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, never, pg, rw, MAP_SHARED));
	EXPECT_REFUSED(self->fd, EINVAL,
		       try_mmap(self->fd, a.token + 1, pg, rw, MAP_SHARED));

	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_free(self->fd, b.token));
}

/*
 * Zapping the page tables of a kheap mapping (MADV_DONTNEED) must not lose
 * data: the next access faults the same frames back in.  This is the only
 * way to get user space through the fault path of a live mapping.
 */
TEST_F(kheap, refault_after_zap)
{
	uint64_t pg = self->pg;
	int shift = page_shift(pg);
	struct kheap_alloc a;
	uint64_t pfns[4];
	int status;
	pid_t pid;
	char *p;

	/* Shared, so that the parent sees what the child wrote. */
	memset(&a, 0, sizeof(a));
	a.size = 4 * pg;
	a.flags = KHEAP_ALLOC_SHARED;
	ASSERT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &a));
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_MAPPED(p);
	fill_pages(p, 4, pg, 0xb000);

	/* In a child: a broken fault path shows up as SIGBUS. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (madvise(p, 4 * pg, MADV_DONTNEED))
			_exit(errno == EINVAL ? 3 : 4);
		if (check_pages(p, 0, 4, pg, 0xb000) >= 0)
			_exit(1);
		fill_pages(p, 4, pg, 0xb100);
		_exit(0);
	}
	status = wait_child(pid);
	if (status == 3)
		SKIP(goto out, "MADV_DONTNEED refused on kheap mappings");
	ASSERT_EQ(0, status) TH_LOG("after MADV_DONTNEED: %s",
				    status == 1 ? "data lost" :
				    status == 128 + SIGBUS ? "SIGBUS on refault" :
				    "unexpected failure");
	EXPECT_EQ(-1, check_pages(p, 0, 4, pg, 0xb100));

	ASSERT_EQ(0, madvise(p, 4 * pg, MADV_DONTNEED));
	EXPECT_EQ(-1, check_pages(p, 0, 4, pg, 0xb100));
	if (kheap_pagemap_pfns(p, 4, pfns) == 0) {
		EXPECT_EQ(a.phys, pfns[0] << shift);
		EXPECT_EQ(a.phys + 3 * pg, pfns[3] << shift);
	}
out:
	munmap(p, 4 * pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

/*
 * get_user_pages() users.  Every pool is pages in the kernel's direct
 * map, a reserved (memmap=) one included: these work on all of them.
 */

TEST_F(kheap, process_vm_readv_writev)
{
	uint64_t npages = min_u64(16, self->pool / self->pg / 4);
	uint64_t len = npages * self->pg;
	int to_parent[2], to_child[2], status, err;
	struct iovec local, remote[2];
	uintptr_t addr;
	char *buf;
	pid_t pid;
	ssize_t n;

	ASSERT_GT(npages, 0ULL);
	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	buf = malloc(len);
	ASSERT_NE(NULL, buf);

	/* The child owns a kheap buffer that the parent never maps. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct kheap_alloc a;
		int fd2 = kheap_open();
		char *p, c;

		if (fd2 < 0 || kheap_alloc(fd2, len, 0, &a))
			_exit(10);
		p = kheap_map(fd2, a.token, len);
		if (p == MAP_FAILED)
			_exit(11);
		fill_pages(p, npages, self->pg, 0xc000);
		addr = (uintptr_t)p;
		if (write(to_parent[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(12);
		if (read(to_child[0], &c, 1) != 1)
			_exit(13);
		if (check_pages(p, 0, npages, self->pg, 0xc100) >= 0)
			_exit(14);
		_exit(0);
	}
	ASSERT_EQ((ssize_t)sizeof(addr), read(to_parent[0], &addr, sizeof(addr)));

	/* Two remote segments, split in the middle of a page. */
	remote[0].iov_base = (void *)addr;
	remote[0].iov_len = len / 2 + 100;
	remote[1].iov_base = (void *)(addr + len / 2 + 100);
	remote[1].iov_len = len / 2 - 100;
	local.iov_base = buf;
	local.iov_len = len;
	memset(buf, 0, len);
	n = process_vm_readv(pid, &local, 1, remote, 2, 0);
	err = errno;
	EXPECT_EQ((ssize_t)len, n) TH_LOG("process_vm_readv: %s", strerror(err));
	EXPECT_EQ(-1, check_pages(buf, 0, npages, self->pg, 0xc000));

	fill_pages(buf, npages, self->pg, 0xc100);
	n = process_vm_writev(pid, &local, 1, remote, 2, 0);
	err = errno;
	EXPECT_EQ((ssize_t)len, n) TH_LOG("process_vm_writev: %s", strerror(err));

	ASSERT_EQ(1, write(to_child[1], "x", 1));
	status = wait_child(pid);
	EXPECT_EQ(0, status) TH_LOG("child step %d (14: data written by process_vm_writev missing)",
				    status);
	free(buf);
}

struct loopdev {
	int dev;	/* /dev/loopN, configured */
	int dio;	/* /dev/loopN opened O_DIRECT */
	int back;	/* the backing file, unlinked */
	char name[32];
};

/*
 * Attach an unlinked file of @len bytes holding @content to a free loop
 * device.  The device is set to auto-clear, so it goes away when this
 * process's descriptors are closed, whatever happens to the test.
 * -ENOENT when there is no loop driver.
 */
static int loop_attach(struct loopdev *ld, const void *content, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];
	int ctl, ret = 0, tries;

	memset(ld, 0, sizeof(*ld));
	ld->dev = ld->dio = ld->back = -1;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;

	snprintf(path, sizeof(path), "%s/kheap-loop-XXXXXX", tmp ? tmp : "/tmp");
	ld->back = mkostemp(path, O_CLOEXEC);
	if (ld->back < 0) {
		ret = -errno;
		goto out;
	}
	unlink(path);
	if (pwrite(ld->back, content, len, 0) != (ssize_t)len) {
		ret = -EIO;
		goto out;
	}

	for (tries = 0; tries < 20; tries++) {
		struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		int wait;

		if (nr < 0) {
			ret = -errno;
			goto out;
		}
		snprintf(ld->name, sizeof(ld->name), "/dev/loop%d", nr);
		/* devtmpfs may take a moment to show a new node. */
		for (wait = 0; wait < 100; wait++) {
			ld->dev = open(ld->name, O_RDWR | O_CLOEXEC);
			if (ld->dev >= 0 || errno != ENOENT)
				break;
			kheap_sleep_ms(10);
		}
		if (ld->dev < 0) {
			ret = -errno;
			goto out;
		}
#ifdef LOOP_CONFIGURE
		{
			struct loop_config cfg = { .fd = ld->back, .info = info };

			if (!ioctl(ld->dev, LOOP_CONFIGURE, &cfg))
				break;
			ret = -errno;
			if (ret == -EBUSY)
				goto again;
			if (ret != -EINVAL && ret != -ENOTTY)
				goto out;
		}
#endif
		if (ioctl(ld->dev, LOOP_SET_FD, ld->back)) {
			ret = -errno;
			if (ret == -EBUSY)
				goto again;
			goto out;
		}
		if (ioctl(ld->dev, LOOP_SET_STATUS64, &info)) {
			ret = -errno;
			ioctl(ld->dev, LOOP_CLR_FD, 0);
			goto out;
		}
		break;
again:
		/* Someone else took that device: try the next free one. */
		close(ld->dev);
		ld->dev = -1;
	}
	if (ld->dev < 0) {
		ret = -EBUSY;
		goto out;
	}
	ret = 0;
	ld->dio = open(ld->name, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (ld->dio < 0)
		ret = -errno;
out:
	close(ctl);
	return ret;
}

static void loop_detach(struct loopdev *ld)
{
	if (ld->dio >= 0)
		close(ld->dio);
	if (ld->dev >= 0)
		close(ld->dev);	/* auto-clear detaches on last close */
	if (ld->back >= 0)
		close(ld->back);
}

/* O_DIRECT read from a block device lands in the kheap pages themselves. */
TEST_F(kheap, odirect_read_into_chunk)
{
	uint64_t npages = min_u64(32, self->pool / self->pg / 4);
	uint64_t len = npages * self->pg;
	struct kheap_alloc a;
	struct loopdev ld;
	char *content, *p;
	ssize_t n;
	int ret, err;

	ASSERT_GT(npages, 0ULL);
	content = malloc(2 * len);
	ASSERT_NE(NULL, content);
	fill_pages(content, 2 * npages, self->pg, 0xd000);
	ret = loop_attach(&ld, content, 2 * len);
	if (ret == -ENOENT)
		SKIP(goto out, "no /dev/loop-control (CONFIG_BLK_DEV_LOOP)");
	ASSERT_EQ(0, ret) TH_LOG("loop device: %s", kheap_errname(ret));

	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	/* Not touched first: the pages are faulted in for the I/O. */
	n = pread(ld.dio, p, len, len);
	err = errno;
	EXPECT_EQ((ssize_t)len, n) TH_LOG("O_DIRECT read: %s", strerror(err));
	EXPECT_EQ(-1, check_pages(p, npages, npages, self->pg, 0xd000));

	/* Again into the middle of the chunk, pages already present. */
	memset(p, 0, len);
	n = pread(ld.dio, p + self->pg, len - self->pg, 0);
	EXPECT_EQ((ssize_t)(len - self->pg), n);
	EXPECT_EQ(-1, kheap_check_zero(p, self->pg));
	EXPECT_EQ(-1, check_pages(p + self->pg, 0, npages - 1, self->pg, 0xd000));
	munmap(p, len);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	loop_detach(&ld);
out:
	free(content);
}

/* O_DIRECT write to a block device takes the data from the kheap pages. */
TEST_F(kheap, odirect_write_from_chunk)
{
	uint64_t npages = min_u64(32, self->pool / self->pg / 4);
	uint64_t len = npages * self->pg;
	struct kheap_alloc a;
	struct loopdev ld;
	char *content, *p;
	ssize_t n;
	int ret, err;

	ASSERT_GT(npages, 0ULL);
	content = calloc(1, len);
	ASSERT_NE(NULL, content);
	ret = loop_attach(&ld, content, len);
	if (ret == -ENOENT)
		SKIP(goto out, "no /dev/loop-control (CONFIG_BLK_DEV_LOOP)");
	ASSERT_EQ(0, ret) TH_LOG("loop device: %s", kheap_errname(ret));

	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, npages, self->pg, 0xe000);
	n = pwrite(ld.dio, p, len, 0);
	err = errno;
	EXPECT_EQ((ssize_t)len, n) TH_LOG("O_DIRECT write: %s", strerror(err));
	EXPECT_EQ(0, fsync(ld.dio));

	/* What reached the backing file is what the chunk held. */
	n = pread(ld.back, content, len, 0);
	EXPECT_EQ((ssize_t)len, n);
	EXPECT_EQ(-1, check_pages(content, 0, npages, self->pg, 0xe000));

	munmap(p, len);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	loop_detach(&ld);
out:
	free(content);
}

/* Exhaustion and ENOMEM */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Single pages until ENOMEM: exactly pool_size / page_size of them,
 * covering the pool once.  With every other page given back, a two-page
 * request finds no extent; with all given back, the pool is one chunk.
 * 64 MiB page by page takes minutes on the KASAN kernel of check-debug
 * (a reserved pool's ZONE_DEVICE pages about a quarter more than a
 * contig pool's): hence the long limit.
 */
TEST_F_TIMEOUT(kheap, exhaustion, 600)
{
	uint64_t pg = self->pg, n = self->pool / pg, count = 0, i, bad;
	uint64_t *tokens, *phys, *sorted;
	struct kheap_info info;
	struct kheap_alloc a;
	bool *freed;
	char buf[192];
	int ret;

	tokens = calloc(n + 1, sizeof(*tokens));
	phys = calloc(n + 1, sizeof(*phys));
	sorted = calloc(n + 1, sizeof(*sorted));
	freed = calloc(n + 1, sizeof(*freed));
	ASSERT_NE(NULL, tokens);
	ASSERT_NE(NULL, phys);
	ASSERT_NE(NULL, sorted);
	ASSERT_NE(NULL, freed);

	for (;;) {
		ret = kheap_alloc(self->fd, pg, 0, &a);
		if (ret == -ENOMEM)
			break;
		ASSERT_EQ(0, ret) TH_LOG("page %llu: %s",
					 (unsigned long long)count,
					 kheap_errname(ret));
		ASSERT_LT(count, n) TH_LOG("more pages than the pool holds");
		tokens[count] = a.token;
		phys[count] = a.phys;
		count++;
	}
	EXPECT_EQ(n, count);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(0ULL, info.free_bytes);
	EXPECT_EQ(0ULL, info.largest_free);
	EXPECT_EQ(count, info.chunks_in_use);
	EXPECT_EQ(count, info.file_chunks);
	EXPECT_EQ(count * pg, info.file_bytes);
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, pg, 0, &a));
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, 1, 0, &a));

	/* Tokens are unique; the pages tile the pool exactly. */
	memcpy(sorted, tokens, count * sizeof(*tokens));
	qsort(sorted, count, sizeof(*sorted), cmp_u64);
	for (i = 1, bad = 0; i < count; i++)
		bad += sorted[i] == sorted[i - 1];
	EXPECT_EQ(0ULL, bad) TH_LOG("%llu duplicate tokens", (unsigned long long)bad);
	if (self->pool_phys) {
		memcpy(sorted, phys, count * sizeof(*phys));
		qsort(sorted, count, sizeof(*sorted), cmp_u64);
		for (i = 0, bad = 0; i < count; i++)
			bad += sorted[i] != self->pool_phys + i * pg;
		EXPECT_EQ(0ULL, bad) TH_LOG("%llu pages are not a tiling of the pool",
					 (unsigned long long)bad);
	}

	/*
	 * Give back every other page in physical order: plenty of free
	 * memory, but no two free pages are adjacent.
	 */
	if (self->pool_phys && count >= 3) {
		uint64_t nfreed = 0;

		for (i = 0; i < count; i++) {
			if (((phys[i] - self->pool_phys) / pg) % 2)
				continue;
			ASSERT_EQ(0, kheap_free(self->fd, tokens[i]));
			freed[i] = true;
			nfreed++;
		}
		ASSERT_EQ(0, kheap_wait_state(self->fd, nfreed * pg,
					      count - nfreed, KHEAP_SETTLE_MS,
					      &info))
			TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
		EXPECT_EQ(pg, info.largest_free);
		EXPECT_REFUSED(self->fd, ENOMEM,
			       kheap_alloc(self->fd, 2 * pg, 0, &a));
		EXPECT_REFUSED(self->fd, ENOMEM,
			       kheap_alloc(self->fd, pg + 1, 0, &a));
		ASSERT_ALLOC(self->fd, pg, 0, &a);
		EXPECT_EQ(0, kheap_free(self->fd, a.token));
	}

	for (i = 0; i < count; i++)
		if (!freed[i])
			ASSERT_EQ(0, kheap_free(self->fd, tokens[i]))
				TH_LOG("FREE page %llu", (unsigned long long)i);
	ASSERT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(self->pool, info.largest_free);

	/* Coalesced: the whole pool in one chunk, under a brand new token. */
	ASSERT_ALLOC(self->fd, self->pool, 0, &a);
	EXPECT_EQ(self->pool, a.size_out);
	if (self->pool_phys)
		EXPECT_EQ(self->pool_phys, a.phys);
	qsort(tokens, count, sizeof(*tokens), cmp_u64);
	EXPECT_EQ(NULL, bsearch(&a.token, tokens, count, sizeof(*tokens), cmp_u64))
		TH_LOG("token %#llx handed out twice by one file",
		       (unsigned long long)a.token);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	free(tokens);
	free(phys);
	free(sorted);
	free(freed);
}

TEST_F_TIMEOUT(kheap, alloc_too_large, 120)
{
	uint64_t pg = self->pg, half = self->pool / pg / 2 * pg;
	struct kheap_alloc a, b;
	struct kheap_info info;

	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, self->pool + 1, 0, &a));
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, self->pool + pg, 0, &a));
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, 2 * self->pool, 0, &a));
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, 1ULL << 62, 0, &a));
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, 1ULL << 63, 0, &a));
	/* The largest page multiple does not overflow when rounded. */
	EXPECT_REFUSED(self->fd, ENOMEM, kheap_alloc(self->fd, UINT64_MAX & ~(pg - 1), 0, &a));

	if (!half)
		return;
	ASSERT_ALLOC(self->fd, half, 0, &a);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(self->pool - half, info.free_bytes);
	EXPECT_REFUSED(self->fd, ENOMEM,
		       kheap_alloc(self->fd, info.largest_free + 1, 0, &b));
	EXPECT_REFUSED(self->fd, ENOMEM,
		       kheap_alloc(self->fd, info.free_bytes + pg, 0, &b));
	ASSERT_ALLOC(self->fd, info.largest_free, 0, &b);
	EXPECT_EQ(0, kheap_free(self->fd, b.token));
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F_TIMEOUT(kheap, alloc_alignment, 120)
{
	uint64_t pg = self->pg, end = self->pool_phys + self->pool, al;
	const uint64_t small[] = { 1, 2, 64, 512, pg / 2 };
	struct kheap_alloc a, pad;
	unsigned int k, tried = 0;

	/* Not a power of two, or larger than the pool. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, 3, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, 3 * pg, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, pg + 1, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, UINT64_MAX, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, 1ULL << 63, &a));
	for (al = pg; al <= self->pool; al <<= 1)
		;
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, pg, al, &a));

	/* 0 and anything below a page mean page alignment. */
	for (k = 0; k < ARRAY_SIZE(small); k++) {
		ASSERT_ALLOC(self->fd, pg, small[k], &a);
		EXPECT_EQ(0ULL, a.phys % pg);
		EXPECT_EQ(0, kheap_free(self->fd, a.token));
	}

	if (!self->pool_phys)
		SKIP(return, "physical addresses are hidden from this process");

	/*
	 * Every power of two up to the pool size, on an empty pool and with
	 * one page taken first: success exactly when an aligned page (or an
	 * aligned chunk of the alignment's size) fits in the pool.
	 */
	for (al = pg; al <= self->pool; al <<= 1) {
		uint64_t first = round_up(self->pool_phys, al);
		int round;

		for (round = 0; round < 2; round++) {
			uint64_t size = round ? al : pg;
			bool fits = first + size <= end;

			if (!fits) {
				EXPECT_REFUSED(self->fd, ENOMEM,
					       kheap_alloc(self->fd, size, al, &a));
				continue;
			}
			ASSERT_ALLOC(self->fd, size, al, &a);
			EXPECT_EQ(0ULL, a.phys % al)
				TH_LOG("align %#llx: phys %#llx",
				       (unsigned long long)al,
				       (unsigned long long)a.phys);
			EXPECT_GE(a.phys, self->pool_phys);
			EXPECT_LE(a.phys + size, end);
			EXPECT_EQ(0, kheap_free(self->fd, a.token));
			tried++;
		}
		/* Taken first page at the start of the pool, if it is free. */
		if (first + pg <= end && al > pg &&
		    first + al + pg <= end) {
			ASSERT_ALLOC(self->fd, pg, 0, &pad);
			ASSERT_ALLOC(self->fd, pg, al, &a);
			EXPECT_EQ(0ULL, a.phys % al);
			EXPECT_NE(pad.phys, a.phys);
			EXPECT_EQ(0, kheap_free(self->fd, a.token));
			EXPECT_EQ(0, kheap_free(self->fd, pad.token));
		}
	}
	EXPECT_GT(tried, 0ULL);
	TH_LOG("%u aligned allocations, alignments %#llx..%#llx",
	       tried, (unsigned long long)pg, (unsigned long long)(al >> 1));
}

/* Bad input */

TEST_F(kheap, ioctl_unknown_commands)
{
	const unsigned long cmds[] = {
		/* unknown numbers (0x05-0x07 ABI 2, 0x08 ABI 3, 0x09 ABI 4, 0x0a-0x0b ABI 5) */
		_IO(KHEAP_IOC_MAGIC, 0x0c),
		_IOR(KHEAP_IOC_MAGIC, 0x0c, struct kheap_info),
		_IOWR(KHEAP_IOC_MAGIC, 0x0c, struct kheap_alloc),
		/* EXPORT's number, wrong direction */
		_IO(KHEAP_IOC_MAGIC, 0x09),
		_IOR(KHEAP_IOC_MAGIC, 0x09, struct kheap_export),
		_IOW(KHEAP_IOC_MAGIC, 0x09, struct kheap_export),
		_IOW(KHEAP_IOC_MAGIC, 0x3f, struct kheap_free),
		_IOWR(KHEAP_IOC_MAGIC, 0xff, struct kheap_query),
		/* another magic */
		_IOR(KHEAP_IOC_MAGIC + 1, 0x00, struct kheap_info),
		_IOWR(KHEAP_IOC_MAGIC + 1, 0x01, struct kheap_alloc),
		_IOW(KHEAP_IOC_MAGIC - 1, 0x02, struct kheap_free),
		_IOWR(KHEAP_IOC_MAGIC - 1, 0x03, struct kheap_query),
		_IOW('k', 0x04, struct kheap_sync),
		/* known numbers, wrong direction */
		_IO(KHEAP_IOC_MAGIC, 0x00),
		_IOW(KHEAP_IOC_MAGIC, 0x00, struct kheap_info),
		_IOR(KHEAP_IOC_MAGIC, 0x00, struct kheap_info),
		_IO(KHEAP_IOC_MAGIC, 0x01),
		_IOR(KHEAP_IOC_MAGIC, 0x01, struct kheap_alloc),
		_IOW(KHEAP_IOC_MAGIC, 0x01, struct kheap_alloc),
		_IO(KHEAP_IOC_MAGIC, 0x02),
		_IOR(KHEAP_IOC_MAGIC, 0x02, struct kheap_free),
		_IOWR(KHEAP_IOC_MAGIC, 0x02, struct kheap_free),
		_IOR(KHEAP_IOC_MAGIC, 0x03, struct kheap_query),
		_IOW(KHEAP_IOC_MAGIC, 0x03, struct kheap_query),
		_IO(KHEAP_IOC_MAGIC, 0x04),
		_IOR(KHEAP_IOC_MAGIC, 0x04, struct kheap_sync),
		_IOWR(KHEAP_IOC_MAGIC, 0x04, struct kheap_sync),
		_IO(KHEAP_IOC_MAGIC, 0x05),
		_IOW(KHEAP_IOC_MAGIC, 0x05, struct kheap_attach),
		_IOR(KHEAP_IOC_MAGIC, 0x05, struct kheap_attach),
		_IOWR(KHEAP_IOC_MAGIC, 0x06, struct kheap_detach),
		_IOR(KHEAP_IOC_MAGIC, 0x06, struct kheap_detach),
		_IOW(KHEAP_IOC_MAGIC, 0x07, struct kheap_dma_addr),
		_IO(KHEAP_IOC_MAGIC, 0x07),
	};
	uint64_t arg[64];
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(cmds); k++) {
		memset(arg, 0, sizeof(arg));
		arg[0] = self->pg;	/* a plausible ALLOC size or token */
		EXPECT_REFUSED(self->fd, ENOTTY, kheap_ioctl(self->fd, cmds[k], arg));
	}
}

TEST_F(kheap, ioctl_bad_pointers)
{
	const unsigned long cmds[] = {
		KHEAP_IOC_INFO, KHEAP_IOC_ALLOC, KHEAP_IOC_FREE,
		KHEAP_IOC_QUERY, KHEAP_IOC_SYNC,
	};
	uint64_t pg = self->pg;
	struct kheap_alloc a, *ro_alloc;
	struct kheap_query *ro_query;
	struct kheap_sync *ro_sync;
	struct kheap_free *ro_free;
	char *ro, *edge, *p;
	unsigned int k;

	ASSERT_ALLOC(self->fd, 2 * pg, 0, &a);
	p = kheap_map(self->fd, a.token, 2 * pg);
	ASSERT_MAPPED(p);

	for (k = 0; k < ARRAY_SIZE(cmds); k++)
		EXPECT_REFUSED(self->fd, EFAULT, kheap_ioctl(self->fd, cmds[k], NULL));
	EXPECT_REFUSED(self->fd, EFAULT,
		       kheap_ioctl(self->fd, KHEAP_IOC_INFO, (void *)-4096L));

	/*
	 * Valid arguments in read-only memory: commands that write back fail
	 * without side effects (ALLOC leaves no chunk behind), FREE and SYNC
	 * only read and succeed.
	 */
	ro = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(ro);
	memset(ro, 0, pg);
	ro_alloc = (void *)ro;
	ro_alloc->size = pg;
	ro_query = (void *)(ro + 256);
	ro_query->addr = (uintptr_t)p + 8;
	ro_sync = (void *)(ro + 512);
	ro_sync->token = a.token;
	ro_sync->length = pg;
	ro_sync->flags = KHEAP_SYNC_WRITE;
	ro_free = (void *)(ro + 768);
	ro_free->token = a.token;
	ASSERT_EQ(0, mprotect(ro, pg, PROT_READ));
	EXPECT_REFUSED(self->fd, EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_INFO, ro + 1024));
	EXPECT_REFUSED(self->fd, EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, ro_alloc));
	EXPECT_REFUSED(self->fd, EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_QUERY, ro_query));
	EXPECT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_SYNC, ro_sync));

	/* An argument that runs into an inaccessible page. */
	edge = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_MAPPED(edge);
	ASSERT_EQ(0, mprotect(edge + pg, pg, PROT_NONE));
	for (k = 0; k < ARRAY_SIZE(cmds); k++) {
		char *arg = edge + pg - 16;

		memset(arg, 0, 16);
		if (cmds[k] == KHEAP_IOC_ALLOC)
			((uint64_t *)arg)[0] = pg;
		else if (cmds[k] != KHEAP_IOC_INFO)
			((uint64_t *)arg)[0] = cmds[k] == KHEAP_IOC_QUERY ?
					       (uintptr_t)p : a.token;
		EXPECT_REFUSED(self->fd, EFAULT, kheap_ioctl(self->fd, cmds[k], arg));
	}

	/* Last, as it gives the chunk back. */
	EXPECT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_FREE, ro_free));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, a.token));
	munmap(edge, 2 * pg);
	munmap(ro, pg);
	munmap(p, 2 * pg);
}

TEST_F(kheap, ioctl_nonzero_reserved_and_output)
{
	const uint64_t vals[] = { 1, 1ULL << 32, 1ULL << 63 };
	struct kheap_alloc a, al;
	struct kheap_query q;
	struct kheap_free fr;
	struct kheap_sync sy;
	unsigned int k, v;
	char *p;

	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	p = kheap_map(self->fd, a.token, self->pg);
	ASSERT_MAPPED(p);

	for (v = 0; v < ARRAY_SIZE(vals); v++) {
		/* ALLOC: token, phys, size_out, reserved[], flags. */
		for (k = 2; k < sizeof(al) / sizeof(uint64_t); k++) {
			memset(&al, 0, sizeof(al));
			al.size = self->pg;
			/* flags: only the undefined bits of the value */
			if (k == 2 && !(vals[v] & ~KHEAP_ALLOC_FLAGS_VALID))
				continue;
			((uint64_t *)&al)[k] = k == 2 ?
				vals[v] & ~KHEAP_ALLOC_FLAGS_VALID : vals[v];
			EXPECT_REFUSED_MSG(self->fd, EINVAL,
					   kheap_ioctl(self->fd, KHEAP_IOC_ALLOC,
						       &al),
					   "word %u = %#llx", k,
					   (unsigned long long)vals[v]);
		}
		/* QUERY: flags, phys, token, offset, chunk_size, reserved[]. */
		for (k = 1; k < sizeof(q) / sizeof(uint64_t); k++) {
			memset(&q, 0, sizeof(q));
			q.addr = (uintptr_t)p;
			((uint64_t *)&q)[k] = vals[v];
			EXPECT_REFUSED(self->fd, EINVAL,
				       kheap_ioctl(self->fd, KHEAP_IOC_QUERY, &q));
		}
		/* SYNC: reserved[] (flags are covered by sync_bad_requests). */
		for (k = 0; k < ARRAY_SIZE(sy.reserved); k++) {
			memset(&sy, 0, sizeof(sy));
			sy.token = a.token;
			sy.length = self->pg;
			sy.flags = KHEAP_SYNC_READ;
			sy.reserved[k] = vals[v];
			EXPECT_REFUSED(self->fd, EINVAL,
				       kheap_ioctl(self->fd, KHEAP_IOC_SYNC, &sy));
		}
		/* FREE: reserved[]; the chunk must survive the attempt. */
		for (k = 0; k < ARRAY_SIZE(fr.reserved); k++) {
			memset(&fr, 0, sizeof(fr));
			fr.token = a.token;
			fr.reserved[k] = vals[v];
			EXPECT_REFUSED(self->fd, EINVAL,
				       kheap_ioctl(self->fd, KHEAP_IOC_FREE, &fr));
		}
	}
	/* ALLOC flags: none are defined. */
	for (v = 0; v < 64; v++) {
		if (KHEAP_ALLOC_FLAGS_VALID & (1ULL << v))
			continue;
		memset(&al, 0, sizeof(al));
		al.size = self->pg;
		al.flags = 1ULL << v;
		EXPECT_REFUSED(self->fd, EINVAL,
			       kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &al));
	}
	expect_query(_metadata, self->fd, p, &a, 0);
	munmap(p, self->pg);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

TEST_F(kheap, alloc_bad_sizes)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;

	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, 0, 0, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, 0, pg, &a));
	/* Rounding these up to whole pages overflows. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, UINT64_MAX, 0, &a));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_alloc(self->fd, UINT64_MAX - pg + 2, 0, &a));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_alloc(self->fd, (UINT64_MAX & ~(pg - 1)) + 1, 0, &a));
}

TEST_F(kheap, bogus_tokens)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	uint64_t bogus[] = {
		0, 0, 0, 0, UINT64_MAX, UINT64_MAX & ~(pg - 1), 1ULL << 63,
		1ULL << 32,
	};
	unsigned int k;
	int fd2;

	/* A fresh file owns nothing, not even token 0. */
	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	EXPECT_REFUSED(fd2, EINVAL, kheap_free(fd2, 0));
	EXPECT_REFUSED(fd2, EINVAL, kheap_sync(fd2, 0, 0, pg, KHEAP_SYNC_READ));
	EXPECT_REFUSED(fd2, EINVAL, try_mmap(fd2, 0, pg, PROT_READ, MAP_SHARED));
	close(fd2);

	ASSERT_ALLOC(self->fd, 2 * pg, 0, &a);
	bogus[0] = a.token + 1;			/* unaligned */
	bogus[1] = a.token + pg;		/* inside the chunk */
	bogus[2] = a.token + 64 * self->pool;	/* never issued */
	bogus[3] = a.token ? 0 : 4 * self->pool;
	for (k = 0; k < ARRAY_SIZE(bogus); k++) {
		if (bogus[k] == a.token)
			continue;
		EXPECT_REFUSED_MSG(self->fd, EINVAL, kheap_free(self->fd, bogus[k]),
				   "token %#llx", (unsigned long long)bogus[k]);
		EXPECT_REFUSED_MSG(self->fd, EINVAL,
				   kheap_sync(self->fd, bogus[k], 0, pg, KHEAP_SYNC_READ),
				   "token %#llx", (unsigned long long)bogus[k]);
		/* mmap offsets above the off_t range are the kernel's to refuse. */
		if (bogus[k] <= (uint64_t)INT64_MAX - pg && !(bogus[k] % pg) &&
		    bogus[k] != a.token + pg)
			EXPECT_REFUSED_MSG(self->fd, EINVAL,
					   try_mmap(self->fd, bogus[k], pg,
						    PROT_READ, MAP_SHARED),
					   "token %#llx", (unsigned long long)bogus[k]);
	}

	/* Double free. */
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, a.token));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, 0, pg, KHEAP_SYNC_READ));
}

TEST_F(kheap, sync_requests)
{
	const uint64_t dirs[] = { KHEAP_SYNC_READ, KHEAP_SYNC_WRITE, KHEAP_SYNC_RW };
	const uint64_t when[] = { KHEAP_SYNC_START, KHEAP_SYNC_END };
	uint64_t pg = self->pg, len = 4 * pg;
	struct kheap_alloc a;
	unsigned int d, w, b;
	int ret;
	char *p;

	ASSERT_ALLOC(self->fd, len, 0, &a);

	for (d = 0; d < ARRAY_SIZE(dirs); d++) {
		for (w = 0; w < ARRAY_SIZE(when); w++) {
			uint64_t f = dirs[d] | when[w];

			EXPECT_EQ(0, kheap_sync(self->fd, a.token, 0, len, f))
				TH_LOG("flags %#llx", (unsigned long long)f);
			EXPECT_EQ(0, kheap_sync(self->fd, a.token, len - 1, 1, f));
			EXPECT_EQ(0, kheap_sync(self->fd, a.token, pg + 3, pg, f));
		}
	}
	/* Mapped or not makes no difference. */
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	p[0] = 1;
	ret = kheap_sync(self->fd, a.token, 0, len, KHEAP_SYNC_WRITE | KHEAP_SYNC_END);
	EXPECT_EQ(0, ret);

	/* Flags: no direction, unknown bits. */
	EXPECT_REFUSED(self->fd, EINVAL, kheap_sync(self->fd, a.token, 0, len, 0));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, 0, len, KHEAP_SYNC_END));
	for (b = 0; b < 64; b++) {
		if (KHEAP_SYNC_FLAGS_VALID & (1ULL << b))
			continue;
		EXPECT_REFUSED_MSG(self->fd, EINVAL,
				   kheap_sync(self->fd, a.token, 0, len,
					      KHEAP_SYNC_READ | (1ULL << b)),
				   "bit %u", b);
	}
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, 0, len, UINT64_MAX));

	/* Ranges: empty, past the end, wrapping. */
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, 0, 0, KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, pg, 0, KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, 0, len + 1, KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, len, 1, KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, len - 1, 2, KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, pg, UINT64_MAX - pg + 1,
				  KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, pg, UINT64_MAX,
				  KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, UINT64_MAX, 2,
				  KHEAP_SYNC_READ));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_sync(self->fd, a.token, UINT64_MAX - pg + 1, pg,
				  KHEAP_SYNC_READ));

	munmap(p, len);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

/*
 * A caller struct smaller than the command's first published size
 * (KHEAP_*_SIZE_VER0) is refused with EINVAL: no caller of any version
 * sends less, so a short struct is a bug, and acting on the prefix (an
 * ALLOC that never saw its alignment) would hide it.  Nothing is done and
 * nothing is written back; every request below is valid but for its size.
 */
TEST_F(kheap, abi_smaller_struct_refused)
{
	static const struct {
		unsigned long cmd;
		size_t ver0;
		const char *name;
	} cmds[] = {
		{ KHEAP_IOC_INFO, KHEAP_INFO_SIZE_VER0, "INFO" },
		{ KHEAP_IOC_ALLOC, KHEAP_ALLOC_SIZE_VER0, "ALLOC" },
		{ KHEAP_IOC_FREE, KHEAP_FREE_SIZE_VER0, "FREE" },
		{ KHEAP_IOC_QUERY, KHEAP_QUERY_SIZE_VER0, "QUERY" },
		{ KHEAP_IOC_SYNC, KHEAP_SYNC_SIZE_VER0, "SYNC" },
	};
	uint8_t req[256], buf[256 + 64], copy[sizeof(buf)];
	struct kheap_info before, after;
	unsigned int c, bad = 0, tried = 0;
	struct kheap_alloc a, b;
	char b1[192], b2[192];
	size_t sz;
	char *p;
	int ret;

	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	p = kheap_map(self->fd, a.token, self->pg);
	ASSERT_MAPPED(p);
	/* FREE's target: unmapped, so a FREE taken wrongly shows at once. */
	ASSERT_ALLOC(self->fd, self->pg, 0, &b);

	/* The examples of the ABI text first, for clear messages. */
	memset(buf, 0, sizeof(buf));
	((struct kheap_alloc *)buf)->size = self->pg;
	EXPECT_REFUSED_MSG(self->fd, EINVAL,
			   kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_ALLOC, 8), buf),
			   "(8-byte ALLOC)");
	memset(buf, 0, sizeof(buf));
	EXPECT_REFUSED_MSG(self->fd, EINVAL,
			   kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_INFO, 0), buf),
			   "(0-byte INFO)");
	memset(buf, 0, sizeof(buf));
	((struct kheap_query *)buf)->addr = (uintptr_t)p;
	EXPECT_REFUSED_MSG(self->fd, EINVAL,
			   kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_QUERY, 0), buf),
			   "(0-byte QUERY)");

	for (c = 0; c < ARRAY_SIZE(cmds); c++) {
		ASSERT_LE(cmds[c].ver0, _IOC_SIZE(cmds[c].cmd));
		ASSERT_LE(_IOC_SIZE(cmds[c].cmd), sizeof(req));
		memset(req, 0, sizeof(req));
		switch (_IOC_NR(cmds[c].cmd)) {
		case _IOC_NR(KHEAP_IOC_ALLOC):
			((struct kheap_alloc *)req)->size = self->pg;
			break;
		case _IOC_NR(KHEAP_IOC_FREE):
			((struct kheap_free *)req)->token = b.token;
			break;
		case _IOC_NR(KHEAP_IOC_QUERY):
			((struct kheap_query *)req)->addr = (uintptr_t)p + 1;
			break;
		case _IOC_NR(KHEAP_IOC_SYNC):
			((struct kheap_sync *)req)->token = a.token;
			((struct kheap_sync *)req)->length = self->pg;
			((struct kheap_sync *)req)->flags = KHEAP_SYNC_RW;
			break;
		}
		/* Every size below VER0: the prefix of a valid request. */
		for (sz = 0; sz < cmds[c].ver0; sz++) {
			memset(buf, 0xa5, sizeof(buf));
			memcpy(buf, req, sz);
			memcpy(copy, buf, sizeof(buf));
			ASSERT_EQ(0, kheap_info(self->fd, &before));
			ret = kheap_ioctl(self->fd, kheap_cmd_sized(cmds[c].cmd, sz), buf);
			ASSERT_EQ(0, kheap_info(self->fd, &after));
			tried++;
			if (ret == -EINVAL && !memcmp(buf, copy, sizeof(buf)) &&
			    kheap_same_state(&before, &after))
				continue;
			if (bad++ < 6)
				TH_LOG("%s with %zu of %zu bytes: %s (want EINVAL), %s; %s -> %s",
				       cmds[c].name, sz, cmds[c].ver0,
				       kheap_errname(ret),
				       memcmp(buf, copy, sizeof(buf)) ?
				       "wrote to the caller's buffer" : "buffer untouched",
				       kheap_state_str(&before, b1, sizeof(b1)),
				       kheap_state_str(&after, b2, sizeof(b2)));
		}
	}
	EXPECT_EQ(0U, bad) TH_LOG("%u of %u short requests not refused cleanly",
				  bad, tried);

	munmap(p, self->pg);
	kheap_free(self->fd, b.token);
	kheap_free(self->fd, a.token);
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * Exactly the first published sizes work: that is what a caller built
 * against the first header passes.
 */
TEST_F(kheap, abi_ver0_struct)
{
	uint8_t buf[256];
	struct kheap_alloc *al = (void *)buf, a;
	struct kheap_info *in = (void *)buf;
	struct kheap_query *q = (void *)buf;
	struct kheap_sync *sy = (void *)buf;
	struct kheap_free *fr = (void *)buf;
	char *p;

	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_INFO,
							   KHEAP_INFO_SIZE_VER0), in));
	EXPECT_EQ(self->pool, in->pool_size);
	EXPECT_EQ((__u64)KHEAP_ABI_VERSION, in->abi_version);

	memset(buf, 0, sizeof(buf));
	al->size = self->pg + 1;
	ASSERT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_ALLOC,
							   KHEAP_ALLOC_SIZE_VER0), al));
	a = *al;
	EXPECT_EQ(2 * self->pg, a.size_out);
	p = kheap_map(self->fd, a.token, a.size_out);
	ASSERT_MAPPED(p);

	memset(buf, 0, sizeof(buf));
	q->addr = (uintptr_t)p + self->pg + 5;
	ASSERT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_QUERY,
							   KHEAP_QUERY_SIZE_VER0), q));
	EXPECT_EQ(a.token, q->token);
	EXPECT_EQ(self->pg + 5, q->offset);
	EXPECT_EQ(a.phys + self->pg + 5, q->phys);

	memset(buf, 0, sizeof(buf));
	sy->token = a.token;
	sy->length = a.size_out;
	sy->flags = KHEAP_SYNC_RW;
	EXPECT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_SYNC,
							   KHEAP_SYNC_SIZE_VER0), sy));

	munmap(p, a.size_out);
	memset(buf, 0, sizeof(buf));
	fr->token = a.token;
	EXPECT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_FREE,
							   KHEAP_FREE_SIZE_VER0), fr));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * Newer callers pass a longer struct: a zero tail is fine, a non-zero byte
 * anywhere in it is E2BIG, with nothing done.
 */
TEST_F(kheap, abi_larger_struct)
{
	const size_t tails[] = { 8, 64, 4096 };
	const size_t big = 4096 + sizeof(struct kheap_info);
	struct kheap_alloc a, *al;
	struct kheap_query *q;
	struct kheap_sync *sy;
	struct kheap_free *fr;
	struct kheap_info *in;
	unsigned int t, pos;
	uint8_t *buf;
	char *p;

	buf = malloc(big);
	ASSERT_NE(NULL, buf);
	ASSERT_ALLOC(self->fd, self->pg, 0, &a);
	p = kheap_map(self->fd, a.token, self->pg);
	ASSERT_MAPPED(p);
	in = (void *)buf;
	al = (void *)buf;
	q = (void *)buf;
	sy = (void *)buf;
	fr = (void *)buf;

	for (t = 0; t < ARRAY_SIZE(tails); t++) {
		for (pos = 0; pos < 3; pos++) {
			/* pos 0: zero tail; 1: first tail byte set; 2: last. */
			size_t sz;
			int err = pos ? E2BIG : 0;
#define SET_TAIL(_type)							\
			do {						\
				sz = sizeof(_type) + tails[t];		\
				memset(buf, 0, big);			\
				if (pos == 1)				\
					buf[sizeof(_type)] = 1;		\
				if (pos == 2)				\
					buf[sz - 1] = 0x80;		\
			} while (0)

			if (!pos) {
				/* INFO input: see info_input_checked. */
				SET_TAIL(struct kheap_info);
				EXPECT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_INFO, sz), in));
				EXPECT_EQ(self->pool, in->pool_size);
				EXPECT_EQ(1ULL, in->file_chunks);
			}

			SET_TAIL(struct kheap_query);
			q->addr = (uintptr_t)p + 1;
			EXPECT_REFUSED(self->fd, err,
				       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_QUERY, sz), q));
			if (!pos) {
				EXPECT_EQ(a.token, q->token);
				EXPECT_EQ(1ULL, q->offset);
			}

			SET_TAIL(struct kheap_sync);
			sy->token = a.token;
			sy->length = self->pg;
			sy->flags = KHEAP_SYNC_READ;
			EXPECT_REFUSED(self->fd, err,
				       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_SYNC, sz), sy));

			/*
			 * FREE: a bad tail must stop a valid request; a zero
			 * tail lets the token check run (never issued here).
			 */
			SET_TAIL(struct kheap_free);
			fr->token = pos ? a.token : a.token + 64 * self->pool;
			EXPECT_REFUSED(self->fd, pos ? E2BIG : EINVAL,
				       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_FREE, sz), fr));

			SET_TAIL(struct kheap_alloc);
			al->size = self->pg;
			if (pos) {
				EXPECT_REFUSED(self->fd, E2BIG,
					       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_ALLOC, sz), al));
			} else {
				EXPECT_EQ(0, kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_ALLOC, sz), al));
				EXPECT_EQ(self->pg, al->size_out);
				EXPECT_EQ(0, kheap_free(self->fd, al->token));
			}
#undef SET_TAIL
		}
	}
	/* The tail of a larger FREE that is valid frees the chunk. */
	memset(buf, 0, big);
	fr->token = a.token;
	munmap(p, self->pg);
	EXPECT_EQ(0, kheap_ioctl(self->fd,
				 kheap_cmd_sized(KHEAP_IOC_FREE, sizeof(*fr) + 64), fr));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
	free(buf);
}

/*
 * INFO's fields are all outputs, and the ABI asks for them zeroed on
 * input, and a larger caller's tail too, so that INFO can take inputs
 * later without breaking anyone.
 */
TEST_F(kheap, info_input_checked)
{
	const uint64_t vals[] = { 1, 1ULL << 63 };
	uint8_t buf[sizeof(struct kheap_info) + 64];
	struct kheap_info *in = (void *)buf;
	unsigned int k, v, accepted = 0;
	struct kheap_info before, after;
	int ret;

	ASSERT_EQ(0, kheap_info(self->fd, &before));
	for (v = 0; v < ARRAY_SIZE(vals); v++) {
		for (k = 0; k < sizeof(*in) / sizeof(uint64_t); k++) {
			memset(buf, 0, sizeof(buf));
			((uint64_t *)in)[k] = vals[v];
			ret = kheap_ioctl(self->fd, KHEAP_IOC_INFO, in);
			if (ret != -EINVAL && accepted++ < 3)
				TH_LOG("INFO with field %u = %#llx on input: %s, want EINVAL",
				       k, (unsigned long long)vals[v],
				       kheap_errname(ret));
		}
	}
	EXPECT_EQ(0U, accepted) TH_LOG("%u of %zu non-zero inputs accepted", accepted,
				       ARRAY_SIZE(vals) * sizeof(*in) / sizeof(uint64_t));
	ASSERT_EQ(0, kheap_info(self->fd, &after));
	EXPECT_TRUE(kheap_same_state(&before, &after));

	memset(buf, 0, sizeof(buf));
	buf[sizeof(struct kheap_info)] = 1;
	EXPECT_REFUSED(self->fd, E2BIG,
		       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_INFO, sizeof(buf)), in));
	memset(buf, 0, sizeof(buf));
	buf[sizeof(buf) - 1] = 0x80;
	EXPECT_REFUSED(self->fd, E2BIG,
		       kheap_ioctl(self->fd, kheap_cmd_sized(KHEAP_IOC_INFO, sizeof(buf)), in));
}

/* Quarantine: freed chunks whose pages someone else still references */

/*
 * The quarantine looks at a chunk again within this long after its last
 * pin went (the module's KHEAP_REAP_DELAY_MAX, kheap_retire.c).
 */
#define REAP_DELAY_MAX_MS	5000

/* A sysfs counter, or ~0 when it cannot be read (the test then fails). */
static uint64_t sysfs_count(const char *attr)
{
	uint64_t v;

	return kheap_sysfs_u64(attr, &v) ? ~0ULL : v;
}

/*
 * Allocate and fill a chunk of @npages, vmsplice() all of it into a new
 * pipe @pfd (the pipe's buffers then hold references on its pages), then
 * unmap and FREE it: the chunk has no owner and no mapping, only the pin.
 */
static void pin_and_release(struct __test_metadata *_metadata, int fd,
			    uint64_t npages, uint64_t pg, uint64_t seed,
			    int pfd[2])
{
	uint64_t len = npages * pg;
	struct kheap_alloc a;
	struct iovec iov;
	ssize_t n;
	char *p;

	ASSERT_ALLOC(fd, len, 0, &a);
	p = kheap_map(fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, npages, pg, seed);
	ASSERT_EQ(0, pipe(pfd));
	iov.iov_base = p;
	iov.iov_len = len;
	n = vmsplice(pfd[1], &iov, 1, 0);
	ASSERT_EQ((ssize_t)len, n) TH_LOG("vmsplice: %s", strerror(errno));
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, kheap_free(fd, a.token));
}

/*
 * A pinned chunk stays out of the pool, counted in sysfs, and is not
 * handed out even to an ALLOC that needs it; once the pin goes it comes
 * back by itself within a bounded time, seen through sysfs alone (whose
 * counters never look at the pages).
 */
TEST_F_TIMEOUT(kheap, quarantine_pinned_chunk, 60)
{
	uint64_t npages = min_u64(4, self->pool / self->pg / 2);
	uint64_t len = npages * self->pg, t0, waited;
	struct kheap_alloc big;
	struct kheap_info info;
	int pfd[2], round;
	char *buf;

	pin_and_release(_metadata, self->fd, npages, self->pg, 0x9a00, pfd);

	/* Right after FREE, and after a second of pin, nothing changed. */
	for (round = 0; round < 2; round++) {
		EXPECT_EQ(1ULL, sysfs_count("quarantined_chunks"))
			TH_LOG("round %d", round);
		EXPECT_EQ(len, sysfs_count("quarantined_bytes"))
			TH_LOG("round %d", round);
		EXPECT_EQ(self->pool - len, sysfs_count("free_bytes"));
		EXPECT_EQ(1ULL, sysfs_count("chunks_in_use"));
		ASSERT_EQ(0, kheap_info(self->fd, &info));
		EXPECT_EQ(self->pool - len, info.free_bytes);
		EXPECT_EQ(1ULL, info.chunks_in_use);
		/* Not even an ALLOC that needs the pages gets them. */
		EXPECT_REFUSED(self->fd, ENOMEM,
			       kheap_alloc(self->fd, self->pool, 0, &big));
		if (!round)
			kheap_sleep_ms(1000);
	}

	/* The pipe holds the chunk's bytes: nothing cleared or reused them. */
	buf = malloc(len);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ((ssize_t)len, read(pfd[0], buf, len));
	EXPECT_EQ(-1, check_pages(buf, 0, npages, self->pg, 0x9a00));
	free(buf);

	/* The pipe is empty: the pin is gone.  Watch sysfs only. */
	t0 = kheap_now_ms();
	while (sysfs_count("quarantined_chunks") != 0 &&
	       kheap_now_ms() - t0 < REAP_DELAY_MAX_MS + 2000)
		kheap_sleep_ms(20);
	waited = kheap_now_ms() - t0;
	EXPECT_EQ(0ULL, sysfs_count("quarantined_chunks"))
		TH_LOG("still quarantined %llu ms after the pin went",
		       (unsigned long long)waited);
	EXPECT_EQ(0ULL, sysfs_count("quarantined_bytes"));
	EXPECT_EQ(self->pool, sysfs_count("free_bytes"));
	EXPECT_EQ(0ULL, sysfs_count("chunks_in_use"));
	EXPECT_LE(waited, (uint64_t)REAP_DELAY_MAX_MS + 1000);
	TH_LOG("back %llu ms after the pin went", (unsigned long long)waited);
	close(pfd[0]);
	close(pfd[1]);
}

/*
 * An ALLOC that finds no room looks at the quarantine at once: pages
 * whose pin just went are handed out without waiting for the module's
 * next look.
 */
TEST_F_TIMEOUT(kheap, quarantine_reclaimed_on_demand, 60)
{
	uint64_t npages = min_u64(4, self->pool / self->pg / 2);
	struct kheap_alloc big;
	int pfd[2], ret;

	pin_and_release(_metadata, self->fd, npages, self->pg, 0x9b00, pfd);
	/* Long enough for the module to back off past its first looks. */
	kheap_sleep_ms(1000);
	EXPECT_EQ(1ULL, sysfs_count("quarantined_chunks"));
	close(pfd[0]);
	close(pfd[1]);

	ret = kheap_alloc(self->fd, self->pool, 0, &big);
	ASSERT_EQ(0, ret) TH_LOG("ALLOC of the whole pool after the pin went: %s",
				 kheap_errname(ret));
	EXPECT_EQ(0ULL, sysfs_count("quarantined_chunks"));
	EXPECT_EQ(0ULL, sysfs_count("free_bytes"));
	EXPECT_EQ(0, kheap_free(self->fd, big.token));
}

/*
 * io_uring fixed buffers: a long-term pin (FOLL_LONGTERM) of a chunk's
 * pages.  Registration must succeed at once on every pool (a reserved
 * pool's ZONE_DEVICE pages included), a WRITE_FIXED must send the
 * chunk's bytes, and a chunk freed while registered waits in the
 * quarantine until the ring lets go.  Before 6.5 io_uring refuses
 * buffers of any file mapping but shmem and hugetlbfs (EOPNOTSUPP): skip.
 */
struct uring {
	int fd;
	unsigned int *sq_tail, *sq_array, *cq_head, *cq_tail, sq_mask, cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq, *cq;
	size_t sq_len, cq_len, sqes_len;
};

static int uring_open(struct uring *r)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	memset(r, 0, sizeof(*r));
	r->fd = syscall(__NR_io_uring_setup, 1, &p);
	if (r->fd < 0)
		return -errno;
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED ||
	    r->sqes == MAP_FAILED)
		return -ENOMEM;
	r->sq_tail = (unsigned int *)((char *)r->sq + p.sq_off.tail);
	r->sq_array = (unsigned int *)((char *)r->sq + p.sq_off.array);
	r->sq_mask = *(unsigned int *)((char *)r->sq + p.sq_off.ring_mask);
	r->cq_head = (unsigned int *)((char *)r->cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)((char *)r->cq + p.cq_off.tail);
	r->cq_mask = *(unsigned int *)((char *)r->cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)r->cq + p.cq_off.cqes);
	return 0;
}

static void uring_close(struct uring *r)
{
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_len);
	if (r->cq && r->cq != MAP_FAILED)
		munmap(r->cq, r->cq_len);
	if (r->sq && r->sq != MAP_FAILED)
		munmap(r->sq, r->sq_len);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* One WRITE_FIXED of @len bytes at @buf (fixed buffer 0) to @fd. */
static int uring_write_fixed(struct uring *r, int fd, void *buf, size_t len)
{
	unsigned int tail = *r->sq_tail, head;
	struct io_uring_sqe *sqe = &r->sqes[tail & r->sq_mask];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_WRITE_FIXED;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)buf;
	sqe->len = len;
	sqe->buf_index = 0;
	r->sq_array[tail & r->sq_mask] = tail & r->sq_mask;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS,
		    NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	res = r->cqes[head & r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

TEST_F_TIMEOUT(kheap, io_uring_fixed_buffer, 60)
{
	uint64_t npages = min_u64(8, self->pool / self->pg / 2);
	uint64_t len = npages * self->pg;
	struct kheap_info info;
	struct kheap_alloc a;
	struct uring r;
	struct iovec iov;
	int pfd[2], ret;
	char *p, *buf;

	ret = uring_open(&r);
	if (ret == -ENOSYS || ret == -EPERM) {
		uring_close(&r);
		SKIP(return, "io_uring unavailable here: %s", strerror(-ret));
	}
	ASSERT_EQ(0, ret) TH_LOG("io_uring_setup: %s", strerror(-ret));

	ASSERT_ALLOC(self->fd, len, 0, &a);
	p = kheap_map(self->fd, a.token, len);
	ASSERT_MAPPED(p);
	fill_pages(p, npages, self->pg, 0x1a00);
	iov.iov_base = p;
	iov.iov_len = len;
	alarm(30);	/* a pin that retries for ever is a failure, not a hang */
	ret = syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_BUFFERS,
		      &iov, 1) ? errno : 0;
	alarm(0);
	if (ret == EOPNOTSUPP) {
		munmap(p, len);
		EXPECT_EQ(0, kheap_free(self->fd, a.token));
		uring_close(&r);
		SKIP(return, "this kernel's io_uring refuses buffers of file mappings");
	}
	ASSERT_EQ(0, ret) TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(ret));

	/* The ring reads the chunk's pages themselves. */
	ASSERT_EQ(0, pipe(pfd));	/* 64 KiB: holds the 8 pages */
	ret = uring_write_fixed(&r, pfd[1], p, len);
	EXPECT_EQ((int)len, ret) TH_LOG("WRITE_FIXED: %s",
					ret < 0 ? strerror(-ret) : "short");
	buf = malloc(len);
	ASSERT_NE(NULL, buf);
	if (ret == (int)len) {
		EXPECT_EQ((ssize_t)len, read(pfd[0], buf, len));
		EXPECT_EQ(-1, check_pages(buf, 0, npages, self->pg, 0x1a00));
	}
	free(buf);
	close(pfd[0]);
	close(pfd[1]);

	/* Unmapped and freed while registered: quarantined, not reused. */
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(1ULL, sysfs_count("quarantined_chunks"));
	EXPECT_EQ(len, sysfs_count("quarantined_bytes"));

	/* The ring lets go: the chunk comes back. */
	uring_close(&r);
	ret = kheap_wait_idle(self->fd, REAP_DELAY_MAX_MS + 2000, &info);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(self->pool, info.free_bytes);
	EXPECT_EQ(0ULL, sysfs_count("quarantined_chunks"));
}

/* Concurrency */

struct worker {
	int fd;
	unsigned int id;
	uint64_t pg, max_pages, big_pages, deadline;
	unsigned int iterations, done, enomem;
	char error[160];
};

#define WORKER_FAIL(w, ...) do {					\
	snprintf((w)->error, sizeof((w)->error), __VA_ARGS__);		\
	return NULL;							\
} while (0)

/*
 * Allocate, map, check zero fill, write a pattern unique to this worker
 * and iteration, check it after the others had a chance to run, QUERY and
 * SYNC, unmap and free.  Keeps the previous chunk while taking the next,
 * so frees and allocations interleave across workers.
 */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct kheap_alloc held = { 0 }, a;
	unsigned int seed = w->id * 7919 + 1, it;
	bool holding = false;
	struct kheap_query q;
	int ret;

	/* At least one round, however slow the machine (a debug kernel). */
	for (it = 0; it < w->iterations &&
	     (!it || kheap_now_ms() < w->deadline); it++) {
		/* Mostly small chunks; now and then one that strains the pool. */
		uint64_t npages = it % 8 == 7 ? w->big_pages :
				  1 + rand_r(&seed) % w->max_pages;
		uint64_t len = npages * w->pg;
		uint64_t align = it % 4 == 3 ? 4 * w->pg : 0;
		uint64_t pat = ((uint64_t)w->id << 32) | it;
		char *p;

		ret = kheap_alloc(w->fd, len, align, &a);
		if (ret == -ENOMEM) {
			w->enomem++;
			if (holding) {
				ret = kheap_free(w->fd, held.token);
				if (ret)
					WORKER_FAIL(w, "FREE: %s", kheap_errname(ret));
				holding = false;
			}
			sched_yield();
			continue;
		}
		if (ret)
			WORKER_FAIL(w, "ALLOC %llu: %s", (unsigned long long)len,
				    kheap_errname(ret));
		if (a.size_out != len || (align && a.phys % align))
			WORKER_FAIL(w, "ALLOC %llu: size %llu phys %#llx",
				    (unsigned long long)len,
				    (unsigned long long)a.size_out,
				    (unsigned long long)a.phys);
		p = kheap_map(w->fd, a.token, len);
		if (p == MAP_FAILED)
			WORKER_FAIL(w, "mmap: %s", strerror(errno));
		if (kheap_check_zero(p, len) >= 0)
			WORKER_FAIL(w, "new chunk at %#llx not zeroed",
				    (unsigned long long)a.phys);
		kheap_fill(p, len, pat);
		sched_yield();
		if (kheap_check(p, len, pat) >= 0)
			WORKER_FAIL(w, "chunk at %#llx overwritten by someone else",
				    (unsigned long long)a.phys);
		ret = kheap_query(w->fd, p + len - 1, &q);
		if (ret || q.token != a.token || q.offset != len - 1 ||
		    q.phys != a.phys + len - 1)
			WORKER_FAIL(w, "QUERY: %s", kheap_errname(ret));
		ret = kheap_sync(w->fd, a.token, 0, len, KHEAP_SYNC_RW);
		if (ret)
			WORKER_FAIL(w, "SYNC: %s", kheap_errname(ret));
		if (munmap(p, len))
			WORKER_FAIL(w, "munmap: %s", strerror(errno));
		if (holding) {
			ret = kheap_free(w->fd, held.token);
			if (ret)
				WORKER_FAIL(w, "FREE: %s", kheap_errname(ret));
		}
		held = a;
		holding = true;
		w->done++;
	}
	if (holding) {
		ret = kheap_free(w->fd, held.token);
		if (ret)
			WORKER_FAIL(w, "final FREE: %s", kheap_errname(ret));
	}
	return NULL;
}

#define NR_PROCS	3
#define NR_THREADS	3

/* Run NR_THREADS workers on @fd; 0 when all of them did well. */
static int run_workers(struct worker *w, int fd, unsigned int first_id,
		       uint64_t pg, uint64_t max_pages, uint64_t big_pages,
		       uint64_t deadline)
{
	pthread_t th[NR_THREADS];
	int i, failed = 0;

	for (i = 0; i < NR_THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].fd = fd;
		w[i].id = first_id + i;
		w[i].pg = pg;
		w[i].max_pages = max_pages;
		w[i].big_pages = big_pages;
		w[i].deadline = deadline;
		w[i].iterations = 2000;
		if (pthread_create(&th[i], NULL, worker_run, &w[i]))
			return -1;
	}
	for (i = 0; i < NR_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (w[i].error[0] || !w[i].done)
			failed = 1;
	}
	return failed;
}

TEST_F_TIMEOUT(kheap, concurrent_users, 120)
{
	uint64_t pages = self->pool / self->pg;
	uint64_t max_pages = pages / ((NR_PROCS + 1) * NR_THREADS * 4);
	uint64_t big_pages = pages / ((NR_PROCS + 1) * NR_THREADS);
	struct worker w[NR_THREADS];
	pid_t pids[NR_PROCS];
	struct kheap_info info;
	uint64_t deadline;
	char buf[192];
	int i, status;

	if (max_pages > 16)
		max_pages = 16;
	ASSERT_GT(max_pages, 0ULL);
	deadline = kheap_now_ms() + 3000;

	/* NR_PROCS processes with their own file, and this one, at once. */
	for (i = 0; i < NR_PROCS; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0) {
			int fd2 = kheap_open(), k, ret;

			if (fd2 < 0)
				_exit(2);
			ret = run_workers(w, fd2, (i + 1) * NR_THREADS, self->pg,
					  max_pages, big_pages, deadline);
			for (k = 0; k < NR_THREADS; k++)
				if (w[k].error[0] || !w[k].done)
					fprintf(stderr, "# process %d worker %d: %s (%u done)\n",
						i, k, w[k].error, w[k].done);
			_exit(ret ? 1 : 0);
		}
	}
	EXPECT_EQ(0, run_workers(w, self->fd, 0, self->pg, max_pages,
				 big_pages, deadline));
	for (i = 0; i < NR_THREADS; i++) {
		EXPECT_EQ(0, w[i].error[0]) TH_LOG("worker %d: %s", i, w[i].error);
		EXPECT_NE(0ULL, w[i].done) TH_LOG("worker %d made no progress", i);
		TH_LOG("worker %d: %u rounds, %u ENOMEM", i, w[i].done, w[i].enomem);
	}
	for (i = 0; i < NR_PROCS; i++) {
		status = wait_child(pids[i]);
		EXPECT_EQ(0, status) TH_LOG("process %d", i);
	}

	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(0ULL, info.file_chunks);
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("after the storm: %s", kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(self->pool, info.free_bytes);
	EXPECT_EQ(self->pool, info.largest_free);
	EXPECT_EQ(0ULL, info.chunks_in_use);
}

/* Must stay the last fixture: it checks what all the tests above logged. */
KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
