// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_hwpoison_test: a pool page the hardware poisoned is never handed
 * out again.
 *
 * madvise(MADV_HWPOISON) runs the kernel's memory failure handling on a
 * page of a mapped chunk, as a machine check would (CONFIG_MEMORY_FAILURE,
 * CAP_SYS_ADMIN).  The page stays poisoned until the machine reboots and
 * keeps a reference the kernel never drops, so this program must run last
 * in a guest.  With $KHEAP_RESERVED set, a reserved pool gets the same
 * test (without the reload: see there).  After FREE the rest of the chunk comes back at once, the
 * poisoned page is counted in sysfs retired_pages and INFO retired_bytes,
 * no later chunk contains it, the module unloads cleanly, and a pool loaded
 * again leaves it out.
 *
 * Loads $KHEAP_KO (or kheap.ko next to this program) itself and leaves it
 * unloaded.  Needs root.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

#ifndef MADV_HWPOISON
#define MADV_HWPOISON	100
#endif

#define PARAMS		"size=4M source=contig"
#define KPF_HWPOISON	19

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_hwpoison_test_init(void)
{
	const char *ko = kheap_ko_path();

	if (geteuid()) {
		ksft_print_header();
		ksft_exit_skip("loading modules needs root\n");
	}
	if (access(ko, R_OK)) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (set KHEAP_KO)\n", ko, strerror(errno));
	}
	kmsg_fd = kheap_kmsg_open();
}

/* /proc/kpageflags of @pfn: 1 when KPF_HWPOISON is set, 0 if not, -errno. */
static int page_poisoned(uint64_t pfn)
{
	uint64_t flags;
	ssize_t n;
	int fd;

	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, &flags, sizeof(flags), (off_t)(pfn * sizeof(flags)));
	close(fd);
	if (n != sizeof(flags))
		return n < 0 ? -errno : -EIO;
	return !!(flags & (1ULL << KPF_HWPOISON));
}

/*
 * What the kernel logs for an injected memory failure, and for kheap
 * retiring the page: expected here, and here only (kheap_kmsg_scan() in
 * every other program reports these lines).
 */
static const char * const expected_log[] = {
	"Injecting memory failure",
	"Memory failure: ",
	"is hardware-poisoned: retired",
	"is hardware-poisoned: a reserved pool loaded again",
};

/* What no program may make the kernel log. */
static const char * const bad_log[] = {
	"WARNING:", "BUG:", "kernel BUG", "Oops", "Call Trace",
};

struct log_check {
	int expected;
	int bad;
};

static void check_record(const char *msg, void *arg)
{
	struct log_check *lc = arg;
	size_t i;

	for (i = 0; i < sizeof(expected_log) / sizeof(expected_log[0]); i++) {
		if (strstr(msg, expected_log[i])) {
			lc->expected++;
			ksft_print_msg("kernel (expected): %s\n", msg);
			return;
		}
	}
	for (i = 0; i < sizeof(bad_log) / sizeof(bad_log[0]); i++) {
		if (strstr(msg, bad_log[i])) {
			lc->bad++;
			ksft_print_msg("kernel: %s\n", msg);
			return;
		}
	}
}

FIXTURE(hwpoison) {
	int fd;
};

FIXTURE_SETUP(hwpoison)
{
	int ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);

	self->fd = -1;
	ASSERT_TRUE(ret == 0 || ret == -ENOENT)
		TH_LOG("unloading kheap: %s", kheap_errname(ret));
}

FIXTURE_TEARDOWN(hwpoison)
{
	if (self->fd >= 0)
		close(self->fd);
	kheap_module_unload_wait(KHEAP_SETTLE_MS);
}

