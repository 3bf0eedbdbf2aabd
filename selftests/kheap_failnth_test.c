// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_failnth_test: every allocation failure on kheap's paths, one at a
 * time, through /proc/thread-self/fail-nth.
 *
 * For each call (the ioctls INFO, ALLOC, FREE, QUERY, SYNC, and ATTACH,
 * DETACH, DMA_ADDR when the test bed has an edu device; open, mmap and
 * the module's load), write N = 1, 2, ... to fail-nth before the call,
 * so that its N-th fault site (a slab or page allocation, a user copy)
 * fails, until the call runs through without reaching an N-th site.
 * After each injected failure the call either failed with an errno
 * that means "no memory" or "bad address" and left nothing behind (INFO
 * counters, module references and attachments exactly as before), or
 * succeeded with the same results as an undisturbed call; and the
 * kernel logged no warning.
 *
 * Needs root and a kernel with CONFIG_FAULT_INJECTION (the debug kernel
 * of `make check-debug`); each test skips on a kernel without
 * fail-nth, as Debian's are.  The debugfs knobs that let fail-nth reach
 * sleeping and order-0 allocations (failslab, fail_page_alloc) are set
 * for the run and restored at exit.  Loads $KHEAP_KO (or kheap.ko next
 * to this program) itself and leaves it unloaded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_dma_lib.h"
#include "kheap_kmsg_test.h"

#define FAILNTH		"/proc/thread-self/fail-nth"
#define DEBUGFS		"/sys/kernel/debug"
/* No call of kheap's reaches this many fault sites. */
#define NTH_MAX		5000
#define CHUNK		(64ULL << 10)
/* The pool the ioctl tests use: small, and within 28 bits for edu. */
#define POOL_PARAMS	"size=4M max_phys=256M"

static int kmsg_fd = -1;
static bool have_failnth;

/* debugfs knobs changed for the run, and their old values. */
#define KNOBS_MAX	32
static struct knob {
	char path[128];
	char old[32];
} knobs[KNOBS_MAX];
static int nknobs;
static pid_t main_pid;

static void knob_set(const char *path, const char *val)
{
	struct knob *k;
	ssize_t n;
	int fd;

	if (nknobs == KNOBS_MAX)
		return;
	k = &knobs[nknobs];
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, k->old, sizeof(k->old) - 1);
	close(fd);
	if (n <= 0)
		return;
	k->old[n] = '\0';
	/* A debugfs attribute takes a whole value per open file. */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, val, strlen(val)) == (ssize_t)strlen(val)) {
		snprintf(k->path, sizeof(k->path), "%s", path);
		nknobs++;
	} else {
		ksft_print_msg("%s: %s\n", path, strerror(errno));
	}
	close(fd);
}

/*
 * By default failslab and fail_page_alloc leave alone the allocations
 * that may sleep, fail_page_alloc those of order 0 and of highmem: that
 * is nearly all of a driver's.  A failure is not worth a stack dump
 * each (a "Call Trace" in the log is what the checks look for).
 */
static void knobs_setup(void)
{
	glob_t g;
	size_t i;

	if (access(DEBUGFS "/failslab", F_OK))
		mount("debugfs", DEBUGFS, "debugfs", 0, NULL);
	knob_set(DEBUGFS "/failslab/ignore-gfp-wait", "N");
	knob_set(DEBUGFS "/fail_page_alloc/ignore-gfp-wait", "N");
	knob_set(DEBUGFS "/fail_page_alloc/ignore-gfp-highmem", "N");
	knob_set(DEBUGFS "/fail_page_alloc/min-order", "0");
	if (glob(DEBUGFS "/fail*/verbose", 0, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc; i++)
			knob_set(g.gl_pathv[i], "0");
		globfree(&g);
	}
}

