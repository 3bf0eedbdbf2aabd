// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_resize_test: KHEAP_IOC_SHRINK and KHEAP_IOC_EXTEND (ABI 5), a
 * chunk resized in place.
 *
 * Needs the module loaded (kheap.sh does that for each pool source) and
 * root (pagemap frame numbers, physical addresses).  Every test starts
 * from an idle pool, so the first chunk of a test lies at the pool's
 * start and the pages after it are free: the allocator takes the best
 * fitting free extent, lowest first.
 *
 * Checked for each command: every errno of the uapi header, the pool
 * and file accounting (INFO and sysfs) after each step, that the kept
 * bytes and their physical pages stay (pagemap), that a freed tail is
 * zeroed and handed to another file, and every way a tail can still be
 * reached: a mapping in this process or in a fork() child, a fork copy
 * still missing pages, a get_user_pages() pin, a dma-buf.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

_Static_assert(sizeof(struct kheap_resize) == KHEAP_RESIZE_SIZE_VER0,
	       "struct kheap_resize grew: add a new SIZE_VER");

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_resize_test_init(void)
{
	int fd = kheap_open();

	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (is kheap.ko loaded?)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	if (geteuid() || fd == -EACCES || fd == -EPERM) {
		ksft_print_header();
		ksft_exit_skip("the resize tests need root\n");
	}
	if (fd >= 0)
		close(fd);
	kmsg_fd = kheap_kmsg_open();
}

FIXTURE(resize) {
	int fd;
	uint64_t pg;
	uint64_t pool;
	uint64_t pool_phys;
	struct kheap_info info;	/* INFO at setup, pool idle */
};

FIXTURE_SETUP(resize)
{
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open: %s", kheap_errname(self->fd));
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle before the test: %s",
				 kheap_state_str(&self->info, buf,
						 sizeof(buf)));
	ASSERT_LE(5ULL, self->info.abi_version);
	self->pool = self->info.pool_size;
	self->pool_phys = self->info.pool_phys;
	ASSERT_NE(0ULL, self->pool_phys) TH_LOG("physical addresses hidden");
	/* The tests below use up to 64 pages and a chunk at the pool's end. */
	ASSERT_LE(128 * self->pg, self->pool);
}

FIXTURE_TEARDOWN(resize)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* SHRINK or EXTEND: 0 or -errno; @out (may be NULL) gets the result. */
static int resize(int fd, unsigned long cmd, uint64_t token, uint64_t size,
		  struct kheap_resize *out)
{
	struct kheap_resize rs = { .token = token, .size = size };
	int ret = kheap_ioctl(fd, cmd, &rs);

	if (out)
		*out = rs;
	return ret;
}

static int alloc_flags(int fd, uint64_t size, uint64_t flags,
		       struct kheap_alloc *a)
{
	memset(a, 0, sizeof(*a));
	a->size = size;
	a->flags = flags;
	return kheap_ioctl(fd, KHEAP_IOC_ALLOC, a);
}

/* mmap() of @len bytes at @token + @off: the mapping or MAP_FAILED. */
static void *map_at(int fd, uint64_t token, uint64_t off, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)(token + off));
}

/* Page frame numbers of @n pages at @p must be @pfn0, @pfn0 + 1, ... */
static bool pfns_from(const void *p, size_t n, uint64_t pfn0)
{
	uint64_t pfns[64];
	size_t i;

	if (n > 64 || kheap_pagemap_pfns(p, n, pfns))
		return false;
	for (i = 0; i < n; i++) {
		if (pfns[i] != pfn0 + i)
			return false;
	}
	return true;
}

static uint64_t sysfs_val(const char *attr)
{
	uint64_t v;

	return kheap_sysfs_u64(attr, &v) ? ~0ULL : v;
}

/* INFO and sysfs agree that @used bytes in @chunks chunks are held. */
#define EXPECT_HELD(_fd, _used, _chunks, _file_bytes) do {		\
	struct kheap_info __i;						\
									\
	ASSERT_EQ(0, kheap_info(_fd, &__i));				\
	EXPECT_EQ(self->pool - (_used), __i.free_bytes);		\
	EXPECT_EQ((uint64_t)(_chunks), __i.chunks_in_use);		\
	EXPECT_EQ((uint64_t)(_file_bytes), __i.file_bytes);		\
	EXPECT_EQ(self->pool - (_used), sysfs_val("free_bytes"));	\
	EXPECT_EQ((uint64_t)(_chunks), sysfs_val("chunks_in_use"));	\
} while (0)

