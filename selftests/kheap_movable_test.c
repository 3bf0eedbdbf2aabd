// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_movable_test: a runtime pool never lies in ZONE_MOVABLE.
 *
 * Every page of ZONE_MOVABLE (movablecore=, kernelcore=, hot-plugged
 * memory) must be migratable, and the kernel migrates such pages away
 * before a long-term pin: io_uring fixed buffers, RDMA, VFIO.  A kheap
 * page never moves, so a pool there turns every such pin into a retry
 * loop.  scripts/check.sh boots a guest with movablecore= for this test;
 * without a Movable zone the placement test skips and the io_uring test
 * still runs.
 *
 * Loads $KHEAP_KO (or kheap.ko next to this program) with a 128 MiB
 * runtime pool ($KHEAP_MOVABLE_PARAMS overrides the parameters) and
 * leaves it unloaded.  Needs root.
 *
 * Why 128 MiB and not more: in check.sh's guest every unmovable page
 * comes from the 430 MiB below ZONE_MOVABLE, and after a pool is freed
 * the page allocator's fallback steals whole pageblocks for unmovable
 * allocations from the largest free blocks, i.e. from where the pool
 * was.  The next test's 256 MiB load then found no run long enough
 * (seen once on 6.12, three tries with compaction included).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

#define DEFAULT_PARAMS	"size=128M source=contig"
/* What the child gives the kernel to pin before it is called hung. */
#define PIN_TIMEOUT_S	30

static void __attribute__((constructor)) kheap_movable_test_init(void)
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
}

/* A zone's span in page frames, from /proc/zoneinfo. */
struct zone_span {
	int node;
	char name[16];
	uint64_t start_pfn;
	uint64_t spanned;
};

/*
 * The populated zones, at most @max of them.  Returns how many, or
 * -errno.
 */
static int zone_spans(struct zone_span *spans, int max)
{
	unsigned long long v;
	char line[256], zname[16];
	int n = 0, node, in = 0;
	FILE *f;

	f = fopen("/proc/zoneinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Node %d, zone %15s", &node, zname) == 2) {
			/* A new zone: keep the last one only if populated. */
			if (in && spans[n].spanned)
				n++;
			in = n < max;
			if (in) {
				spans[n] = (struct zone_span){ .node = node };
				snprintf(spans[n].name, sizeof(spans[n].name),
					 "%s", zname);
			}
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, " spanned %llu", &v) == 1)
			spans[n].spanned = v;
		else if (sscanf(line, " start_pfn: %llu", &v) == 1)
			spans[n].start_pfn = v;
	}
	if (in && spans[n].spanned)
		n++;
	fclose(f);
	return n;
}

/* [@phys, @phys + @size) overlaps a Movable zone of @spans. */
static bool in_movable(const struct zone_span *spans, int n, uint64_t phys,
		       uint64_t size)
{
	uint64_t pg = getpagesize();
	int i;

	for (i = 0; i < n; i++) {
		uint64_t zstart = spans[i].start_pfn * pg;
		uint64_t zend = (spans[i].start_pfn + spans[i].spanned) * pg;

		if (!strcmp(spans[i].name, "Movable") &&
		    phys < zend && phys + size > zstart)
			return true;
	}
	return false;
}

static void log_zones(struct __test_metadata *_metadata,
		      const struct zone_span *spans, int n)
{
	uint64_t pg = getpagesize();
	int i;

	for (i = 0; i < n; i++)
		TH_LOG("node %d zone %s [%#llx, %#llx)", spans[i].node,
		       spans[i].name,
		       (unsigned long long)(spans[i].start_pfn * pg),
		       (unsigned long long)((spans[i].start_pfn +
					     spans[i].spanned) * pg));
}

FIXTURE(movable) {
	int fd;
	void *map;
	size_t maplen;
	uint64_t pool_phys, pool_size;
};