/* Restore the knobs set since there were @mark of them. */
static void knobs_unwind(int mark)
{
	int fd;

	while (nknobs > mark) {
		struct knob *k = &knobs[--nknobs];

		fd = open(k->path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (write(fd, k->old, strlen(k->old)) < 0)
			ksft_print_msg("restoring %s: %s\n", k->path,
				       strerror(errno));
		close(fd);
	}
}

static void __attribute__((destructor)) knobs_restore(void)
{
	if (getpid() == main_pid)
		knobs_unwind(0);
}

/*
 * The lowest address above the kernel's own text (init text included),
 * from /proc/kallsyms: on x86-64 module text lies above it, the kernel's
 * below.  0 if not found (or hidden by kptr_restrict).
 */
static unsigned long long kernel_text_end(void)
{
	unsigned long long addr, end = 0;
	char line[256], type, name[128];
	FILE *f = fopen("/proc/kallsyms", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %127s", &addr, &type, name) != 3)
			continue;
		if ((!strcmp(name, "_etext") || !strcmp(name, "_einittext")) &&
		    addr > end)
			end = addr;
	}
	fclose(f);
	return end;
}

/*
 * With CONFIG_FAULT_INJECTION_STACKTRACE_FILTER, fail-nth counts only
 * the fault sites whose stack holds an address in [require-start,
 * require-end): from the end of the kernel's text on, that is module
 * code, here kheap's init and what it calls.  The loader's own
 * allocations around it are then left alone; 6.12's loader WARNs when
 * some of them fail (jump_label_module_notify()), which is not kheap's
 * to handle.  Whether the filter could be set.
 */
static bool knobs_require_module_text(void)
{
	unsigned long long start = kernel_text_end();
	int before = nknobs;
	char val[32];
	glob_t g;
	size_t i;

	if (!start || glob(DEBUGFS "/fail*/require-start", 0, NULL, &g))
		return false;
	snprintf(val, sizeof(val), "%llu", start + 1);
	for (i = 0; i < g.gl_pathc; i++)
		knob_set(g.gl_pathv[i], val);
	globfree(&g);
	return nknobs > before;
}

static void __attribute__((constructor)) kheap_failnth_test_init(void)
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
	main_pid = getpid();
	have_failnth = access(FAILNTH, W_OK) == 0;
	if (have_failnth)
		knobs_setup();
	kmsg_fd = kheap_kmsg_open();
}

/*
 * fail-nth: the N-th fault site this thread reaches after nth_arm(N)
 * fails.  Reading gives the count left, 0 once the fault was injected.
 * The read and the write are fault sites themselves (user copies) while
 * the count is not 0, which nth_disarm() allows for: whatever the count
 * was, it ends at 0.
 */
static int nth_arm(int nth_fd, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(nth_fd, buf, len, 0) == len ? 0 : -errno;
}

/* Whether the fault was injected; fail-nth is 0 afterwards. */
static bool nth_disarm(int nth_fd)
{
	char buf[16] = "";
	ssize_t n = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	int i;

	/* A failed read used up the last count: nothing was injected. */
	bool injected = n > 0 && buf[0] == '0';

	for (i = 0; i < 3; i++)
		if (pwrite(nth_fd, "0", 1, 0) == 1)
			break;
	return injected;
}

/* The errors an allocation or user copy failure may surface as. */
static bool clean_errno(int err)
{
	return err == ENOMEM || err == EFAULT || err == EINTR ||
	       err == EAGAIN || err == ENOSPC;
}

/* What expect_quiet_log() found in the log. */
struct quiet_log {
	unsigned int n;		/* the fail-nth value, for the messages */
	bool report;		/* an allocation failure report is open */
	int bad;		/* complaints */
};

/*
 * An injected failure of an allocation made without __GFP_NOWARN is
 * reported by the allocator (warn_alloc(): "page allocation failure" or
 * "vmalloc error", then a stack dump): the kernel telling of the failure
 * asked for, not a complaint.  That report's one "Call Trace" is let
 * through, as scripts/kernel-complaints.awk does for the guest's log;
 * everything kheap_kmsg_scan() counts still counts.
 */