/* A refused call leaves INFO exactly as it was. */
#define EXPECT_REFUSED(_fd, _err, _call) do {				\
	struct kheap_info __b, __a;					\
	int __ret;							\
									\
	ASSERT_EQ(0, kheap_info(_fd, &__b));				\
	__ret = (_call);						\
	EXPECT_EQ(-(_err), __ret) TH_LOG("%s: got %s", #_call,		\
					 kheap_errname(__ret));		\
	ASSERT_EQ(0, kheap_info(_fd, &__a));				\
	EXPECT_TRUE(kheap_same_state(&__b, &__a)) TH_LOG("%s", #_call);	\
} while (0)

TEST_F(resize, abi_version)
{
	EXPECT_EQ((uint64_t)KHEAP_ABI_VERSION, self->info.abi_version);
	EXPECT_EQ(5ULL, (uint64_t)KHEAP_ABI_VERSION);
}

/* Every malformed argument, for both commands, changes nothing. */
TEST_F(resize, bad_input)
{
	const unsigned long cmds[] = { KHEAP_IOC_SHRINK, KHEAP_IOC_EXTEND };
	uint64_t pg = self->pg, big[16];
	struct kheap_alloc a, other;
	struct kheap_resize rs;
	unsigned int c, k;
	int fd2;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, KHEAP_ALLOC_GROWABLE, &a));
	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(0, alloc_flags(fd2, pg, KHEAP_ALLOC_GROWABLE, &other));

	for (c = 0; c < 2; c++) {
		unsigned long cmd = cmds[c];

		/* flags, size_out, phys, reserved[]: words 2..7 */
		for (k = 2; k < sizeof(rs) / 8; k++) {
			memset(&rs, 0, sizeof(rs));
			rs.token = a.token;
			rs.size = 4 * pg;
			((uint64_t *)&rs)[k] = 1ULL << (k * 7);
			EXPECT_REFUSED(self->fd, EINVAL,
				       kheap_ioctl(self->fd, cmd, &rs));
		}
		/* zero and overflowing sizes */
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, a.token, 0, NULL));
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, a.token, UINT64_MAX, NULL));
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, a.token,
				      UINT64_MAX - pg + 2, NULL));
		/* tokens this file does not own */
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, 0, 4 * pg, NULL));
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, a.token + pg, 4 * pg,
				      NULL));
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, a.token + 1, 4 * pg,
				      NULL));
		EXPECT_REFUSED(self->fd, EINVAL,
			       resize(self->fd, cmd, other.token, pg, NULL));
		/* struct sizes: too small, a larger one with a non-zero tail */
		memset(&rs, 0, sizeof(rs));
		rs.token = a.token;
		rs.size = 4 * pg;
		EXPECT_REFUSED(self->fd, EINVAL,
			       kheap_ioctl(self->fd,
					   kheap_cmd_sized(cmd, 56), &rs));
		memset(big, 0, sizeof(big));
		big[0] = a.token;
		big[1] = 4 * pg;
		big[9] = 1;
		EXPECT_REFUSED(self->fd, E2BIG,
			       kheap_ioctl(self->fd,
					   kheap_cmd_sized(cmd, sizeof(big)),
					   big));
		/* a larger, zero-tailed struct works like ours */
		big[9] = 0;
		EXPECT_EQ(0, kheap_ioctl(self->fd,
					 kheap_cmd_sized(cmd, sizeof(big)),
					 big));
		EXPECT_EQ(4 * pg, big[3]);
		EXPECT_EQ(0ULL, big[8] | big[9] | big[15]);
		/* bad pointers */
		EXPECT_REFUSED(self->fd, EFAULT,
			       kheap_ioctl(self->fd, cmd, NULL));
		EXPECT_REFUSED(self->fd, EFAULT,
			       kheap_ioctl(self->fd, cmd, (void *)1));
		/* the unchanged size: success, nothing moves */
		EXPECT_EQ(0, resize(self->fd, cmd, a.token, 4 * pg, &rs));
		EXPECT_EQ(4 * pg, rs.size_out);
		EXPECT_EQ(a.phys, rs.phys);
		/* rounded up to pages like ALLOC */
		EXPECT_EQ(0, resize(self->fd, cmd, a.token, 3 * pg + 1, &rs));
		EXPECT_EQ(4 * pg, rs.size_out);
	}
	/* the wrong direction for each command */
	EXPECT_REFUSED(self->fd, EINVAL,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 5 * pg,
			      NULL));
	EXPECT_REFUSED(self->fd, EINVAL,
		       resize(self->fd, KHEAP_IOC_EXTEND, a.token, 3 * pg,
			      NULL));
	/* a freed chunk */
	EXPECT_EQ(0, kheap_free(fd2, other.token));
	EXPECT_REFUSED(fd2, EINVAL,
		       resize(fd2, KHEAP_IOC_SHRINK, other.token, pg, NULL));
	EXPECT_REFUSED(fd2, EINVAL,
		       resize(fd2, KHEAP_IOC_EXTEND, other.token, 2 * pg,
			      NULL));
	close(fd2);
	EXPECT_HELD(self->fd, 4 * pg, 1, 4 * pg);
}