FIXTURE_SETUP(movable)
{
	const char *params = getenv("KHEAP_MOVABLE_PARAMS");
	int ret;

	self->fd = -1;
	self->map = MAP_FAILED;
	if (!params || !*params)
		params = DEFAULT_PARAMS;
	ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
	ASSERT_TRUE(ret == 0 || ret == -ENOENT)
		TH_LOG("unloading kheap: %s", kheap_errname(ret));
	ret = kheap_module_load_reclaim(params, 3);
	ASSERT_EQ(0, ret) TH_LOG("loading %s %s: %s", kheap_ko_path(), params,
				 kheap_errname(ret));
	ASSERT_EQ(0, kheap_sysfs_u64("pool_phys", &self->pool_phys));
	ASSERT_EQ(0, kheap_sysfs_u64("pool_size", &self->pool_size));
	TH_LOG("%s: pool [%#llx, %#llx)", params,
	       (unsigned long long)self->pool_phys,
	       (unsigned long long)(self->pool_phys + self->pool_size));
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
}

FIXTURE_TEARDOWN(movable)
{
	int ret;

	if (self->map != MAP_FAILED)
		munmap(self->map, self->maplen);
	if (self->fd >= 0)
		close(self->fd);
	ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
	if (ret && ret != -ENOENT) {
		TH_LOG("unloading kheap after the test: %s", kheap_errname(ret));
		EXPECT_EQ(0, ret);
	}
}

TEST_F_TIMEOUT(movable, pool_outside_movable_zone, 120)
{
	struct zone_span spans[16];
	int n, i, movable = 0;

	n = zone_spans(spans, 16);
	ASSERT_GE(n, 0) TH_LOG("/proc/zoneinfo: %s", kheap_errname(n));
	for (i = 0; i < n; i++)
		movable += !strcmp(spans[i].name, "Movable");
	if (!movable)
		SKIP(return, "no populated ZONE_MOVABLE (boot with movablecore=)");
	log_zones(_metadata, spans, n);
	EXPECT_FALSE(in_movable(spans, n, self->pool_phys, self->pool_size))
		TH_LOG("pool [%#llx, %#llx) lies in ZONE_MOVABLE",
		       (unsigned long long)self->pool_phys,
		       (unsigned long long)(self->pool_phys + self->pool_size));
}

/*
 * A pool larger than every other zone but smaller than ZONE_MOVABLE
 * could only come from ZONE_MOVABLE: the load must fail instead.  This is
 * the case that once went wrong, since ZONE_MOVABLE was the last resort;
 * it needs a Movable zone larger than the others (check.sh's guest).
 */
/* No fixture data: a TEST() would trip -Wunused-parameter in the harness. */
FIXTURE(placement) {
	int unused;
};

FIXTURE_SETUP(placement)
{
}

FIXTURE_TEARDOWN(placement)
{
	/* Should the load have succeeded, do not leave it behind. */
	kheap_module_unload_wait(KHEAP_SETTLE_MS);
}

TEST_F_TIMEOUT(placement, pool_never_from_movable_zone, 120)
{
	uint64_t pg = getpagesize(), other = 0, movable = 0, size, v;
	struct zone_span spans[16];
	char params[64];
	int n, i, ret;

	n = zone_spans(spans, 16);
	ASSERT_GE(n, 0) TH_LOG("/proc/zoneinfo: %s", kheap_errname(n));
	for (i = 0; i < n; i++) {
		uint64_t bytes = spans[i].spanned * pg;

		if (!strcmp(spans[i].name, "Movable"))
			movable = bytes > movable ? bytes : movable;
		else
			other = bytes > other ? bytes : other;
	}
	if (!movable)
		SKIP(return, "no populated ZONE_MOVABLE (boot with movablecore=)");
	/* More than any other zone spans; room to spare in ZONE_MOVABLE. */
	size = (other / (2 << 20) + 1) * (2 << 20);
	if (size + (64 << 20) > movable)
		SKIP(return, "ZONE_MOVABLE (%llu MiB) is not larger than the other zones (%llu MiB): boot with a larger movablecore=",
		     (unsigned long long)(movable >> 20),
		     (unsigned long long)(other >> 20));
	log_zones(_metadata, spans, n);

	ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
	ASSERT_TRUE(ret == 0 || ret == -ENOENT)
		TH_LOG("unloading kheap: %s", kheap_errname(ret));
	snprintf(params, sizeof(params), "size=%llu source=contig",
		 (unsigned long long)size);
	ret = kheap_module_load(params);
	TH_LOG("%s (%llu MiB): %s", params, (unsigned long long)(size >> 20),
	       kheap_errname(ret));
	if (!ret) {
		EXPECT_EQ(0, kheap_sysfs_u64("pool_phys", &v));
		TH_LOG("pool [%#llx, %#llx)", (unsigned long long)v,
		       (unsigned long long)(v + size));
		EXPECT_FALSE(in_movable(spans, n, v, size))
			TH_LOG("the pool lies in ZONE_MOVABLE");
	}
	EXPECT_EQ(-ENOMEM, ret);
}

