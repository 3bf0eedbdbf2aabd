// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_soak_test: many short lives of a kheap file, then nothing left.
 *
 * Four processes share --cycles cycles (default 100000).  A cycle opens
 * /dev/kheap, allocates a chunk of one to four pages, maps it, checks
 * that it reads zero and writes it, and ends in one of three orders:
 * munmap then close; close then munmap (the mapping alone keeps the
 * chunk); FREE, close, then munmap.  At the end the pool must be entirely
 * free, and no slab cache may have grown by more than
 *
 *	SLAB_SLACK + cycles / SLAB_PER_CYCLE objects
 *
 * (/proc/slabinfo active objects, after a warm-up and a settle).  A leak
 * of one object per cycle grows a cache by the number of cycles: 50 times
 * the per-cycle allowance.  The fixed SLAB_SLACK absorbs what a correct
 * kernel legitimately keeps: objects parked in per-CPU and partial slabs
 * (counted as active by SLUB) and RCU-deferred frees.  Every cache is
 * shrunk before each count, which also empties KASAN's quarantine.  The
 * run prints the largest growth it saw, so the margin can be checked.
 *
 *   kheap_soak_test [--cycles N] [--procs N]
 * Needs the module loaded, and root for /proc/slabinfo (else the slab
 * check is skipped).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

#define MAX_PROCS	16
#define MAX_CACHES	512
#define SLAB_SLACK	2048
#define SLAB_PER_CYCLE	50

static int kmsg_fd = -1;
static unsigned long opt_cycles = 100000;
static unsigned int opt_procs = 4;

struct slab_count {
	char name[64];
	long active;
};

/*
 * Ask every slab cache to give back what it can (kmem_cache_shrink).
 * Under KASAN this also empties the cache's share of the quarantine,
 * where freed objects wait, still counted as active, so that a
 * use-after-free hits poisoned memory: thousands of maple nodes after a
 * few thousand cycles.  Aliases of merged caches are symlinks: skipped.
 * Returns how many caches were shrunk.
 */
static int slab_shrink_all(void)
{
	DIR *d = opendir("/sys/kernel/slab");
	struct dirent *e;
	char path[320];
	int fd, n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || e->d_type == DT_LNK)
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink",
			 e->d_name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Best effort: a cache that cannot shrink is counted as is. */
		n += write(fd, "1", 1) == 1;
		close(fd);
	}
	closedir(d);
	return n;
}

/*
 * Active objects of every cache in /proc/slabinfo, after a shrink of
 * each (@shrunk: how many); the number of caches.
 */
static int slab_snapshot(struct slab_count *s, int max, int *shrunk)
{
	char line[512];
	FILE *f;
	int n = 0;

	*shrunk = slab_shrink_all();
	f = fopen("/proc/slabinfo", "r");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !strncmp(line, "slabinfo", 8))
			continue;
		if (sscanf(line, "%63s %ld", s[n].name, &s[n].active) == 2)
			n++;
	}
	fclose(f);
	return n;
}

static long slab_find(const struct slab_count *s, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s[i].name, name))
			return s[i].active;
	return 0;
}

/* One cycle; @i picks the size and the order of the ending.  0 or -1. */
static int one_cycle(unsigned long i, uint64_t pg)
{
	uint64_t size = (1 + i % 4) * pg, p;
	struct kheap_alloc a;
	char *m;
	int fd, ret;

	fd = kheap_open();
	if (fd < 0) {
		fprintf(stderr, "# round %lu: open: %s\n", i, kheap_errname(fd));
		return -1;
	}
	ret = kheap_alloc(fd, size, 0, &a);
	if (ret) {
		fprintf(stderr, "# round %lu: ALLOC: %s\n", i, kheap_errname(ret));
		close(fd);
		return -1;
	}
	m = kheap_map(fd, a.token, size);
	if (m == MAP_FAILED) {
		fprintf(stderr, "# round %lu: mmap: %s\n", i, strerror(errno));
		close(fd);
		return -1;
	}
	for (p = 0; p < size; p += pg) {
		if (__atomic_load_n((uint64_t *)(m + p), __ATOMIC_RELAXED)) {
			fprintf(stderr, "# round %lu: a new chunk is not zero\n", i);
			ret = -1;
		}
		__atomic_store_n((uint64_t *)(m + p), i + 1, __ATOMIC_RELAXED);
	}
	switch (i % 3) {
	case 0:
		munmap(m, size);
		close(fd);
		break;
	case 1:
		close(fd);
		munmap(m, size);
		break;
	default:
		if (kheap_free(fd, a.token)) {
			fprintf(stderr, "# round %lu: FREE failed\n", i);
			ret = -1;
		}
		close(fd);
		munmap(m, size);
		break;
	}
	return ret;
}