static void kmsg_failnth(const char *msg, void *arg)
{
	struct quiet_log *q = arg;

	if (strstr(msg, "page allocation failure:") ||
	    strstr(msg, "vmalloc error:")) {
		q->report = true;
		ksft_print_msg("kernel (fail-nth %u, the injected failure's report): %s\n",
			       q->n, msg);
		return;
	}
	if (q->report && strstr(msg, "Call Trace")) {
		q->report = false;
		return;
	}
	if (kheap_kmsg_is_bad(msg)) {
		q->bad++;
		ksft_print_msg("kernel (fail-nth %u): %s\n", q->n, msg);
	}
}

/* No kernel warning since the last look; say which N caused one. */
static void expect_quiet_log(struct __test_metadata *_metadata,
			     unsigned int n)
{
	struct quiet_log q = { .n = n };
	int ret;

	if (kmsg_fd < 0)
		return;
	ret = kheap_kmsg_read(kmsg_fd, kmsg_failnth, &q);
	EXPECT_LE(0, ret) TH_LOG("reading /dev/kmsg: %s", kheap_errname(ret));
	EXPECT_EQ(0, q.bad) TH_LOG("fail-nth %u: the kernel complained", n);
}

static int module_refcnt(void)
{
	char buf[32];
	int fd = open("/sys/module/" KHEAP_MODNAME "/refcnt",
		      O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	return atoi(buf);
}

static void ensure_unloaded(struct __test_metadata *_metadata)
{
	int ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);

	ASSERT_TRUE(ret == 0 || ret == -ENOENT)
		TH_LOG("unloading kheap: %s", kheap_errname(ret));
}

/* ---- the ioctls, open and mmap ------------------------------------ */

FIXTURE(failnth) {
	int fd;
	int nth;
	int refcnt;
	struct kheap_info base;	/* with no chunk held */
};

/*
 * First thing in every test body: the harness of 6.1 runs the body even
 * after its setup skipped (no fail-nth, or a load sweep not asked for).
 */
#define NEED_FAILNTH() do {						\
	if (self->nth < 0)						\
		SKIP(return, "no fault injection");			\
} while (0)

FIXTURE_SETUP(failnth)
{
	int ret;

	self->fd = -1;
	self->nth = -1;
	if (!have_failnth)
		SKIP(return, "no %s (a kernel without CONFIG_FAULT_INJECTION)",
		     FAILNTH);
	ensure_unloaded(_metadata);
	ret = kheap_module_load(POOL_PARAMS);
	ASSERT_EQ(0, ret) TH_LOG("loading kheap %s: %s", POOL_PARAMS,
				 kheap_errname(ret));
	self->fd = kheap_open();
	ASSERT_LE(0, self->fd) TH_LOG("open: %s", kheap_errname(self->fd));
	self->nth = open(FAILNTH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->nth) TH_LOG("%s: %s", FAILNTH, strerror(errno));
	ret = kheap_info(self->fd, &self->base);
	ASSERT_EQ(0, ret) TH_LOG("INFO: %s", kheap_errname(ret));
	self->refcnt = module_refcnt();
	ASSERT_LE(0, self->refcnt);
	expect_quiet_log(_metadata, 0);
}

FIXTURE_TEARDOWN(failnth)
{
	if (self->nth >= 0)
		close(self->nth);
	if (self->fd >= 0)
		close(self->fd);
	if (have_failnth)
		kheap_module_unload_wait(KHEAP_SETTLE_MS);
}

/*
 * After a call: INFO says @want (counters of pool and file, give or take
 * a deferred release) and the module has its references of before.
 */