/* How the child of io_uring_fixed_buffer got on. */
struct pin_result {
	int stage;	/* 1: io_uring_setup failed, 2: register failed, 3: done */
	int err;	/* errno of the failure */
	uint64_t ms;	/* time the registration took */
};

static int sysctl_int(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

/*
 * The whole pool, mapped, as one io_uring fixed buffer: a long-term pin
 * of every page.  It must come back, and succeed.  The child gives it
 * PIN_TIMEOUT_S seconds; SIGALRM is fatal, and a fatal signal ends the
 * kernel's retry loop, so a hang shows as a child killed by SIGALRM.
 */
TEST_F_TIMEOUT(movable, io_uring_fixed_buffer, 120)
{
	struct pin_result *res;
	struct kheap_alloc a;
	struct kheap_info info;
	char buf[192];
	int status, ret;
	pid_t pid;

	/* Shared: the forked child must pin the pool's own pages. */
	memset(&a, 0, sizeof(a));
	a.size = self->pool_size;
	a.flags = KHEAP_ALLOC_SHARED;
	ASSERT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &a));
	self->maplen = self->pool_size;
	self->map = kheap_map(self->fd, a.token, self->maplen);
	ASSERT_NE(MAP_FAILED, self->map);
	kheap_fill(self->map, getpagesize(), 0x10a1);

	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, res);
	memset(res, 0, sizeof(*res));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct io_uring_params p = {};
		struct iovec iov = {
			.iov_base = self->map,
			.iov_len = self->maplen,
		};
		uint64_t t0;
		int ring;

		alarm(PIN_TIMEOUT_S);
		ring = syscall(__NR_io_uring_setup, 1, &p);
		if (ring < 0) {
			res->err = errno;
			res->stage = 1;
			_exit(0);
		}
		t0 = kheap_now_ms();
		if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS,
			    &iov, 1)) {
			res->err = errno;
			res->ms = kheap_now_ms() - t0;
			res->stage = 2;
			_exit(0);
		}
		res->ms = kheap_now_ms() - t0;
		res->stage = 3;
		/* Exit unregisters the buffer, unpinning the pages. */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_FALSE(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		TH_LOG("registering the pool as a fixed buffer hung for %d s",
		       PIN_TIMEOUT_S);
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child status %#x", status);

	/* The pins are gone with the ring: the pool comes back whole. */
	munmap(self->map, self->maplen);
	self->map = MAP_FAILED;
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info);
	EXPECT_EQ(0, ret) TH_LOG("after the ring: %s",
				 kheap_state_str(&info, buf, sizeof(buf)));

	if (res->stage == 1) {
		ret = res->err;
		munmap(res, sizeof(*res));
		if (ret == ENOSYS)
			SKIP(return, "no io_uring in this kernel");
		if (ret == EPERM)
			SKIP(return, "io_uring is disabled (kernel.io_uring_disabled = %d)",
			     sysctl_int("/proc/sys/kernel/io_uring_disabled"));
		ASSERT_EQ(0, ret) TH_LOG("io_uring_setup: %s", strerror(ret));
	}
	TH_LOG("IORING_REGISTER_BUFFERS of %llu MiB: %s in %llu ms",
	       (unsigned long long)(self->pool_size >> 20),
	       res->stage == 3 ? "done" : strerror(res->err),
	       (unsigned long long)res->ms);
	ret = res->stage == 3 ? 0 : res->err;
	munmap(res, sizeof(*res));
	/*
	 * Before 6.5 io_uring itself refuses buffers of any file mapping
	 * but shmem and hugetlbfs: it came back, which is the point here.
	 */
	if (ret == EOPNOTSUPP)
		SKIP(return, "this kernel's io_uring refuses buffers of file mappings (EOPNOTSUPP)");
	EXPECT_EQ(0, ret) TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(ret));
}

TEST_HARNESS_MAIN