/*
 * A read-only argument: the resize is done (nothing moved, so there is
 * nothing to undo) and the caller learns of it through QUERY.
 */
TEST_F(resize, unwritable_result)
{
	uint64_t pg = self->pg;
	struct kheap_resize *ro;
	struct kheap_query q;
	struct kheap_alloc a;
	char *p;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, 0, &a));
	ro = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ro->token = a.token;
	ro->size = 2 * pg;
	ASSERT_EQ(0, mprotect(ro, pg, PROT_READ));
	EXPECT_EQ(-EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_SHRINK, ro));
	p = map_at(self->fd, a.token, 0, 2 * pg);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, kheap_query(self->fd, p, &q));
	EXPECT_EQ(2 * pg, q.chunk_size);
	EXPECT_HELD(self->fd, 2 * pg, 1, 2 * pg);
	munmap(p, 2 * pg);
	munmap(ro, pg);
}

/*
 * SHRINK of an unmapped tail: the kept pages stay where they were with
 * their bytes, the tail is free at once, the accounting follows, and the
 * tail's offsets no longer map.
 */
TEST_F(resize, shrink_keeps_head)
{
	uint64_t pg = self->pg, pfn0;
	struct kheap_resize rs;
	struct kheap_query q;
	struct kheap_alloc a;
	struct kheap_info i;
	char *p;

	ASSERT_EQ(0, alloc_flags(self->fd, 16 * pg, 0, &a));
	EXPECT_EQ(self->pool_phys, a.phys);
	pfn0 = a.phys / pg;
	p = map_at(self->fd, a.token, 0, 16 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill(p, 16 * pg, 0x5111);
	ASSERT_EQ(0, munmap(p + 6 * pg, 10 * pg));

	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 6 * pg, &rs));
	EXPECT_EQ(6 * pg, rs.size_out);
	EXPECT_EQ(a.phys, rs.phys);
	EXPECT_EQ(-1, kheap_check(p, 6 * pg, 0x5111));
	EXPECT_TRUE(pfns_from(p, 6, pfn0));
	EXPECT_HELD(self->fd, 6 * pg, 1, 6 * pg);
	ASSERT_EQ(0, kheap_info(self->fd, &i));
	EXPECT_EQ(self->pool - 6 * pg, i.largest_free);
	EXPECT_EQ(1ULL, i.file_chunks);
	ASSERT_EQ(0, kheap_query(self->fd, p + 5 * pg, &q));
	EXPECT_EQ(6 * pg, q.chunk_size);
	EXPECT_EQ(5 * pg, q.offset);

	/* The tail's offsets are gone; the head's still map. */
	EXPECT_EQ(MAP_FAILED, map_at(self->fd, a.token, 6 * pg, pg));
	EXPECT_EQ(MAP_FAILED, map_at(self->fd, a.token, 0, 7 * pg));
	ASSERT_EQ(0, munmap(p, 6 * pg));
	p = map_at(self->fd, a.token, 0, 6 * pg);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, kheap_check(p, 6 * pg, 0x5111));

	/* Down to one page, then FREE gives everything back. */
	ASSERT_EQ(0, munmap(p + pg, 5 * pg));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, pg, &rs));
	EXPECT_EQ(pg, rs.size_out);
	EXPECT_HELD(self->fd, pg, 1, pg);
	ASSERT_EQ(0, munmap(p, pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * The freed tail goes to the next ALLOC that fits it, of another file,
 * zeroed, while the shrunk chunk keeps its bytes.
 */
TEST_F(resize, shrunk_tail_reused_zeroed)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a, b, fill;
	int fd2;
	char *p, *q;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, 0, &a));
	/* Keep the rest of the pool busy but for one large extent. */
	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, 0, &fill));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill(p, 8 * pg, 0xdead);
	ASSERT_EQ(0, munmap(p + 4 * pg, 4 * pg));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			    NULL));

	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	/* Best fit: the four-page hole, not the large extent after fill. */
	ASSERT_EQ(0, alloc_flags(fd2, 4 * pg, 0, &b));
	EXPECT_EQ(a.phys + 4 * pg, b.phys);
	q = map_at(fd2, b.token, 0, 4 * pg);
	ASSERT_NE(MAP_FAILED, q);
	EXPECT_EQ(-1, kheap_check_zero(q, 4 * pg));
	EXPECT_TRUE(pfns_from(q, 4, a.phys / pg + 4));
	kheap_fill(q, 4 * pg, 0xbeef);
	EXPECT_EQ(-1, kheap_check(p, 4 * pg, 0xdead));
	munmap(q, 4 * pg);
	munmap(p, 4 * pg);
	close(fd2);
}