static void expect_state(struct __test_metadata *_metadata,
			 FIXTURE_DATA(failnth) *self,
			 const struct kheap_info *want, unsigned int n,
			 const char *what)
{
	struct kheap_info now;
	char b1[256], b2[256];
	int ret;

	ret = kheap_wait_state(self->fd, want->free_bytes,
			       want->chunks_in_use, KHEAP_SETTLE_MS, &now);
	ASSERT_TRUE(ret == 0 || ret == -ETIMEDOUT)
		TH_LOG("INFO: %s", kheap_errname(ret));
	EXPECT_TRUE(kheap_same_state(want, &now))
		TH_LOG("%s, fail-nth %u: INFO %s, want %s", what, n,
		       kheap_state_str(&now, b1, sizeof(b1)),
		       kheap_state_str(want, b2, sizeof(b2)));
	EXPECT_EQ(want->attachments, now.attachments)
		TH_LOG("%s, fail-nth %u: attachments", what, n);
	EXPECT_EQ(self->refcnt, module_refcnt())
		TH_LOG("%s, fail-nth %u: module references", what, n);
	expect_quiet_log(_metadata, n);
}

/* One sweep: the loop every test runs, with its verdict on each pass. */
static void expect_clean(struct __test_metadata *_metadata, int ret,
			 unsigned int n, const char *what)
{
	EXPECT_TRUE(ret == 0 || clean_errno(-ret))
		TH_LOG("%s, fail-nth %u: %s", what, n, kheap_errname(ret));
}

/*
 * The sweep ended (@n one past the last N) with an undisturbed call
 * that worked.
 */
static void expect_swept(struct __test_metadata *_metadata, unsigned int n,
			 bool injected, int ret, const char *what)
{
	EXPECT_FALSE(injected)
		TH_LOG("%s: still failing at fail-nth %d", what, NTH_MAX);
	EXPECT_EQ(0, ret) TH_LOG("%s without a fault: %s", what,
				 kheap_errname(ret));
	ksft_print_msg("%s: %u fault sites\n", what, n - 2);
}

/* open(KHEAP_DEV): a file or -errno, errno read before anything else. */
static int open_dev(void)
{
	int fd = open(KHEAP_DEV, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* kheap_map(): 0 or -errno, errno read before anything else. */
static int map_dev(int fd, uint64_t token, char **p)
{
	*p = kheap_map(fd, token, CHUNK);
	return *p == MAP_FAILED ? -errno : 0;
}

static int alloc_chunk(int fd, struct kheap_alloc *a)
{
	return kheap_alloc(fd, CHUNK, 0, a);
}

TEST_F_TIMEOUT(failnth, info, 600)
{
	struct kheap_info info;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		memset(&info, 0, sizeof(info));
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_INFO, &info);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "INFO");
		if (!ret)
			EXPECT_EQ(0, memcmp(&info, &self->base, sizeof(info)))
				TH_LOG("INFO, fail-nth %u: other answers", n);
		expect_state(_metadata, self, &self->base, n, "INFO");
	}
	expect_swept(_metadata, n, injected, ret, "INFO");
}

/* An ALLOC answer that is a real chunk of the pool. */
static void expect_chunk(struct __test_metadata *_metadata,
			 const struct kheap_info *pool,
			 const struct kheap_alloc *a, unsigned int n)
{
	EXPECT_NE(0ULL, a->token) TH_LOG("fail-nth %u: no token", n);
	EXPECT_LE(CHUNK, a->size_out) TH_LOG("fail-nth %u", n);
	EXPECT_EQ(0ULL, a->phys % pool->page_size) TH_LOG("fail-nth %u", n);
	EXPECT_LE(pool->pool_phys, a->phys) TH_LOG("fail-nth %u", n);
	EXPECT_GE(pool->pool_phys + pool->pool_size, a->phys + a->size_out)
		TH_LOG("fail-nth %u", n);
}

