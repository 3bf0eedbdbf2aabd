// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_fork_test: kheap chunks across fork() (ABI 3).
 *
 * A chunk is private across fork() unless allocated KHEAP_ALLOC_SHARED:
 * neither side sees the other's writes, the parent keeps its physical
 * pages, and the child's pages are a contiguous copy of its own, which
 * KHEAP_IOC_ADOPT makes a chunk of the child's file.  See "kheap and
 * fork()" in include/uapi/linux/kheap.h.
 *
 * Runs against whatever kheap module is loaded (kheap.sh loads each pool
 * source in turn).  Needs root for /proc/self/pagemap frame numbers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int kmsg_fd = -1;

#include "kheap_kmsg_test.h"

#define PAGE		4096UL
#define NPAGES		16
#define LEN		(NPAGES * PAGE)
#define SEED_BEFORE	0x1111
#define SEED_CHILD	0x2222
#define SEED_PARENT	0x3333

/* Child exit codes, so that a failing child says which check failed. */
enum {
	C_OK = 0, C_CONTENT = 10, C_FRAMES, C_ADOPT, C_QUERY, C_FREE,
	C_NOSIGBUS, C_SIGBUS, C_ERRNO, C_PIPE, C_FORK, C_MAPPED,
};

static void __attribute__((constructor)) kheap_fork_test_init(void)
{
	int fd = kheap_open();

	if (fd < 0) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (is the module loaded?)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	close(fd);
	kmsg_fd = kheap_kmsg_open();
}

static int alloc_flags(int fd, uint64_t size, uint64_t flags,
		       struct kheap_alloc *a)
{
	memset(a, 0, sizeof(*a));
	a->size = size;
	a->flags = flags;
	return kheap_ioctl(fd, KHEAP_IOC_ALLOC, a);
}

static int adopt(int fd, const void *addr, struct kheap_adopt *out)
{
	memset(out, 0, sizeof(*out));
	out->addr = (uintptr_t)addr;
	return kheap_ioctl(fd, KHEAP_IOC_ADOPT, out);
}

/* Do the @n pages at @p sit on the frames from @pfn0 on, in order? */
static bool frames_are(const void *p, size_t n, uint64_t pfn0)
{
	uint64_t pfns[NPAGES * 16];

	if (n > sizeof(pfns) / sizeof(pfns[0]) ||
	    kheap_pagemap_pfns(p, n, pfns))
		return false;
	for (size_t i = 0; i < n; i++)
		if (pfns[i] != pfn0 + i)
			return false;
	return true;
}

static uint64_t frame_of(const void *p)
{
	uint64_t pfn = 0;

	if (kheap_pagemap_pfns(p, 1, &pfn))
		return 0;
	return pfn;
}

static int wait_child(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st))
		return 1000 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Page i of [p, p + n pages) gets the pattern of seed + i. */
static void fill_pages(char *p, size_t first, size_t n, uint64_t seed)
{
	for (size_t i = first; i < first + n; i++)
		kheap_fill(p + i * PAGE, PAGE, seed + i);
}

/* Do pages first..first+n-1 hold what fill_pages() put there? */
static bool pages_hold(const char *p, size_t first, size_t n, uint64_t seed)
{
	for (size_t i = first; i < first + n; i++)
		if (kheap_check(p + i * PAGE, PAGE, seed + i) >= 0)
			return false;
	return true;
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* Read one byte at @p; false if that raised SIGBUS. */
static bool touch_ok(volatile const char *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus };

	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jmp, 1))
		return false;
	(void)*p;
	return true;
}

FIXTURE(fork) {
	int fd;
	struct kheap_info before;
	struct kheap_alloc a;
	char *p;
	uint64_t pfn0;
};

FIXTURE_SETUP(fork)
{
	self->fd = kheap_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, kheap_info(self->fd, &self->before));
	ASSERT_EQ(0, alloc_flags(self->fd, LEN, 0, &self->a));
	self->p = kheap_map(self->fd, self->a.token, LEN);
	ASSERT_NE(MAP_FAILED, self->p);
	fill_pages(self->p, 0, NPAGES, SEED_BEFORE);
	self->pfn0 = self->a.phys / PAGE;
	ASSERT_TRUE(frames_are(self->p, NPAGES, self->pfn0));
}

FIXTURE_TEARDOWN(fork)
{
	struct kheap_info last;

	munmap(self->p, LEN);
	close(self->fd);
	/* Every copy and every chunk went back: exact accounting. */
	self->fd = kheap_open();
	EXPECT_EQ(0, kheap_wait_state(self->fd, self->before.free_bytes,
				      self->before.chunks_in_use, 5000,
				      &last));
	close(self->fd);
}