/* Any present page of the tail, in any mapping of this process: EBUSY. */
TEST_F(resize, shrink_tail_mapped_busy)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	char *p, *tail;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, 0, &a));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			      NULL));
	/* A second mapping of just the last page holds it too. */
	tail = map_at(self->fd, a.token, 7 * pg, pg);
	ASSERT_NE(MAP_FAILED, tail);
	ASSERT_EQ(0, munmap(p + 4 * pg, 4 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			      NULL));
	/* The pages before the new end may stay mapped. */
	ASSERT_EQ(0, munmap(tail, pg));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 4 * pg, 1, 4 * pg);
	munmap(p, 4 * pg);
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, sig);
}

/*
 * A mapping that still covers the tail without its pages present
 * (MADV_DONTNEED) does not hold SHRINK back: afterwards the tail raises
 * SIGBUS there, QUERY refuses it, and the head still works.
 */
TEST_F(resize, shrink_under_dontneed_mapping)
{
	uint64_t pg = self->pg;
	struct sigaction sa = { .sa_handler = on_sigbus };
	struct kheap_query q;
	struct kheap_alloc a;
	volatile char *p;
	int sig;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, 0, &a));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill((char *)p, 8 * pg, 0x77);
	ASSERT_EQ(0, madvise((char *)p + 4 * pg, 4 * pg, MADV_DONTNEED));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 4 * pg, 1, 4 * pg);
	EXPECT_EQ(-EINVAL, kheap_query(self->fd, p + 5 * pg, &q));
	EXPECT_EQ(0, kheap_query(self->fd, p + 3 * pg, &q));

	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	sig = sigsetjmp(bus_jmp, 1);
	if (!sig)
		p[6 * pg] = 1;
	EXPECT_EQ(SIGBUS, sig);
	signal(SIGBUS, SIG_DFL);
	EXPECT_EQ(-1, kheap_check((char *)p, 4 * pg, 0x77));
	/* Still free: the store above did not land anywhere. */
	EXPECT_HELD(self->fd, 4 * pg, 1, 4 * pg);
	ASSERT_EQ(0, munmap((char *)p, 8 * pg));
}