TEST_F_TIMEOUT(failnth, alloc, 600)
{
	struct kheap_alloc a;
	struct kheap_info held;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		memset(&a, 0, sizeof(a));
		a.size = CHUNK;
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &a);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "ALLOC");
		if (!ret) {
			expect_chunk(_metadata, &self->base, &a, n);
			ASSERT_EQ(0, kheap_info(self->fd, &held));
			EXPECT_EQ(self->base.free_bytes - a.size_out,
				  held.free_bytes);
			EXPECT_EQ(self->base.chunks_in_use + 1,
				  held.chunks_in_use);
			ASSERT_EQ(0, kheap_free(self->fd, a.token));
		}
		expect_state(_metadata, self, &self->base, n, "ALLOC");
	}
	expect_swept(_metadata, n, injected, ret, "ALLOC");
}

TEST_F_TIMEOUT(failnth, free, 600)
{
	struct kheap_info held;
	struct kheap_alloc a;
	struct kheap_free f;
	unsigned int n;
	bool injected = true;
	int ret = 0;

	NEED_FAILNTH();

	for (n = 1; injected && n <= NTH_MAX; n++) {
		ASSERT_EQ(0, alloc_chunk(self->fd, &a));
		ASSERT_EQ(0, kheap_info(self->fd, &held));
		memset(&f, 0, sizeof(f));
		f.token = a.token;
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_FREE, &f);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "FREE");
		if (ret) {
			/* Refused: the chunk is still there, and frees. */
			expect_state(_metadata, self, &held, n, "FREE");
			ASSERT_EQ(0, kheap_free(self->fd, a.token));
		}
		expect_state(_metadata, self, &self->base, n, "FREE");
	}
	expect_swept(_metadata, n, injected, ret, "FREE");
}

/* A chunk, mapped and touched, for the calls that look at one. */
struct mapped {
	struct kheap_alloc a;
	struct kheap_info held;
	char *p;
};

static void map_chunk(struct __test_metadata *_metadata, int fd,
		      struct mapped *m)
{
	ASSERT_EQ(0, alloc_chunk(fd, &m->a));
	m->p = kheap_map(fd, m->a.token, CHUNK);
	ASSERT_NE(MAP_FAILED, m->p) TH_LOG("mmap: %s", strerror(errno));
	memset(m->p, 0x5a, CHUNK);
	ASSERT_EQ(0, kheap_info(fd, &m->held));
}

static void unmap_chunk(struct __test_metadata *_metadata,
			FIXTURE_DATA(failnth) *self, struct mapped *m)
{
	EXPECT_EQ(0, munmap(m->p, CHUNK));
	EXPECT_EQ(0, kheap_free(self->fd, m->a.token));
	expect_state(_metadata, self, &self->base, 0, "after the sweep");
}

TEST_F_TIMEOUT(failnth, query, 600)
{
	struct kheap_query q, ref;
	struct mapped m;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	map_chunk(_metadata, self->fd, &m);
	ASSERT_EQ(0, kheap_query(self->fd, m.p + 4096 + 17, &ref));
	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		memset(&q, 0, sizeof(q));
		q.addr = (uintptr_t)(m.p + 4096 + 17);
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_QUERY, &q);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "QUERY");
		if (!ret)
			EXPECT_EQ(0, memcmp(&q, &ref, sizeof(q)))
				TH_LOG("QUERY, fail-nth %u: other answers", n);
		expect_state(_metadata, self, &m.held, n, "QUERY");
	}
	expect_swept(_metadata, n, injected, ret, "QUERY");
	unmap_chunk(_metadata, self, &m);
}

TEST_F_TIMEOUT(failnth, sync, 600)
{
	static const uint64_t flags[] = {
		KHEAP_SYNC_RW | KHEAP_SYNC_START,
		KHEAP_SYNC_RW | KHEAP_SYNC_END,
	};
	struct kheap_sync s;
	struct mapped m;
	unsigned int n, i;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	map_chunk(_metadata, self->fd, &m);
	for (i = 0; i < 2; i++) {
		for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
			memset(&s, 0, sizeof(s));
			s.token = m.a.token;
			s.length = CHUNK;
			s.flags = flags[i];
			ASSERT_EQ(0, nth_arm(self->nth, n));
			ret = kheap_ioctl(self->fd, KHEAP_IOC_SYNC, &s);
			injected = nth_disarm(self->nth);
			expect_clean(_metadata, ret, n, "SYNC");
			expect_state(_metadata, self, &m.held, n, "SYNC");
		}
		expect_swept(_metadata, n, injected, ret, i ? "SYNC END" : "SYNC START");
	}
	unmap_chunk(_metadata, self, &m);
}