/* The child's writes stay in the child; its pages are not the parent's. */
TEST_F(fork, child_writes_are_private)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		if (!pages_hold(self->p, 0, NPAGES, SEED_BEFORE))
			_exit(C_CONTENT);
		fill_pages(self->p, 0, NPAGES, SEED_CHILD);
		if (!pages_hold(self->p, 0, NPAGES, SEED_CHILD))
			_exit(C_CONTENT);
		/* Zapped pages of the copy fault back in, not re-copied. */
		if (madvise(self->p, LEN, MADV_DONTNEED) ||
		    !pages_hold(self->p, 0, NPAGES, SEED_CHILD))
			_exit(C_CONTENT);
		/* A contiguous copy, elsewhere. */
		uint64_t c0 = frame_of(self->p);

		if (!c0 || c0 == self->pfn0 || !frames_are(self->p, NPAGES, c0))
			_exit(C_FRAMES);
		_exit(C_OK);
	}
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
	EXPECT_TRUE(frames_are(self->p, NPAGES, self->pfn0));
}

/* The parent's writes after fork() do not reach the child. */
TEST_F(fork, parent_writes_are_private)
{
	int go[2];
	pid_t pid;
	char c = 0;

	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(C_PIPE);
		_exit(!pages_hold(self->p, 0, NPAGES, SEED_BEFORE) ?
		      C_CONTENT : C_OK);
	}
	close(go[0]);
	fill_pages(self->p, 0, NPAGES / 2, SEED_PARENT);
	/* Its own pages still (the rest fault back in on this read). */
	EXPECT_TRUE(pages_hold(self->p, NPAGES / 2, NPAGES / 2, SEED_BEFORE));
	EXPECT_TRUE(frames_are(self->p, NPAGES, self->pfn0));
	ASSERT_EQ(1, write(go[1], &c, 1));
	close(go[1]);
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES / 2, SEED_PARENT));
}

/* madvise(MADV_KEEPONFORK) cannot turn private sharing back on. */
TEST_F(fork, keeponfork_stays_private)
{
	pid_t pid;

	/* Whatever the core says, the mapping must stay private. */
	madvise(self->p, LEN, MADV_KEEPONFORK);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		fill_pages(self->p, 0, NPAGES, SEED_CHILD);
		_exit(C_OK);
	}
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
}

/* MADV_DONTFORK keeps the mapping out of the child altogether. */
TEST_F(fork, dontfork_leaves_nothing)
{
	pid_t pid;

	ASSERT_EQ(0, madvise(self->p, LEN, MADV_DONTFORK));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		unsigned char vec[NPAGES];

		/* Not mapped at all: mincore() says ENOMEM. */
		_exit(mincore(self->p, LEN, vec) == -1 && errno == ENOMEM ?
		      C_OK : C_MAPPED);
	}
	EXPECT_EQ(C_OK, wait_child(pid));
}

/*
 * The parent can read the child's copy, as a debugger would: through
 * /proc/PID/mem and process_vm_readv() (both get_user_pages(), which
 * works on every pool).
 */
TEST_F(fork, child_copy_readable_by_debuggers)
{
	static char buf[LEN];
	int go[2], done[2], mem;
	char c = 0, path[64];
	struct iovec local = { buf, LEN }, remote;
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		fill_pages(self->p, 0, NPAGES, SEED_CHILD);
		if (write(done[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(C_PIPE);
		_exit(C_OK);
	}
	ASSERT_EQ(1, read(done[0], &c, 1));
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY);
	ASSERT_LE(0, mem);
	EXPECT_EQ((ssize_t)LEN, pread(mem, buf, LEN, (off_t)(uintptr_t)self->p));
	EXPECT_TRUE(pages_hold(buf, 0, NPAGES, SEED_CHILD));
	close(mem);
	remote.iov_base = self->p;
	remote.iov_len = LEN;
	memset(buf, 0, LEN);
	EXPECT_EQ((ssize_t)LEN, process_vm_readv(pid, &local, 1, &remote, 1, 0));
	EXPECT_TRUE(pages_hold(buf, 0, NPAGES, SEED_CHILD));
	ASSERT_EQ(1, write(go[1], &c, 1));
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

/*
 * The child adopts its copy into a file of its own: same token, its own
 * contiguous physical pages, QUERY and FREE work, and the contents are
 * the parent's at fork() time.
 */
TEST_F(fork, child_adopts_its_copy)
{
	pid_t pid;

	/* A page touched before the fork and one the parent changes after. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct kheap_adopt ad;
		struct kheap_query q;
		struct kheap_info in;
		int fd2 = kheap_open();

		if (fd2 < 0)
			_exit(C_ADOPT);
		/* Touch one page first: adoption copies the rest. */
		if (self->p[PAGE * 3] != (char)self->p[PAGE * 3])
			_exit(C_CONTENT);
		/* The inherited descriptor is the parent's file: its token. */
		if (adopt(self->fd, self->p, &ad) != -EEXIST)
			_exit(C_ERRNO);
		if (adopt(fd2, self->p + 5 * PAGE + 7, &ad))
			_exit(C_ADOPT);
		if (ad.token != self->a.token || ad.size != LEN ||
		    !ad.phys || ad.phys == self->a.phys || ad.phys % PAGE)
			_exit(C_ADOPT);
		if (!pages_hold(self->p, 0, NPAGES, SEED_BEFORE))
			_exit(C_CONTENT);
		if (!frames_are(self->p, NPAGES, ad.phys / PAGE))
			_exit(C_FRAMES);
		if (kheap_query(fd2, self->p + PAGE + 1, &q) ||
		    q.phys != ad.phys + PAGE + 1 || q.token != ad.token)
			_exit(C_QUERY);
		/* Adopted: no longer a fork copy. */
		if (adopt(fd2, self->p, &ad) != -EINVAL)
			_exit(C_ERRNO);
		if (kheap_info(fd2, &in) || in.file_chunks != 1 ||
		    in.file_bytes != LEN)
			_exit(C_ADOPT);
		if (kheap_free(fd2, self->a.token) || kheap_info(fd2, &in) ||
		    in.file_chunks != 0)
			_exit(C_FREE);
		/* Mapped, so alive: the contents are still there. */
		if (!pages_hold(self->p, 0, NPAGES, SEED_BEFORE))
			_exit(C_CONTENT);
		_exit(C_OK);
	}
	fill_pages(self->p, 0, 1, SEED_PARENT);
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, 1, SEED_PARENT));
	EXPECT_TRUE(pages_hold(self->p, 1, NPAGES - 1, SEED_BEFORE));
}