/* Fork a child that waits for a byte on a pipe; returns its pid. */
static pid_t park_child(int pfd[2])
{
	pid_t pid;
	char c;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (!pid) {
		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) < 0);
	}
	close(pfd[0]);
	return pid;
}

static int release_child(pid_t pid, int pfd[2])
{
	int status;

	close(pfd[1]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/*
 * A fork() child that shares the chunk (KHEAP_ALLOC_SHARED) maps the
 * parent's pages: SHRINK waits for it, even after the parent unmapped.
 */
TEST_F(resize, shrink_shared_with_child)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	int pfd[2];
	pid_t pid;
	char *p;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, KHEAP_ALLOC_SHARED, &a));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 1, 8 * pg);
	pid = park_child(pfd);
	ASSERT_GT(pid, 0);
	ASSERT_EQ(0, munmap(p, 8 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			      NULL));
	EXPECT_EQ(0, release_child(pid, pfd));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 4 * pg, 1, 4 * pg);
}

/*
 * A private chunk's fork() copy that still misses pages would copy them
 * from the tail: SHRINK is refused until the child is gone.  EXTEND is
 * not: the copy keeps the size of fork() time.
 */
TEST_F(resize, fork_copy_pending)
{
	uint64_t pg = self->pg;
	struct kheap_resize rs;
	struct kheap_alloc a;
	int pfd[2], status;
	pid_t pid;
	char *p, c;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, KHEAP_ALLOC_GROWABLE, &a));
	p = map_at(self->fd, a.token, 0, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill(p, 4 * pg, 0xf0);
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* Wait until the parent has grown and written its chunk. */
		close(pfd[1]);
		if (read(pfd[0], &c, 1) != 1)
			_exit(2);
		/* The copy: the parent's bytes of fork() time, four pages. */
		_exit(kheap_check(p, 4 * pg, 0xf0) != -1 ? 3 : 0);
	}
	close(pfd[0]);

	ASSERT_EQ(0, munmap(p + 2 * pg, 2 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			      NULL));
	/* Grow, map the new part and write all of it: the child is unmoved. */
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 8 * pg, &rs));
	EXPECT_EQ(8 * pg, rs.size_out);
	ASSERT_EQ(0, munmap(p, 2 * pg));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	/* The new pages first: they must not count as copied for the child. */
	EXPECT_EQ(-1, kheap_check_zero(p + 4 * pg, 4 * pg));
	memset(p + 4 * pg, 0x5a, 4 * pg);
	EXPECT_EQ(-1, kheap_check(p, 4 * pg, 0xf0));
	memset(p, 0x5a, 8 * pg);
	ASSERT_EQ(1, write(pfd[1], "x", 1));
	close(pfd[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child status %#x", status);
	/* The child and its copy are gone: SHRINK goes through now. */
	ASSERT_EQ(0, munmap(p + 2 * pg, 6 * pg));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			    NULL));
	EXPECT_EQ(0, kheap_wait_state(self->fd, self->pool - 2 * pg, 1,
				      KHEAP_SETTLE_MS, NULL));
	munmap(p, 2 * pg);
}

/* A get_user_pages() pin on a tail page (vmsplice into a pipe): EBUSY. */
TEST_F(resize, shrink_pinned_tail)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	struct iovec iov;
	char buf[64];
	int pfd[2];
	char *p;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, 0, &a));
	p = map_at(self->fd, a.token, 0, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 7, 4 * pg);
	ASSERT_EQ(0, pipe(pfd));
	iov.iov_base = p + 3 * pg;
	iov.iov_len = 64;
	ASSERT_EQ(64, vmsplice(pfd[1], &iov, 1, 0));
	ASSERT_EQ(0, munmap(p + 2 * pg, 2 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			      NULL));
	ASSERT_EQ(64, read(pfd[0], buf, sizeof(buf)));
	EXPECT_EQ(7, buf[0]);
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 2 * pg, 1, 2 * pg);
	close(pfd[0]);
	close(pfd[1]);
	munmap(p, 2 * pg);
}

