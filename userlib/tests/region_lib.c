// SPDX-License-Identifier: MIT
/*
 * region_lib.c - makes build/libkheap-region.so: the whole libkheap, same
 * exports, over the region provider instead of /dev/kheap.  Bindings
 * (python/) run their host tests against it: the real allocator, made-up
 * physical addresses, no kernel.  KHEAP_REGION_SIZE sets the pool in
 * MiB (default 64).
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

__attribute__((constructor)) static void use_region(void)
{
	const char *s = getenv("KHEAP_REGION_SIZE");
	size_t mib = s && *s ? strtoul(s, NULL, 10) : 64;
	/* Not 1 GiB aligned, as in test_heap: the window's arithmetic must
	 * not lean on a round base. */
	int err = kheap__use_provider(kheap_region_provider(mib << 20,
							    0x1234560000ull));

	if (err) {
		fprintf(stderr, "libkheap-region: %zu MiB region: error %d\n",
			mib, err);
		abort();
	}
}