TEST_F_TIMEOUT(hwpoison, poisoned_page_retired, 120)
{
	uint64_t pg = getpagesize(), pool, npages, allocated = 0, retired;
	uint64_t bad_phys, bad_pfn, i;
	struct kheap_alloc a, *all;
	struct kheap_info info;
	struct kheap_query q;
	struct log_check lc = { 0 };
	int ret, err, flag;
	char *p, *near;

	if (!kheap_cap_effective(CAP_SYS_ADMIN))
		SKIP(return, "MADV_HWPOISON needs CAP_SYS_ADMIN");
	ASSERT_EQ(0, kheap_module_load(PARAMS));
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	pool = info.pool_size;
	npages = pool / pg;
	ASSERT_NE(0ULL, info.pool_phys);

	/* A four-page chunk; its second page goes bad. */
	ASSERT_EQ(0, kheap_alloc(self->fd, 4 * pg, 0, &a));
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 4; i++)
		kheap_fill(p + i * pg, pg, 0x5eed + i);
	ASSERT_EQ(0, kheap_query(self->fd, p + pg, &q));
	bad_phys = q.phys;
	bad_pfn = bad_phys / pg;
	ASSERT_EQ(a.phys + pg, bad_phys);
	flag = page_poisoned(bad_pfn);
	if (flag < 0)
		SKIP(return, "/proc/kpageflags: %s", kheap_errname(flag));
	ASSERT_EQ(0, flag) TH_LOG("pfn %#llx poisoned before the test",
				  (unsigned long long)bad_pfn);

	if (kmsg_fd >= 0)
		kheap_kmsg_read(kmsg_fd, NULL, NULL);
	ret = madvise(p + pg, pg, MADV_HWPOISON);
	err = errno;
	if (ret && (err == EINVAL || err == EPERM))
		SKIP(return, "MADV_HWPOISON: %s (no CONFIG_MEMORY_FAILURE?)",
		     strerror(err));
	/*
	 * The kernel does not know our pages: it marks the page and gives
	 * up on it ("unknown page", EBUSY) - which is all this test needs.
	 */
	EXPECT_TRUE(ret == 0 || err == EBUSY)
		TH_LOG("MADV_HWPOISON: %s", strerror(err));
	TH_LOG("MADV_HWPOISON on pfn %#llx: %s", (unsigned long long)bad_pfn,
	       ret ? strerror(err) : "0");
	ASSERT_EQ(1, page_poisoned(bad_pfn));

	/* The other pages of the chunk are untouched. */
	EXPECT_EQ(-1, kheap_check(p, pg, 0x5eed));
	EXPECT_EQ(-1, kheap_check(p + 2 * pg, pg, 0x5eed + 2));
	EXPECT_EQ(-1, kheap_check(p + 3 * pg, pg, 0x5eed + 3));

	/* Unmap and FREE: all but the poisoned page come back at once. */
	ASSERT_EQ(0, munmap(p, 4 * pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ret = kheap_wait_state(self->fd, pool - pg, 0, KHEAP_SETTLE_MS, &info);
	EXPECT_EQ(0, ret) TH_LOG("free_bytes %llu of %llu, %llu chunks",
				 (unsigned long long)info.free_bytes,
				 (unsigned long long)pool,
				 (unsigned long long)info.chunks_in_use);
	EXPECT_EQ(pg, info.retired_bytes);
	ASSERT_EQ(0, kheap_sysfs_u64("retired_pages", &retired));
	EXPECT_EQ(1ULL, retired);
	ASSERT_EQ(0, kheap_sysfs_u64("quarantined_chunks", &retired));
	EXPECT_EQ(0ULL, retired);
	EXPECT_LT(info.largest_free, pool);

	/* The whole pool no longer fits; page by page, all but one do. */
	EXPECT_EQ(-ENOMEM, kheap_alloc(self->fd, pool, 0, &a));
	all = calloc(npages, sizeof(*all));
	ASSERT_NE(NULL, all);
	while (allocated < npages) {
		ret = kheap_alloc(self->fd, pg, 0, &all[allocated]);
		if (ret)
			break;
		allocated++;
	}
	EXPECT_EQ(-ENOMEM, ret);
	EXPECT_EQ(npages - 1, allocated);
	for (i = 0; i < allocated; i++) {
		EXPECT_NE(bad_phys, all[i].phys) TH_LOG("chunk %llu",
						       (unsigned long long)i);
		if (all[i].phys == bad_phys - pg || all[i].phys == bad_phys + pg) {
			/* The neighbours are whole, zeroed pages. */
			near = kheap_map(self->fd, all[i].token, pg);
			ASSERT_NE(MAP_FAILED, near);
			EXPECT_EQ(-1, kheap_check_zero(near, pg));
			ASSERT_EQ(0, kheap_query(self->fd, near, &q));
			EXPECT_EQ(all[i].phys, q.phys);
			EXPECT_EQ(0, page_poisoned(q.phys / pg));
			munmap(near, pg);
		}
	}
	for (i = 0; i < allocated; i++)
		EXPECT_EQ(0, kheap_free(self->fd, all[i].token));
	free(all);
	EXPECT_EQ(0, kheap_wait_state(self->fd, pool - pg, 0, KHEAP_SETTLE_MS,
				      &info));

	/* The module unloads (no warning: the guest panics on one)... */
	close(self->fd);
	self->fd = -1;
	ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
	ASSERT_EQ(0, ret) TH_LOG("unloading: %s", kheap_errname(ret));
	EXPECT_EQ(1, page_poisoned(bad_pfn));

	/* ...and a new pool leaves the page out. */
	ASSERT_EQ(0, kheap_module_load(PARAMS));
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_TRUE(bad_phys < info.pool_phys ||
		    bad_phys >= info.pool_phys + info.pool_size)
		TH_LOG("new pool %#llx+%#llx holds %#llx",
		       (unsigned long long)info.pool_phys,
		       (unsigned long long)info.pool_size,
		       (unsigned long long)bad_phys);
	EXPECT_EQ(info.pool_size, info.free_bytes);
	EXPECT_EQ(0ULL, info.retired_bytes);
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(0, kheap_module_unload_wait(KHEAP_SETTLE_MS));

	/* Only what a memory failure and its retirement log was logged. */
	if (kmsg_fd >= 0) {
		ret = kheap_kmsg_read(kmsg_fd, check_record, &lc);
		EXPECT_GE(ret, 0);
		EXPECT_GE(lc.expected, 2) TH_LOG("no memory failure was logged");
		EXPECT_EQ(0, lc.bad);
	}
}

/*
 * SHRINK (ABI 5) over a tail with a poisoned page: the page keeps the
 * reference memory_failure() took, which does not hold SHRINK back; it is
 * retired, the rest of the tail comes back at once.
 */
TEST_F_TIMEOUT(hwpoison, shrink_retires_poisoned_tail, 120)
{
	uint64_t pg = getpagesize(), retired;
	struct log_check lc = { 0 };
	struct kheap_resize rs;
	struct kheap_alloc a;
	struct kheap_info info;
	int ret, err;
	char *p;

	if (!kheap_cap_effective(CAP_SYS_ADMIN))
		SKIP(return, "MADV_HWPOISON needs CAP_SYS_ADMIN");
	ASSERT_EQ(0, kheap_module_load(PARAMS));
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	ASSERT_EQ(0, kheap_alloc(self->fd, 4 * pg, 0, &a));
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	kheap_fill(p, 4 * pg, 0x7a11);
	if (kmsg_fd >= 0)
		kheap_kmsg_read(kmsg_fd, NULL, NULL);
	ret = madvise(p + 3 * pg, pg, MADV_HWPOISON);
	err = errno;
	if (ret && (err == EINVAL || err == EPERM))
		SKIP(return, "MADV_HWPOISON: %s", strerror(err));
	ASSERT_EQ(1, page_poisoned((a.phys + 3 * pg) / pg));
	ASSERT_EQ(0, munmap(p + 2 * pg, 2 * pg));

	memset(&rs, 0, sizeof(rs));
	rs.token = a.token;
	rs.size = 2 * pg;
	ASSERT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_SHRINK, &rs));
	EXPECT_EQ(2 * pg, rs.size_out);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(pg, info.retired_bytes);
	EXPECT_EQ(info.pool_size - 3 * pg, info.free_bytes);
	EXPECT_EQ(2 * pg, info.file_bytes);
	ASSERT_EQ(0, kheap_sysfs_u64("retired_pages", &retired));
	EXPECT_EQ(1ULL, retired);
	EXPECT_EQ(-1, kheap_check(p, 2 * pg, 0x7a11));
	ASSERT_EQ(0, munmap(p, 2 * pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	EXPECT_EQ(0, kheap_wait_state(self->fd, info.pool_size - pg, 0,
				      KHEAP_SETTLE_MS, &info));
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(0, kheap_module_unload_wait(KHEAP_SETTLE_MS));

	/* Only the memory failure and the retirement were logged. */
	if (kmsg_fd >= 0) {
		ret = kheap_kmsg_read(kmsg_fd, check_record, &lc);
		EXPECT_GE(ret, 0);
		EXPECT_GE(lc.expected, 2) TH_LOG("no memory failure was logged");
		EXPECT_EQ(0, lc.bad);
	}
}

/*
 * The same on a reserved (memmap=) pool: its ZONE_DEVICE pages go to the
 * module's dev_pagemap memory_failure handler, which marks the page; the
 * kernel keeps no reference on it, and /proc/kpageflags does not cover
 * ZONE_DEVICE pages, so sysfs and INFO are the witnesses.  A reserved
 * pool's struct pages go at unload, and the mark with them: the module
 * names the page in the log, and the test does not load the range again.
 * The pool is the first 4 MiB of the reserved range, as small as the
 * contig pool above: the test takes it page by page, which a debug
 * kernel does slowly.
 */
TEST_F_TIMEOUT(hwpoison, reserved_pool_page_retired, 120)
{
	const char *env = getenv("KHEAP_RESERVED");
	const char *phys = env ? strstr(env, "phys=") : NULL;
	uint64_t pg = getpagesize(), pool, npages, allocated = 0, count;
	uint64_t bad_phys, i;
	struct kheap_alloc a, *all;
	struct kheap_info info;
	struct kheap_query q;
	struct log_check lc = { 0 };
	char params[160], *p;
	int ret, err;

	if (!phys)
		SKIP(return, "KHEAP_RESERVED not set (needs a memmap= boot)");
	if (!kheap_cap_effective(CAP_SYS_ADMIN))
		SKIP(return, "MADV_HWPOISON needs CAP_SYS_ADMIN");
	snprintf(params, sizeof(params), "phys=%#llx size=4M source=reserved",
		 strtoull(phys + 5, NULL, 0));
	ASSERT_EQ(0, kheap_module_load(params));
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	ASSERT_EQ((__u64)KHEAP_SOURCE_RESERVED, info.pool_source);
	pool = info.pool_size;
	npages = pool / pg;

	ASSERT_EQ(0, kheap_alloc(self->fd, 4 * pg, 0, &a));
	p = kheap_map(self->fd, a.token, 4 * pg);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 4; i++)
		kheap_fill(p + i * pg, pg, 0x7eed + i);
	ASSERT_EQ(0, kheap_query(self->fd, p + pg, &q));
	bad_phys = q.phys;
	ASSERT_EQ(a.phys + pg, bad_phys);

	if (kmsg_fd >= 0)
		kheap_kmsg_read(kmsg_fd, NULL, NULL);
	ret = madvise(p + pg, pg, MADV_HWPOISON);
	err = errno;
	if (ret && (err == EINVAL || err == EPERM))
		SKIP(return, "MADV_HWPOISON: %s (no CONFIG_MEMORY_FAILURE?)",
		     strerror(err));
	/* The module's handler takes the page: "recovered". */
	EXPECT_EQ(0, ret) TH_LOG("MADV_HWPOISON: %s", strerror(err));

	EXPECT_EQ(-1, kheap_check(p, pg, 0x7eed));
	EXPECT_EQ(-1, kheap_check(p + 2 * pg, pg, 0x7eed + 2));
	EXPECT_EQ(-1, kheap_check(p + 3 * pg, pg, 0x7eed + 3));

	ASSERT_EQ(0, munmap(p, 4 * pg));
	ASSERT_EQ(0, kheap_free(self->fd, a.token));
	ret = kheap_wait_state(self->fd, pool - pg, 0, KHEAP_SETTLE_MS, &info);
	EXPECT_EQ(0, ret) TH_LOG("free_bytes %llu of %llu, %llu chunks",
				 (unsigned long long)info.free_bytes,
				 (unsigned long long)pool,
				 (unsigned long long)info.chunks_in_use);
	EXPECT_EQ(pg, info.retired_bytes);
	ASSERT_EQ(0, kheap_sysfs_u64("retired_pages", &count));
	EXPECT_EQ(1ULL, count);
	ASSERT_EQ(0, kheap_sysfs_u64("quarantined_chunks", &count));
	EXPECT_EQ(0ULL, count);

	/* Page by page, every page but the poisoned one is handed out. */
	EXPECT_EQ(-ENOMEM, kheap_alloc(self->fd, pool, 0, &a));
	all = calloc(npages, sizeof(*all));
	ASSERT_NE(NULL, all);
	while (allocated < npages) {
		ret = kheap_alloc(self->fd, pg, 0, &all[allocated]);
		if (ret)
			break;
		allocated++;
	}
	EXPECT_EQ(-ENOMEM, ret);
	EXPECT_EQ(npages - 1, allocated);
	for (i = 0; i < allocated; i++) {
		EXPECT_NE(bad_phys, all[i].phys);
		EXPECT_EQ(0, kheap_free(self->fd, all[i].token));
	}
	free(all);

	/* Unloads without a warning (the guest panics on one). */
	close(self->fd);
	self->fd = -1;
	ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
	ASSERT_EQ(0, ret) TH_LOG("unloading: %s", kheap_errname(ret));

	if (kmsg_fd >= 0) {
		ret = kheap_kmsg_read(kmsg_fd, check_record, &lc);
		EXPECT_GE(ret, 0);
		/* Injection, recovery, retirement, and the unload's note. */
		EXPECT_GE(lc.expected, 4) TH_LOG("%d expected lines logged",
						 lc.expected);
		EXPECT_EQ(0, lc.bad);
	}
}

/* Must stay the last fixture: it checks what all the tests above logged. */
KHEAP_KERNEL_LOG_TEST(
	EXPECT_FALSE(kheap_module_listed());
)

TEST_HARNESS_MAIN