static int export(int fd, uint64_t token, uint64_t off, uint64_t len)
{
	struct kheap_export ex = {
		.token = token, .offset = off, .length = len,
		.flags = O_RDWR | O_CLOEXEC,
	};
	int ret = kheap_ioctl(fd, KHEAP_IOC_EXPORT, &ex);

	return ret ? ret : (int)ex.fd;
}

/*
 * A dma-buf covering the tail holds SHRINK back, also when only its
 * mmap() is left; one inside the kept part does not.
 */
TEST_F(resize, shrink_exported)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	int head, tail;
	char *m;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, 0, &a));
	head = export(self->fd, a.token, 0, 2 * pg);
	ASSERT_GE(head, 0);
	tail = export(self->fd, a.token, 3 * pg, 2 * pg);
	ASSERT_GE(tail, 0);
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			      NULL));
	/* The dma-buf's own mapping keeps it alive after close(). */
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, tail, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[pg] = 3;
	close(tail);
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, 4 * pg,
			      NULL));
	/* Down to the dma-buf's end is fine: it covers no tail then. */
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 5 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 5 * pg, 1, 5 * pg);
	EXPECT_EQ(3, m[pg]);
	ASSERT_EQ(0, munmap(m, 2 * pg));
	/* The dma-buf release may be deferred a little. */
	EXPECT_EQ(0, ({ int r, n = 0;
		while ((r = resize(self->fd, KHEAP_IOC_SHRINK, a.token,
				   4 * pg, NULL)) == -EBUSY && n++ < 200)
			kheap_sleep_ms(10);
		r; }));
	/* Past the new end EXPORT is refused; the head's dma-buf lives. */
	EXPECT_EQ(-EINVAL, export(self->fd, a.token, 3 * pg, 2 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize(self->fd, KHEAP_IOC_SHRINK, a.token, pg,
			      NULL));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 2 * pg, 1, 2 * pg);
	close(head);
}

/*
 * EXTEND into free pages: same token and physical address, the old
 * bytes and pages kept, the new ones zeroed and physically following,
 * the accounting exact.
 */
TEST_F(resize, extend_in_place)
{
	uint64_t pg = self->pg, pfn0;
	struct kheap_resize rs;
	struct kheap_query q;
	struct kheap_alloc a;
	struct kheap_info i;
	char *p, *n;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, KHEAP_ALLOC_GROWABLE, &a));
	EXPECT_EQ(self->pool_phys, a.phys);
	pfn0 = a.phys / pg;
	p = map_at(self->fd, a.token, 0, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill(p, 4 * pg, 0xe1);

	/* The existing mapping stays mapped and keeps working. */
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 12 * pg,
			    &rs));
	EXPECT_EQ(12 * pg, rs.size_out);
	EXPECT_EQ(a.phys, rs.phys);
	EXPECT_HELD(self->fd, 12 * pg, 1, 12 * pg);
	ASSERT_EQ(0, kheap_info(self->fd, &i));
	EXPECT_EQ(self->pool - 12 * pg, i.largest_free);
	EXPECT_EQ(-1, kheap_check(p, 4 * pg, 0xe1));
	ASSERT_EQ(0, kheap_query(self->fd, p, &q));
	EXPECT_EQ(12 * pg, q.chunk_size);

	/* The new part maps at its own offsets, and so does the whole. */
	n = map_at(self->fd, a.token, 4 * pg, 8 * pg);
	ASSERT_NE(MAP_FAILED, n);
	EXPECT_EQ(-1, kheap_check_zero(n, 8 * pg));
	EXPECT_TRUE(pfns_from(n, 8, pfn0 + 4));
	EXPECT_TRUE(pfns_from(p, 4, pfn0));
	kheap_fill(n, 8 * pg, 0xe2);
	ASSERT_EQ(0, munmap(n, 8 * pg));
	ASSERT_EQ(0, munmap(p, 4 * pg));
	p = map_at(self->fd, a.token, 0, 12 * pg);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, kheap_check(p, 4 * pg, 0xe1));
	EXPECT_EQ(-1, kheap_check(p + 4 * pg, 8 * pg, 0xe2));
	EXPECT_TRUE(pfns_from(p, 12, pfn0));
	EXPECT_EQ(MAP_FAILED, map_at(self->fd, a.token, 0, 13 * pg));

	/* And back down, then FREE: everything returns. */
	ASSERT_EQ(0, munmap(p + 2 * pg, 10 * pg));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 2 * pg, 1, 2 * pg);
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 3 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 3 * pg, 1, 3 * pg);
	ASSERT_EQ(0, munmap(p, 2 * pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * The pages right after a chunk are written by whoever gets them next:
 * EXTEND zeroes them again even when the chunk itself had them before.
 */
TEST_F(resize, extend_zeroes_reused_pages)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a;
	char *p;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, KHEAP_ALLOC_GROWABLE, &a));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0xcc, 8 * pg);
	ASSERT_EQ(0, munmap(p + 2 * pg, 6 * pg));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, 2 * pg,
			    NULL));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 8 * pg,
			    NULL));
	ASSERT_EQ(0, munmap(p, 2 * pg));
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, kheap_check_zero(p + 2 * pg, 6 * pg));
	EXPECT_EQ((char)0xcc, p[2 * pg - 1]);
	munmap(p, 8 * pg);
}