/* @n cycles over opt_procs processes; 0 when every cycle went well. */
static int run_cycles(unsigned long n, uint64_t pg)
{
	pid_t pids[MAX_PROCS];
	unsigned int p;
	int status, ret = 0;

	for (p = 0; p < opt_procs; p++) {
		pids[p] = fork();
		if (pids[p] < 0)
			return -1;
		if (pids[p] == 0) {
			unsigned long i;

			for (i = p; i < n; i += opt_procs)
				if (one_cycle(i, pg))
					_exit(1);
			_exit(0);
		}
	}
	for (p = 0; p < opt_procs; p++) {
		if (waitpid(pids[p], &status, 0) != pids[p] ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			ret = -1;
	}
	return ret;
}

static void __attribute__((constructor)) kheap_soak_init(void)
{
	kmsg_fd = kheap_kmsg_open();
}

/* TEST()'s wrapper leaves a parameter unused (harness, not our code). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
TEST(soak)
{
	static struct slab_count before[MAX_CACHES], after[MAX_CACHES];
	long allowed = SLAB_SLACK + opt_cycles / SLAB_PER_CYCLE;
	long worst = 0, growth;
	int nb, na, i, fd, ret, worst_i = -1, shrunk;
	uint64_t pg = getpagesize(), t0, ms;
	struct kheap_info info;
	char buf[192];

	fd = kheap_open();
	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO)
		SKIP(return, "%s: %s (is kheap.ko loaded?)", KHEAP_DEV,
		     kheap_errname(fd));
	ASSERT_GE(fd, 0) TH_LOG("open: %s", kheap_errname(fd));
	ret = kheap_wait_idle(fd, KHEAP_SETTLE_MS, &info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle at the start: %s",
				 kheap_state_str(&info, buf, sizeof(buf)));

	/* Warm-up: caches and per-CPU slabs reach their working size. */
	ASSERT_EQ(0, run_cycles(opt_cycles / 100 + 400, pg));
	ASSERT_EQ(0, kheap_wait_idle(fd, KHEAP_SETTLE_MS, &info));
	kheap_sleep_ms(1000);
	t0 = kheap_now_ms();
	nb = slab_snapshot(before, MAX_CACHES, &shrunk);
	ksft_print_msg("warm-up done; %d slab caches shrunk and counted in %llu ms\n",
		       shrunk, (unsigned long long)(kheap_now_ms() - t0));

	t0 = kheap_now_ms();
	EXPECT_EQ(0, run_cycles(opt_cycles, pg));
	ms = kheap_now_ms() - t0;
	ksft_print_msg("%lu cycles over %u processes in %llu ms (%llu cycles/s)\n",
		       opt_cycles, opt_procs, (unsigned long long)ms,
		       (unsigned long long)(opt_cycles * 1000 / (ms ? ms : 1)));

	/* Accounting: everything came back, exactly. */
	ret = kheap_wait_idle(fd, KHEAP_SETTLE_MS, &info);
	EXPECT_EQ(0, ret) TH_LOG("after the soak: %s",
				 kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(info.pool_size, info.free_bytes);
	EXPECT_EQ(info.pool_size, info.largest_free);
	EXPECT_EQ(0ULL, info.chunks_in_use);
	close(fd);

	if (nb < 0)
		SKIP(return, "/proc/slabinfo: %s", strerror(-nb));
	/* RCU-deferred frees (files, maple nodes) finish within a second. */
	kheap_sleep_ms(1000);
	na = slab_snapshot(after, MAX_CACHES, &shrunk);
	ASSERT_GT(na, 0);
	ksft_print_msg("%d slab caches shrunk before the count\n", shrunk);
	for (i = 0; i < na; i++) {
		growth = after[i].active - slab_find(before, nb, after[i].name);
		if (growth > worst) {
			worst = growth;
			worst_i = i;
		}
		EXPECT_LE(growth, allowed)
			TH_LOG("slab cache %s grew by %ld objects over %lu cycles (allowed %ld)",
			       after[i].name, growth, opt_cycles, allowed);
	}
	ksft_print_msg("largest slab growth: %ld objects (%s), allowed %ld\n",
		       worst, worst_i >= 0 ? after[worst_i].name : "none",
		       allowed);
}

#pragma GCC diagnostic pop

/* Must stay the last test: it checks what the soak logged. */
KHEAP_KERNEL_LOG_TEST()

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cycles", required_argument, NULL, 'c' },
		{ "procs", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "c:p:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opt_cycles = strtoul(optarg, &end, 0);
			if (*end || !opt_cycles)
				return 2;
			break;
		case 'p':
			opt_procs = strtoul(optarg, &end, 0);
			if (*end || !opt_procs || opt_procs > MAX_PROCS)
				return 2;
			break;
		default:
			fprintf(stderr, "usage: %s [--cycles N] [--procs N]\n",
				argv[0]);
			return 2;
		}
	}
	/*
	 * The harness kills a test that outlives its timeout: a hang, not a
	 * slow run, so ten cycles a second (a stock TCG guest does about
	 * 1000, a KASAN one beside another guest under 30) and two minutes
	 * for the warm-up and the shrinks.
	 */
	_soak_object.timeout = 120 + opt_cycles / 10;
	/* Our options are parsed: the harness gets none of them. */
	optind = 1;
	return test_harness_run(1, argv);
}