/* ADOPT's own errors. */
TEST_F(fork, adopt_errors)
{
	struct kheap_adopt ad;
	static char anon[PAGE];

	/* Not a fork copy: an ordinary kheap mapping, anonymous memory. */
	EXPECT_EQ(-EINVAL, adopt(self->fd, self->p, &ad));
	EXPECT_EQ(-EINVAL, adopt(self->fd, anon, &ad));
	EXPECT_EQ(-EINVAL, adopt(self->fd, NULL, &ad));
	memset(&ad, 0, sizeof(ad));
	ad.addr = (uintptr_t)self->p;
	ad.flags = 1;
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd, KHEAP_IOC_ADOPT, &ad));
	memset(&ad, 0, sizeof(ad));
	ad.addr = (uintptr_t)self->p;
	ad.reserved[2] = 1;
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd, KHEAP_IOC_ADOPT, &ad));
	memset(&ad, 0, sizeof(ad));
	ad.phys = 1;
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd, KHEAP_IOC_ADOPT, &ad));
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd,
				       kheap_cmd_sized(KHEAP_IOC_ADOPT,
						       KHEAP_ADOPT_SIZE_VER0 - 8),
				       &ad));
	EXPECT_EQ(-EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_ADOPT,
				       (void *)8));
}

/* A child that forks again: the grandchild sees the child's view. */
TEST_F(fork, grandchild_copies_the_child)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		int go[2];
		char c = 0;
		pid_t gpid;

		fill_pages(self->p, 0, 1, SEED_CHILD);	/* page 0 only */
		if (pipe(go))
			_exit(C_PIPE);
		gpid = fork();
		if (gpid < 0)
			_exit(C_FORK);
		if (!gpid) {
			close(go[1]);
			if (read(go[0], &c, 1) != 1)
				_exit(C_PIPE);
			if (!pages_hold(self->p, 0, 1, SEED_CHILD) ||
			    !pages_hold(self->p, 1, NPAGES - 1, SEED_BEFORE))
				_exit(C_CONTENT);
			_exit(C_OK);
		}
		close(go[0]);
		/* The child changes everything after the grandchild's fork. */
		fill_pages(self->p, 0, NPAGES, SEED_PARENT);
		if (write(go[1], &c, 1) != 1)
			_exit(C_PIPE);
		_exit(wait_child(gpid));
	}
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
}

/* A chunk split by a partial munmap() in the child is adopted whole. */
TEST_F(fork, split_copy_adopted)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		struct kheap_adopt ad;
		int fd2 = kheap_open();

		if (munmap(self->p + 4 * PAGE, PAGE))
			_exit(C_ADOPT);
		if (adopt(fd2, self->p, &ad))
			_exit(C_ADOPT);
		if (!pages_hold(self->p, 0, 4, SEED_BEFORE) ||
		    !pages_hold(self->p, 5, NPAGES - 5, SEED_BEFORE))
			_exit(C_CONTENT);
		if (!frames_are(self->p, 4, ad.phys / PAGE) ||
		    !frames_are(self->p + 5 * PAGE, NPAGES - 5,
				ad.phys / PAGE + 5))
			_exit(C_FRAMES);
		_exit(C_OK);
	}
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
}

