// SPDX-License-Identifier: MIT
/*
 * kfork - what fork() costs a process whose heap is kheap memory, side by
 * side with glibc malloc and plain anonymous memory, in one run.
 *
 * kheap memory is private across fork() (ABI 3): the child's copy of each
 * chunk is made page by page, on first touch by either side, and the
 * parent's page tables for its chunks are dropped at every fork() so that
 * its next access copies first.  So the figures to watch are:
 *   fork_exec      fork(), the child exec()s /bin/true, the parent waits;
 *   fork_exec_rw   the same, then the parent writes one byte per page of
 *                  its whole heap (its page faults after the fork);
 *   child_writes   fork(), the child writes one byte per page of its
 *                  whole heap and exits, the parent waits.
 * Each is measured with 0, 64 and 256 MiB of live heap (256 KiB blocks,
 * every page written before the first fork), and reported in microseconds
 * per iteration, best of 3 runs.
 *
 * Usage: kfork [--iters N] [--sizes MIB,MIB,...]
 * Needs /dev/kheap with a pool larger than the largest heap (and twice as
 * large as 64 MiB for child_writes).  Nothing here is a test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kheap.h"

#define MIB	((size_t)1 << 20)
#define BLOCK	((size_t)256 << 10)
#define MAXBLK	4096

struct heap {
	const char *name;
	void *(*alloc)(size_t);
	void (*release)(void *, size_t);
};

static void *anon_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void anon_release(void *p, size_t n)
{
	munmap(p, n);
}

static void kheap_release(void *p, size_t n)
{
	(void)n;
	kheap_free(p);
}

static void glibc_release(void *p, size_t n)
{
	(void)n;
	free(p);
}

static const struct heap heaps[] = {
	{ "kheap", kheap_malloc, kheap_release },
	{ "glibc", malloc, glibc_release },
	{ "anon", anon_alloc, anon_release },
};
#define NHEAPS (sizeof(heaps) / sizeof(heaps[0]))

static char *blk[MAXBLK];
static size_t nblk;
static long pg;

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void write_heap(unsigned char v)
{
	for (size_t i = 0; i < nblk; i++)
		for (size_t o = 0; o < BLOCK; o += (size_t)pg)
			((volatile char *)blk[i])[o] = (char)v;
}

static int build(const struct heap *h, size_t mib)
{
	nblk = mib * MIB / BLOCK;
	for (size_t i = 0; i < nblk; i++) {
		blk[i] = h->alloc(BLOCK);
		if (!blk[i]) {
			nblk = i;
			return -1;
		}
	}
	write_heap(1);
	return 0;
}

static void teardown(const struct heap *h)
{
	for (size_t i = 0; i < nblk; i++)
		h->release(blk[i], BLOCK);
	nblk = 0;
}

static int wait_ok(pid_t pid)
{
	int st;

	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0;
}

enum { FORK_EXEC, FORK_EXEC_RW, CHILD_WRITES, NWORK };
static const char *const work_names[NWORK] = {
	"fork_exec", "fork_exec_rw", "child_writes",
};

/* One run of @iters iterations; microseconds per iteration, or -1. */
static double run(int work, int iters)
{
	double t0 = now_us();

	for (int i = 0; i < iters; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			if (work == CHILD_WRITES) {
				write_heap(2);
				_exit(0);
			}
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (!wait_ok(pid))
			return -1;
		if (work == FORK_EXEC_RW)
			write_heap((unsigned char)i);
	}
	return (now_us() - t0) / iters;
}

int main(int argc, char **argv)
{
	size_t sizes[8] = { 0, 64, 256 };
	int nsizes = 3, iters = 20;

	pg = sysconf(_SC_PAGESIZE);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			iters = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			char *s = argv[++i];

			for (nsizes = 0; nsizes < 8 && *s; nsizes++) {
				sizes[nsizes] = strtoul(s, &s, 10);
				if (*s == ',')
					s++;
			}
		} else {
			fprintf(stderr, "usage: kfork [--iters N] "
				"[--sizes MIB,...]\n");
			return 2;
		}
	}
	if (access("/bin/true", X_OK)) {
		printf("# kfork: no /bin/true\n");
		return 4;
	}
	printf("# kfork: us per iteration, best of 3 runs of %d\n", iters);
	printf("# workload heap_mib kheap glibc anon kheap/glibc\n");
	for (int w = 0; w < NWORK; w++) {
		for (int s = 0; s < nsizes; s++) {
			double best[NHEAPS];
			int n = w == CHILD_WRITES ? (iters + 3) / 4 : iters;

			if (w == CHILD_WRITES && sizes[s] != 64)
				continue;
			for (unsigned h = 0; h < NHEAPS; h++) {
				best[h] = -1;
				if (build(&heaps[h], sizes[s])) {
					printf("# %s: cannot hold %zu MiB: %s\n",
					       heaps[h].name, sizes[s],
					       strerror(errno));
					teardown(&heaps[h]);
					continue;
				}
				for (int r = 0; r < 3; r++) {
					double t = run(w, n);

					if (t >= 0 && (best[h] < 0 || t < best[h]))
						best[h] = t;
				}
				teardown(&heaps[h]);
			}
			printf("%s %zu %.0f %.0f %.0f %.2f\n", work_names[w],
			       sizes[s], best[0], best[1], best[2],
			       best[0] > 0 && best[1] > 0 ?
			       best[0] / best[1] : -1.0);
			fflush(stdout);
		}
	}
	return 0;
}
