// SPDX-License-Identifier: GPL-2.0-only
/*
 * pc-hello: the smallest libkheap program, built by install-check.sh with
 * `pkg-config --cflags --libs kheap` against an installed copy, and run in
 * a guest: allocate, write, check kheap_phys() against /proc/self/pagemap.
 * Prints KTAP.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kheap.h>
#include <linux/kheap.h>	/* the installed uapi header */

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t entry = 0, phys, mmu = 0;
	struct kheap_stats st;
	char *p = kheap_malloc(3 * (size_t)page);
	int fd, pass = 0, fail = 0;

	printf("TAP version 13\n1..3\n");
	if (p) {
		strcpy(p, "Hello");
		pass++;
		printf("ok 1 kheap_malloc from the installed libkheap (ABI %d)\n",
		       KHEAP_ABI_VERSION);
	} else {
		fail++;
		printf("not ok 1 kheap_malloc: %m\n");
	}
	phys = p ? kheap_phys(p) : 0;
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd >= 0 && p &&
	    pread(fd, &entry, 8, (off_t)((uintptr_t)p / (uintptr_t)page) * 8) == 8)
		mmu = (entry & ((1ULL << 55) - 1)) * (uint64_t)page + (uintptr_t)p % (uintptr_t)page;
	if (phys && phys == mmu) {
		pass++;
		printf("ok 2 kheap_phys %#" PRIx64 " equals pagemap\n", phys);
	} else {
		fail++;
		printf("not ok 2 kheap_phys %#" PRIx64 " vs pagemap %#" PRIx64 "\n", phys, mmu);
	}
	kheap_free(p);
	if (kheap_stats(&st) == 0 && st.chunks_held >= 1 && st.pool_size > 0) {
		pass++;
		printf("ok 3 kheap_stats: %" PRIu64 " chunk(s) held of a %" PRIu64 "-byte pool\n",
		       st.chunks_held, st.pool_size);
	} else {
		fail++;
		printf("not ok 3 kheap_stats\n");
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", pass, fail);
	return fail != 0;
}