/* KHEAP_ALLOC_SHARED: writes cross, both ways, on the same pages. */
TEST_F(fork, shared_chunk_is_shared)
{
	struct kheap_alloc a;
	int go[2], back[2];
	char *s, c = 0;
	pid_t pid;

	ASSERT_EQ(0, alloc_flags(self->fd, LEN, KHEAP_ALLOC_SHARED, &a));
	s = kheap_map(self->fd, a.token, LEN);
	ASSERT_NE(MAP_FAILED, s);
	fill_pages(s, 0, NPAGES, SEED_BEFORE);
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(back));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (!frames_are(s, NPAGES, a.phys / PAGE))
			_exit(C_FRAMES);
		fill_pages(s, 0, NPAGES / 2, SEED_CHILD);
		if (write(back[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(C_PIPE);
		_exit(pages_hold(s, NPAGES / 2, NPAGES / 2, SEED_PARENT) ?
		      C_OK : C_CONTENT);
	}
	ASSERT_EQ(1, read(back[0], &c, 1));
	EXPECT_TRUE(pages_hold(s, 0, NPAGES / 2, SEED_CHILD));
	fill_pages(s, NPAGES / 2, NPAGES / 2, SEED_PARENT);
	ASSERT_EQ(1, write(go[1], &c, 1));
	EXPECT_EQ(C_OK, wait_child(pid));
	munmap(s, LEN);
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
}

/*
 * A pool too full for the copy: the parent's write still goes through,
 * the child's copy is lost (SIGBUS on touch, ADOPT gives EIO).
 */
TEST_F(fork, pool_full_loses_the_copy)
{
	struct kheap_alloc big;
	int go[2];
	char *b, c = 0;
	pid_t pid;
	size_t len;

	struct kheap_info in;

	/* Take what is left but one page: no room for a copy of @big. */
	ASSERT_EQ(0, kheap_info(self->fd, &in));
	len = in.largest_free;
	if (len < 4 * PAGE)
		SKIP(return, "pool too small");
	ASSERT_EQ(0, alloc_flags(self->fd, len - PAGE, 0, &big));
	b = kheap_map(self->fd, big.token, len - PAGE);
	ASSERT_NE(MAP_FAILED, b);
	b[0] = 1;
	b[PAGE] = 2;
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct kheap_adopt ad;
		int fd2 = kheap_open();

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(C_PIPE);
		if (touch_ok(b + PAGE))
			_exit(C_NOSIGBUS);
		if (adopt(fd2, b, &ad) != -EIO)
			_exit(C_ERRNO);
		_exit(C_OK);
	}
	close(go[0]);
	b[0] = 3;		/* the copy cannot be made: lost, not blocked */
	EXPECT_EQ(3, b[0]);
	EXPECT_EQ(2, b[PAGE]);
	ASSERT_EQ(1, write(go[1], &c, 1));
	close(go[1]);
	EXPECT_EQ(C_OK, wait_child(pid));
	EXPECT_TRUE(frames_are(b, 2, big.phys / PAGE));
	munmap(b, len - PAGE);
	EXPECT_EQ(0, kheap_free(self->fd, big.token));
}

/*
 * fork() then exit or exec, many times, while the parent writes: copies
 * come and go, the accounting stays exact (checked by the teardown).
 * Slow on a debug kernel (KASAN under emulation): a long timeout.
 */
/*
 * 300 forks, a third of them exec'ing; KHEAP_FORK_LOOPS lowers the count
 * where each fork costs seconds (make check-debug: KASAN under TCG), and
 * the time limit leaves room for that.
 */
TEST_F_TIMEOUT(fork, fork_exit_loop, 1800)
{
	const char *env = getenv("KHEAP_FORK_LOOPS");
	int loops = env && atoi(env) > 0 ? atoi(env) : 300;

	for (int i = 0; i < loops; i++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (!pid) {
			if (i % 3 == 0)
				execl("/bin/true", "true", (char *)NULL);
			_exit(self->p[(i % NPAGES) * PAGE] ==
			      (char)self->p[(i % NPAGES) * PAGE] ? C_OK : 1);
		}
		self->p[((i + 1) % NPAGES) * PAGE] ^= 1;
		self->p[((i + 1) % NPAGES) * PAGE] ^= 1;
		ASSERT_EQ(C_OK, wait_child(pid));
	}
	EXPECT_TRUE(pages_hold(self->p, 0, NPAGES, SEED_BEFORE));
	EXPECT_TRUE(frames_are(self->p, NPAGES, self->pfn0));
}

KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
