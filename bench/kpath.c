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
 *
 * Then random access over one buffer of --random MiB (default 256; 0
 * leaves it out): 8-byte reads at random cache lines, each address
 * depending on the value read before (a pointer chase, so every read
 * waits for its translation), in ns per read, best of --runs:
 *   kpath=random_access_<N>M kheap=<ns> anon=<ns> ratio=<kheap/anon>
 *         anon_4k=<ns> anon_thp_kib=<n>
 * kheap: a chunk mapped by mmap(), 4 KiB page table entries (kheap maps
 * no PMDs: bench/README.md says why); anon: anonymous memory with
 * MADV_HUGEPAGE, 2 MiB entries where the kernel found huge pages
 * (anon_thp_kib says how much it did); anon_4k: the same with
 * MADV_NOHUGEPAGE.  So ratio is what 4 KiB mappings cost against 2 MiB
 * ones on this machine's TLB.  With --random-only (and no /dev/kheap)
 * only this line is printed, kheap=n/a when the device cannot be opened.
 *
 * Usage: kpath [--runs N] [--sizes MIB,MIB,...] [--random MIB]
 *              [--random-only] [--device PATH] [--kheap-only]
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

/* A chunk of n bytes allocated and mapped; NULL (said why) if not. */
static char *chunk_map(int fd, size_t n, struct kheap_alloc *a)
{
	char *p;

	memset(a, 0, sizeof(*a));
	a->size = n;
	if (ioctl(fd, KHEAP_IOC_ALLOC, a)) {
		perror("kpath: KHEAP_IOC_ALLOC");
		return NULL;
	}
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)a->token);
	if (p == MAP_FAILED) {
		perror("kpath: mmap of a chunk");
		return NULL;
	}
	return p;
}

/* Unmap and free what chunk_map() gave; 0, or -1 (said why). */
static int chunk_unmap(int fd, char *p, size_t n, const struct kheap_alloc *a)
{
	struct kheap_free f = { .token = a->token };

	munmap(p, n);
	if (ioctl(fd, KHEAP_IOC_FREE, &f)) {
		perror("kpath: KHEAP_IOC_FREE");
		return -1;
	}
	return 0;
}

static int run_kheap(int fd, size_t n, struct sample *s)
{
	struct kheap_alloc a;
	double t0 = now_us();
	long f0;
	char *p = chunk_map(fd, n, &a);

	if (!p)
		return -1;
	f0 = minflt();
	touch(p, n);
	s->us = now_us() - t0;
	s->faults = minflt() - f0;
	s->phys = a.phys;
	return chunk_unmap(fd, p, n, &a);
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

/*
 * Fill buf (n bytes, cache-line slots) with one random cycle through every
 * slot: slot i holds the index of the next one.  Sattolo's shuffle of the
 * identity gives a single cycle, so the chase visits every line once.
 */
static void chase_init(uint64_t *buf, size_t n)
{
	size_t lines = n / 64, i;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	/* Small pages: anon_thp_kib counts the buffer's huge pages only. */
	uint32_t *perm = mmap(NULL, lines * sizeof(*perm),
			      PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (perm == MAP_FAILED) {
		perror("kpath: mmap");
		exit(1);
	}
	madvise(perm, lines * sizeof(*perm), MADV_NOHUGEPAGE);
	for (i = 0; i < lines; i++)
		perm[i] = (uint32_t)i;
	for (i = lines - 1; i > 0; i--) {
		size_t j;
		uint32_t t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % i;		/* j < i: one cycle */
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < lines; i++)
		buf[(size_t)perm[i] * 8] = perm[(i + 1) % lines];
	munmap(perm, lines * sizeof(*perm));
}

#define CHASE_READS	(2u << 20)

/* ns per read of a chase through buf, best of runs. */
static double chase(const uint64_t *buf, int runs)
{
	double best = 0;
	volatile uint64_t sink;

	for (int r = 0; r < runs; r++) {
		uint64_t i = 0;
		double t0 = now_us(), t;

		for (unsigned int k = 0; k < CHASE_READS; k++)
			i = buf[i * 8];
		t = (now_us() - t0) * 1e3 / CHASE_READS;
		sink = i;
		(void)sink;
		if (best == 0 || t < best)
			best = t;
	}
	return best;
}

/* Anonymous memory's kibibytes in huge pages, from smaps_rollup. */
static long anon_thp_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Chase through n bytes of anonymous memory; *thp: its huge KiB. */
static double chase_anon(size_t n, int advice, int runs, long *thp)
{
	size_t hp = 2 * MIB;
	char *raw = mmap(NULL, n + hp, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *buf;
	long before = anon_thp_kib();
	double ns;

	if (raw == MAP_FAILED) {
		perror("kpath: anonymous mmap");
		exit(1);
	}
	/* 2 MiB aligned, so that every part of it can be a huge page. */
	buf = (uint64_t *)(((uintptr_t)raw + hp - 1) & ~(uintptr_t)(hp - 1));
	madvise(buf, n, advice);
	chase_init(buf, n);
	*thp = anon_thp_kib() - before;
	ns = chase(buf, runs);
	munmap(raw, n + hp);
	return ns;
}

static int random_access(int fd, size_t mib, int runs)
{
	size_t n = mib * MIB;
	double k = 0, a, a4;
	long thp, thp4;

	if (fd >= 0) {
		struct kheap_alloc al;
		char *buf = chunk_map(fd, n, &al);

		if (!buf)
			return -1;
		chase_init((uint64_t *)buf, n);
		k = chase((uint64_t *)buf, runs);
		if (chunk_unmap(fd, buf, n, &al))
			return -1;
	}
	a = chase_anon(n, MADV_HUGEPAGE, runs, &thp);
	a4 = chase_anon(n, MADV_NOHUGEPAGE, runs, &thp4);
	if (fd >= 0)
		printf("kpath=random_access_%zuM kheap=%.1f anon=%.1f ratio=%.2f anon_4k=%.1f anon_thp_kib=%ld\n",
		       mib, k, a, k / a, a4, thp);
	else
		printf("kpath=random_access_%zuM kheap=n/a anon=%.1f ratio=n/a anon_4k=%.1f anon_thp_kib=%ld\n",
		       mib, a, a4, thp);
	fflush(stdout);
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
	int runs = 5, fd, kheap_only = 0, random_only = 0;
	size_t random_mib = 256;

	pg = sysconf(_SC_PAGESIZE);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			sizes = argv[++i];
		} else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			dev = argv[++i];
		} else if (!strcmp(argv[i], "--random") && i + 1 < argc) {
			random_mib = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--random-only")) {
			random_only = 1;
		} else if (!strcmp(argv[i], "--kheap-only")) {
			kheap_only = 1;
		} else {
			fprintf(stderr,
				"usage: kpath [--runs N] [--sizes MIB,...] [--random MIB] [--random-only] [--device PATH] [--kheap-only]\n");
			return 2;
		}
	}
	if (runs < 1)
		runs = 1;
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0 && !random_only) {
		fprintf(stderr, "kpath: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	if (random_only)
		sizes = "";
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
	/* The buffer lives beside the anonymous ones: not with --kheap-only. */
	if (random_mib && !kheap_only && random_access(fd, random_mib, runs))
		return 1;
	if (fd >= 0)
		close(fd);
	return 0;
}