/*
 * Only a growable chunk extends past its allocated size, and only up to
 * its span (the pool); any chunk grows back to its allocated size.
 */
TEST_F(resize, extend_not_growable)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a, g;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, 0, &a));
	EXPECT_REFUSED(self->fd, EFBIG,
		       resize(self->fd, KHEAP_IOC_EXTEND, a.token, 5 * pg,
			      NULL));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_SHRINK, a.token, pg, NULL));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 3 * pg,
			    NULL));
	EXPECT_REFUSED(self->fd, EFBIG,
		       resize(self->fd, KHEAP_IOC_EXTEND, a.token, 5 * pg,
			      NULL));
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 4 * pg,
			    NULL));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, KHEAP_ALLOC_GROWABLE, &g));
	EXPECT_REFUSED(self->fd, EFBIG,
		       resize(self->fd, KHEAP_IOC_EXTEND, g.token,
			      self->pool + pg, NULL));
	/* The whole pool is within its span. */
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, g.token, self->pool,
			    NULL));
	EXPECT_HELD(self->fd, self->pool, 1, self->pool);
}

/*
 * A growable chunk's tokens span the pool: the next chunk's token lies
 * past that, so the grown chunk's offsets never name another chunk.
 */
TEST_F(resize, growable_tokens)
{
	uint64_t pg = self->pg;
	struct kheap_alloc g, b;

	ASSERT_EQ(0, alloc_flags(self->fd, pg, KHEAP_ALLOC_GROWABLE, &g));
	ASSERT_EQ(0, alloc_flags(self->fd, pg, 0, &b));
	EXPECT_LE(g.token + self->pool, b.token);
	/* Offsets in the span but past the size map nothing. */
	EXPECT_EQ(MAP_FAILED, map_at(self->fd, g.token, pg, pg));
	EXPECT_EQ(MAP_FAILED, map_at(self->fd, g.token, 0, 2 * pg));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_free(self->fd, g.token + pg));
}

/*
 * A growable chunk goes to the start of the largest free extent, where
 * it has room; other chunks still go to the tightest hole.
 */
TEST_F(resize, growable_placed_with_room)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a, b, g, n;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, 0, &a));
	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, 0, &b));
	EXPECT_EQ(self->pool_phys + 4 * pg, b.phys);
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	/* Free: a four-page hole at 0, and everything from page 8 on. */
	ASSERT_EQ(0, alloc_flags(self->fd, 2 * pg, KHEAP_ALLOC_GROWABLE, &g));
	EXPECT_EQ(self->pool_phys + 8 * pg, g.phys);
	ASSERT_EQ(0, alloc_flags(self->fd, 2 * pg, 0, &n));
	EXPECT_EQ(self->pool_phys, n.phys);
	EXPECT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, g.token, 32 * pg,
			    NULL));
	EXPECT_HELD(self->fd, 38 * pg, 3, 38 * pg);
}