TEST_F_TIMEOUT(failnth, open, 600)
{
	struct kheap_info other;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = open_dev();
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret < 0 ? ret : 0, n, "open");
		if (ret >= 0) {
			/* A working file: it allocates, and frees on close. */
			struct kheap_alloc a;

			EXPECT_EQ(0, kheap_info(ret, &other));
			EXPECT_EQ(0ULL, other.file_chunks);
			EXPECT_EQ(0, alloc_chunk(ret, &a));
			close(ret);
			ret = 0;
		}
		expect_state(_metadata, self, &self->base, n, "open");
	}
	expect_swept(_metadata, n, injected, ret, "open");
}

TEST_F_TIMEOUT(failnth, mmap, 600)
{
	struct kheap_query q;
	struct kheap_info held;
	struct kheap_alloc a;
	unsigned int n;
	bool injected;
	char *p = MAP_FAILED;
	int ret = 0;

	NEED_FAILNTH();

	ASSERT_EQ(0, alloc_chunk(self->fd, &a));
	ASSERT_EQ(0, kheap_info(self->fd, &held));
	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = map_dev(self->fd, a.token, &p);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "mmap");
		if (!ret) {
			/* The chunk itself, with its bytes. */
			p[0] = 1;
			p[CHUNK - 1] = 2;
			EXPECT_EQ(0, kheap_query(self->fd, p + CHUNK - 1, &q));
			EXPECT_EQ(a.token, q.token) TH_LOG("fail-nth %u", n);
			EXPECT_EQ(a.phys + CHUNK - 1, q.phys)
				TH_LOG("fail-nth %u", n);
			EXPECT_EQ(0, munmap(p, CHUNK));
		}
		expect_state(_metadata, self, &held, n, "mmap");
	}
	expect_swept(_metadata, n, injected, ret, "mmap");
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
	expect_state(_metadata, self, &self->base, 0, "after the sweep");
}

TEST_F_TIMEOUT(failnth, attach, 600)
{
	struct kheap_edu_dev dev;
	struct kheap_attach att;
	struct kheap_info now;
	struct mapped m;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	if (kheap_edu_list(&dev, 1) <= 0)
		SKIP(return, "no edu device (-device edu)");
	/* A chunk held: ATTACH maps it for the device too. */
	map_chunk(_metadata, self->fd, &m);
	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		memset(&att, 0, sizeof(att));
		att.name = (uintptr_t)dev.bdf;
		att.dma_bits = dev.bits;
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, &att);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "ATTACH");
		if (!ret) {
			EXPECT_NE(0ULL, att.handle);
			ASSERT_EQ(0, kheap_info(self->fd, &now));
			EXPECT_EQ(m.held.attachments + 1, now.attachments);
			EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
		}
		expect_state(_metadata, self, &m.held, n, "ATTACH");
	}
	expect_swept(_metadata, n, injected, ret, "ATTACH");
	unmap_chunk(_metadata, self, &m);
}

