// SPDX-License-Identifier: MIT
/*
 * kpath - the kernel path of a kheap buffer, side by side with anonymous
 * memory, in one run: what it costs to get N MiB that a program can use.
 *
 *   kheap  KHEAP_IOC_ALLOC (the pool's pages, zeroed), mmap() of the
 *          chunk, then a write to every page;
 *   anon   mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE) (pages from the
 *          buddy allocator, zeroed, mapped), then a write to every page.
 * Both end with munmap() (and FREE), outside the timed part.  N is 4, 64 and
 * 512 MiB by default; each figure is the best of --runs runs (default 5),
 * in microseconds, with the minor page faults taken after mmap() returned
 * (the goal is none for both: a populated mapping).
 *
 * Output, one line per size:
 *   kpath=alloc_map_touch_<N>M kheap=<us> anon=<us> ratio=<kheap/anon>
 *         faults_kheap=<n> faults_anon=<n>
 * With --kheap-only (buffers larger than the RAM beside the pool, as in
 * make bench's pool-scale guest) the anonymous side is left out and the
 * line gives the chunk's physical address instead:
 *   kpath=alloc_map_touch_<N>M kheap=<us> phys=<address> faults_kheap=<n>
 * Usage: kpath [--runs N] [--sizes MIB,MIB,...] [--device PATH] [--kheap-only]
 * Needs /dev/kheap with a pool larger than the largest size.  Never a test.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <linux/kheap.h>

#define MIB	((size_t)1 << 20)

struct sample {
	double us;
	long faults;
	unsigned long long phys;	/* kheap: the chunk's, if shown */
};

static long pg;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void touch(volatile char *p, size_t n)
{
	for (size_t off = 0; off < n; off += (size_t)pg)
		p[off] = 1;
}

static int run_kheap(int fd, size_t n, struct sample *s)
{
	struct kheap_alloc a = { .size = n };
	struct kheap_free f = { 0 };
	double t0 = now_us();
	long f0;
	char *p;

	if (ioctl(fd, KHEAP_IOC_ALLOC, &a)) {
		perror("kpath: KHEAP_IOC_ALLOC");
		return -1;
	}
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)a.token);
	if (p == MAP_FAILED) {
		perror("kpath: mmap of a chunk");
		return -1;
	}
	f0 = minflt();
	touch(p, n);
	s->us = now_us() - t0;
	s->faults = minflt() - f0;
	s->phys = a.phys;
	munmap(p, n);
	f.token = a.token;
	if (ioctl(fd, KHEAP_IOC_FREE, &f)) {
		perror("kpath: KHEAP_IOC_FREE");
		return -1;
	}
	return 0;
}

static int run_anon(size_t n, struct sample *s)
{
	double t0 = now_us();
	long f0;
	char *p;

	p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		perror("kpath: anonymous mmap");
		return -1;
	}
	f0 = minflt();
	touch(p, n);
	s->us = now_us() - t0;
	s->faults = minflt() - f0;
	munmap(p, n);
	return 0;
}

static void keep_best(struct sample *best, const struct sample *s)
{
	if (best->us == 0 || s->us < best->us)
		*best = *s;
}

int main(int argc, char **argv)
{
	const char *sizes = "4,64,512", *dev = "/dev/kheap";
	int runs = 5, fd, kheap_only = 0;

	pg = sysconf(_SC_PAGESIZE);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			sizes = argv[++i];
		} else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			dev = argv[++i];
		} else if (!strcmp(argv[i], "--kheap-only")) {
			kheap_only = 1;
		} else {
			fprintf(stderr,
				"usage: kpath [--runs N] [--sizes MIB,...] [--device PATH] [--kheap-only]\n");
			return 2;
		}
	}
	if (runs < 1)
		runs = 1;
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "kpath: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	for (const char *c = sizes; *c; ) {
		char *end;
		size_t mib = strtoul(c, &end, 10), n = mib * MIB;
		struct sample k = { 0 }, a = { 0 }, s;

		if (end == c || mib == 0) {
			fprintf(stderr, "kpath: bad --sizes at '%s'\n", c);
			return 2;
		}
		c = *end == ',' ? end + 1 : end;
		/* Alternate the two, so that drift hits both alike. */
		for (int r = 0; r < runs; r++) {
			if (run_kheap(fd, n, &s))
				return 1;
			keep_best(&k, &s);
			if (kheap_only)
				continue;
			if (run_anon(n, &s))
				return 1;
			keep_best(&a, &s);
		}
		if (kheap_only)
			printf("kpath=alloc_map_touch_%zuM kheap=%.0f phys=0x%llx faults_kheap=%ld\n",
			       mib, k.us, k.phys, k.faults);
		else
			printf("kpath=alloc_map_touch_%zuM kheap=%.0f anon=%.0f ratio=%.2f faults_kheap=%ld faults_anon=%ld\n",
			       mib, k.us, a.us, k.us / a.us, k.faults, a.faults);
		fflush(stdout);
	}
	close(fd);
	return 0;
}
