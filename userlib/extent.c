// SPDX-License-Identifier: MIT
/*
 * extent.c - first-fit page runs over a bitmap (see extent.h).
 */
#include <errno.h>
#include <sys/mman.h>

#include "extent.h"

static void set_range(struct extent_map *m, size_t i, size_t n, int on)
{
	for (; n && i % 64; i++, n--)
		m->bits[i / 64] = on ? m->bits[i / 64] | (1ull << (i % 64))
				     : m->bits[i / 64] & ~(1ull << (i % 64));
	for (; n >= 64; i += 64, n -= 64)
		m->bits[i / 64] = on ? ~0ull : 0;
	for (; n; i++, n--)
		m->bits[i / 64] = on ? m->bits[i / 64] | (1ull << (i % 64))
				     : m->bits[i / 64] & ~(1ull << (i % 64));
}

/*
 * First page in [i, end) whose bit, XORed with @flip, is set: @flip 0 finds
 * a used page, ~0 a free one.  Returns end when there is none.
 */
static size_t next_bit(const struct extent_map *m, size_t i, size_t end,
		       uint64_t flip)
{
	while (i < end) {
		uint64_t w = (m->bits[i / 64] ^ flip) >> (i % 64);

		if (w)
			i += (size_t)__builtin_ctzll(w);
		else
			i = (i | 63) + 1;
		if (w || i >= end)
			return i < end ? i : end;
	}
	return end;
}

/* First used page in [i, end), or end. */
static size_t next_used(const struct extent_map *m, size_t i, size_t end)
{
	return next_bit(m, i, end, 0);
}

/* First free page in [i, end), or end. */
static size_t next_free(const struct extent_map *m, size_t i, size_t end)
{
	return next_bit(m, i, end, ~0ull);
}

int extent_init(struct extent_map *m, size_t npages)
{
	m->bytes = ((npages + 63) / 64) * 8;
	m->bits = mmap(NULL, m->bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->bits == MAP_FAILED) {
		m->bits = NULL;
		return -ENOMEM;
	}
	m->npages = npages;
	m->free_pages = npages;
	return 0;
}

void extent_destroy(struct extent_map *m)
{
	if (m->bits)
		munmap(m->bits, m->bytes);
	m->bits = NULL;
	m->npages = m->free_pages = 0;
}

long extent_alloc(struct extent_map *m, size_t n, size_t align, size_t phase)
{
	size_t i, u;

	if (!n || n > m->free_pages)
		return -1;
	i = (align - (phase & (align - 1))) & (align - 1);
	while (i + n <= m->npages && i + n > i) {
		u = next_used(m, i, i + n);
		if (u == i + n) {
			set_range(m, i, n, 1);
			m->free_pages -= n;
			return (long)i;
		}
		/* Skip past the used run, to the next aligned start. */
		u = next_free(m, u, m->npages);
		i = ((phase + u + align - 1) & ~(align - 1)) - phase;
	}
	return -1;
}

void extent_mark(struct extent_map *m, size_t first, size_t n)
{
	set_range(m, first, n, 1);
	m->free_pages -= n;
}

void extent_free(struct extent_map *m, size_t first, size_t n)
{
	set_range(m, first, n, 0);
	m->free_pages += n;
}

int extent_range_free(const struct extent_map *m, size_t first, size_t n)
{
	if (first > m->npages || n > m->npages - first)
		return 0;
	return next_used(m, first, first + n) == first + n;
}

size_t extent_largest(const struct extent_map *m)
{
	size_t best = 0, i = 0;

	while (i < m->npages) {
		size_t u = next_used(m, i, m->npages);

		if (u - i > best)
			best = u - i;
		i = next_free(m, u, m->npages);
	}
	return best;
}