TEST_F_TIMEOUT(failnth, detach, 600)
{
	struct kheap_edu_dev dev;
	struct kheap_attach att;
	struct kheap_detach d;
	struct kheap_info with;
	struct mapped m;
	unsigned int n;
	bool injected = true;
	int ret = 0;

	NEED_FAILNTH();

	if (kheap_edu_list(&dev, 1) <= 0)
		SKIP(return, "no edu device (-device edu)");
	map_chunk(_metadata, self->fd, &m);
	for (n = 1; injected && n <= NTH_MAX; n++) {
		ASSERT_EQ(0, kheap_attach(self->fd, dev.bdf, dev.bits, &att));
		ASSERT_EQ(0, kheap_info(self->fd, &with));
		memset(&d, 0, sizeof(d));
		d.handle = att.handle;
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_DETACH, &d);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "DETACH");
		if (ret) {
			expect_state(_metadata, self, &with, n, "DETACH");
			ASSERT_EQ(0, kheap_detach(self->fd, att.handle));
		}
		expect_state(_metadata, self, &m.held, n, "DETACH");
	}
	expect_swept(_metadata, n, injected, ret, "DETACH");
	unmap_chunk(_metadata, self, &m);
}

TEST_F_TIMEOUT(failnth, dma_addr, 600)
{
	struct kheap_edu_dev dev;
	struct kheap_attach att;
	struct kheap_dma_addr d;
	struct kheap_info with;
	uint64_t ref = 0;
	struct mapped m;
	unsigned int n;
	bool injected;
	int ret = 0;

	NEED_FAILNTH();

	if (kheap_edu_list(&dev, 1) <= 0)
		SKIP(return, "no edu device (-device edu)");
	map_chunk(_metadata, self->fd, &m);
	ASSERT_EQ(0, kheap_attach(self->fd, dev.bdf, dev.bits, &att));
	ASSERT_EQ(0, kheap_dma_addr(self->fd, m.a.token, att.handle, &ref));
	ASSERT_EQ(0, kheap_info(self->fd, &with));
	for (n = 1, injected = true; injected && n <= NTH_MAX; n++) {
		memset(&d, 0, sizeof(d));
		d.token = m.a.token;
		d.handle = att.handle;
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = kheap_ioctl(self->fd, KHEAP_IOC_DMA_ADDR, &d);
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "DMA_ADDR");
		if (!ret)
			EXPECT_EQ(ref, d.dma_addr) TH_LOG("fail-nth %u", n);
		expect_state(_metadata, self, &with, n, "DMA_ADDR");
	}
	expect_swept(_metadata, n, injected, ret, "DMA_ADDR");
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	unmap_chunk(_metadata, self, &m);
}

/* ---- the module's load -------------------------------------------- */

/*
 * init_module(2) with the image in memory, as busybox insmod does: the
 * kernel copies it with a quiet allocation.  finit_module(2) would read
 * the file into a vmalloc() that reports its failure with a stack dump,
 * the kernel's own and nothing of kheap's.
 */
FIXTURE(failnth_load) {
	int nth;
	int knobs_mark;	/* the stack filter's knobs are the ones past it */
	void *image;
	size_t len;
	char params[128];
};

FIXTURE_VARIANT(failnth_load) {
	const char *params;	/* NULL: $KHEAP_RESERVED source=reserved */
};

FIXTURE_VARIANT_ADD(failnth_load, contig) {
	.params = "size=4M source=contig",
};

FIXTURE_VARIANT_ADD(failnth_load, buddy) {
	.params = "size=2M source=buddy",
};

FIXTURE_VARIANT_ADD(failnth_load, reserved) {
	.params = NULL,
};