/* Pages after the chunk in use, or the pool's end: ENOSPC, no change. */
TEST_F(resize, extend_blocked)
{
	uint64_t pg = self->pg;
	struct kheap_alloc a, b, fill, last;
	struct kheap_resize rs;
	int fd2;

	ASSERT_EQ(0, alloc_flags(self->fd, 4 * pg, KHEAP_ALLOC_GROWABLE, &a));
	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(0, alloc_flags(fd2, pg, 0, &b));
	EXPECT_EQ(a.phys + 4 * pg, b.phys);
	EXPECT_REFUSED(self->fd, ENOSPC,
		       resize(self->fd, KHEAP_IOC_EXTEND, a.token, 5 * pg,
			      NULL));
	EXPECT_REFUSED(self->fd, ENOSPC,
		       resize(self->fd, KHEAP_IOC_EXTEND, a.token, 64 * pg,
			      NULL));
	/* The other file frees its page: now it works. */
	ASSERT_EQ(0, kheap_free(fd2, b.token));
	ASSERT_EQ(0, resize(self->fd, KHEAP_IOC_EXTEND, a.token, 5 * pg, &rs));
	EXPECT_EQ(5 * pg, rs.size_out);
	ASSERT_EQ(0, kheap_free(self->fd, a.token));

	/* A growable chunk in the pool's last pages. */
	ASSERT_EQ(0, alloc_flags(fd2, self->pool - 2 * pg, 0, &fill));
	ASSERT_EQ(0, alloc_flags(self->fd, 2 * pg, KHEAP_ALLOC_GROWABLE,
				 &last));
	EXPECT_EQ(self->pool_phys + self->pool - 2 * pg, last.phys);
	EXPECT_REFUSED(self->fd, ENOSPC,
		       resize(self->fd, KHEAP_IOC_EXTEND, last.token, 3 * pg,
			      NULL));
	close(fd2);
}

/*
 * Threads shrinking and extending one chunk while others touch its
 * pages through a mapping that covers the largest size: a page is
 * either the chunk's (and keeps its byte) or gives SIGBUS, never
 * another chunk's; afterwards the accounting is exact.
 */
struct race {
	int fd;
	uint64_t token, pg;
	volatile int stop;
	unsigned long resizes, busy;
};

static void *race_resizer(void *arg)
{
	struct race *r = arg;
	unsigned int n = 0;
	int ret;

	while (!r->stop) {
		uint64_t size = (1 + n++ % 8) * r->pg;

		ret = resize(r->fd, KHEAP_IOC_SHRINK, r->token, size, NULL);
		if (ret == -EBUSY)
			r->busy++;
		else if (ret == -EINVAL)
			ret = resize(r->fd, KHEAP_IOC_EXTEND, r->token, size,
				     NULL);
		if (!ret)
			r->resizes++;
	}
	return NULL;
}

TEST_F_TIMEOUT(resize, race_faults, 120)
{
	uint64_t pg = self->pg;
	struct sigaction sa = { .sa_handler = on_sigbus };
	struct kheap_alloc a;
	struct race r = { .fd = self->fd, .pg = pg };
	volatile char *p;
	pthread_t t;
	unsigned int i, faults = 0, bus = 0;
	uint64_t t0;

	ASSERT_EQ(0, alloc_flags(self->fd, 8 * pg, KHEAP_ALLOC_GROWABLE, &a));
	r.token = a.token;
	p = map_at(self->fd, a.token, 0, 8 * pg);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	ASSERT_EQ(0, pthread_create(&t, NULL, race_resizer, &r));
	t0 = kheap_now_ms();
	for (i = 0; kheap_now_ms() - t0 < 3000; i++) {
		unsigned int k = 4 + i % 4;

		madvise((char *)p + 4 * pg, 4 * pg, MADV_DONTNEED);
		if (!sigsetjmp(bus_jmp, 1)) {
			p[k * pg] = (char)k;
			faults++;
		} else {
			bus++;
		}
	}
	r.stop = 1;
	pthread_join(t, NULL);
	signal(SIGBUS, SIG_DFL);
	TH_LOG("%u stores, %u SIGBUS, %lu resizes, %lu EBUSY", faults, bus,
	       r.resizes, r.busy);
	EXPECT_GT(r.resizes, 0UL);
	ASSERT_EQ(0, munmap((char *)p, 8 * pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
