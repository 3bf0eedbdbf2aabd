// SPDX-License-Identifier: MIT
/*
 * window.c - the virtual window that mirrors the pool, shared by both
 * providers so the host tests exercise the very placement the device uses.
 */
#include <sys/mman.h>

#include "provider.h"

/*
 * The window's base is congruent to the pool's physical address modulo
 * 1 GiB, so any virtual alignment up to 1 GiB is the same physical one.
 */
#define WINDOW_ALIGN	((size_t)1 << 30)

uintptr_t window_reserve(size_t span, uint64_t phys, void **map,
			 size_t *map_len)
{
	size_t len = span + WINDOW_ALIGN;
	void *m = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t raw;

	if (m == MAP_FAILED)
		return 0;
	*map = m;
	*map_len = len;
	raw = (uintptr_t)m;
	return raw + ((phys - raw) & (WINDOW_ALIGN - 1));
}