FIXTURE_SETUP(failnth_load)
{
	const char *reserved = getenv("KHEAP_RESERVED");
	struct stat st;
	int fd;

	self->nth = -1;
	self->image = MAP_FAILED;
	self->knobs_mark = nknobs;
	if (!have_failnth)
		SKIP(return, "no %s (a kernel without CONFIG_FAULT_INJECTION)",
		     FAILNTH);
	/*
	 * Without the stack filter every fault site of the loader counts,
	 * and the loader WARNs on some of its own failures: with
	 * panic_on_warn, as in the guests, that ends the run at about
	 * fail-nth 66.  Then the sweep runs only when asked for.
	 */
	if (!knobs_require_module_text() && !getenv("KHEAP_FAILNTH_INIT"))
		SKIP(return,
		     "no fault injection stack filter, KHEAP_FAILNTH_INIT unset: the loader WARNs on its own failures");
	if (variant->params) {
		snprintf(self->params, sizeof(self->params), "%s",
			 variant->params);
	} else {
		if (!reserved || !*reserved)
			SKIP(return, "KHEAP_RESERVED not set");
		snprintf(self->params, sizeof(self->params),
			 "%s source=reserved", reserved);
	}
	ensure_unloaded(_metadata);
	fd = open(kheap_ko_path(), O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", kheap_ko_path(), strerror(errno));
	ASSERT_EQ(0, fstat(fd, &st));
	self->len = st.st_size;
	self->image = mmap(NULL, self->len, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
			   fd, 0);
	close(fd);
	ASSERT_NE(MAP_FAILED, self->image);
	self->nth = open(FAILNTH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->nth);
	expect_quiet_log(_metadata, 0);
}

FIXTURE_TEARDOWN(failnth_load)
{
	knobs_unwind(self->knobs_mark);
	if (self->nth >= 0)
		close(self->nth);
	if (self->image != MAP_FAILED)
		munmap(self->image, self->len);
	if (have_failnth)
		kheap_module_unload_wait(KHEAP_SETTLE_MS);
}

/* Nothing of a failed load is left: module, device, sysfs, iomem. */
static void expect_not_loaded(struct __test_metadata *_metadata,
			      unsigned int n)
{
	char line[256];
	FILE *f;

	EXPECT_FALSE(kheap_module_listed()) TH_LOG("fail-nth %u", n);
	EXPECT_NE(0, access(KHEAP_DEV, F_OK)) TH_LOG("fail-nth %u", n);
	EXPECT_NE(0, access(KHEAP_SYSFS, F_OK)) TH_LOG("fail-nth %u", n);
	f = fopen("/proc/iomem", "re");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f))
		EXPECT_EQ(NULL, strstr(line, KHEAP_MODNAME))
			TH_LOG("fail-nth %u: /proc/iomem: %s", n, line);
	fclose(f);
}

TEST_F_TIMEOUT(failnth_load, init, 1800)
{
	uint64_t free_before = 0, free_after = 0;
	struct kheap_info info;
	unsigned int n;
	bool injected = true;
	int ret = 0, fd;

	NEED_FAILNTH();

	ASSERT_EQ(0, kheap_meminfo_kb("MemFree", &free_before));
	for (n = 1; injected && n <= NTH_MAX; n++) {
		ASSERT_EQ(0, nth_arm(self->nth, n));
		ret = syscall(SYS_init_module, self->image, self->len,
			      self->params);
		if (ret)
			ret = -errno;
		injected = nth_disarm(self->nth);
		expect_clean(_metadata, ret, n, "init_module");
		if (ret) {
			expect_not_loaded(_metadata, n);
		} else {
			/* A whole, empty pool. */
			fd = kheap_open();
			EXPECT_LE(0, fd) TH_LOG("fail-nth %u: open: %s", n,
						kheap_errname(fd));
			if (fd >= 0) {
				EXPECT_EQ(0, kheap_info(fd, &info));
				EXPECT_EQ(info.pool_size, info.free_bytes)
					TH_LOG("fail-nth %u", n);
				EXPECT_EQ(0ULL, info.chunks_in_use);
				close(fd);
			}
			ASSERT_EQ(0, kheap_module_unload_wait(KHEAP_SETTLE_MS))
				TH_LOG("fail-nth %u", n);
		}
		expect_quiet_log(_metadata, n);
	}
	expect_swept(_metadata, n, injected, ret, "init_module");
	/* A pool leaked by each failed load would add up to far more. */
	ASSERT_EQ(0, kheap_meminfo_kb("MemFree", &free_after));
	EXPECT_GT(free_after + 32768, free_before)
		TH_LOG("MemFree %llu kB before the sweep, %llu kB after",
		       (unsigned long long)free_before,
		       (unsigned long long)free_after);
}

KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
