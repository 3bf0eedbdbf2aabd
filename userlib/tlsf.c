// SPDX-License-Identifier: MIT
/*
 * tlsf.c - two-level segregated fit (after Masmano et al., "TLSF: a new
 * dynamic memory allocator for real-time systems", 2004), written for
 * libkheap.  See tlsf.h for the block layout.
 *
 * Sizes below 512 bytes map linearly onto 32 lists of 16-byte steps; above,
 * each power of two is split into 32 lists.  malloc rounds the request up
 * to the next list boundary (good fit) so that any block in the first
 * non-empty list at or above it fits; when that fails it scans the one list
 * that the rounding skipped before giving up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "debug.h"
#include "tlsf.h"

#define F_FREE		((size_t)1)
#define F_PREV_FREE	((size_t)2)
#define F_FIRST		((size_t)4)
#define F_MASK		((size_t)TLSF_FLAGS)

struct tlsf_block {
	size_t prev_size;
	size_t size;
	struct tlsf_block *next_free;
	struct tlsf_block *prev_free;
};

_Static_assert(sizeof(struct tlsf_block) == TLSF_MIN_BLOCK,
	       "a free block's header and links fill the smallest block");
_Static_assert(offsetof(struct tlsf_block, next_free) == TLSF_HDR,
	       "the user pointer is where a free block keeps its links");
_Static_assert(TLSF_OVERHEAD == sizeof(size_t),
	       "a used block costs its size word");
_Static_assert(offsetof(struct tlsf_block, size) + sizeof(size_t) ==
	       TLSF_HDR,
	       "tlsf_usable_size (tlsf.h) reads the word below the user pointer");
_Static_assert((TLSF_ALIGN & (TLSF_ALIGN - 1)) == 0 && F_MASK < TLSF_ALIGN,
	       "flags live in the size word's alignment bits");
_Static_assert(TLSF_MIN_BLOCK >= 2 * TLSF_ALIGN,
	       "two blocks' user pointers are at least TLSF_ALIGN apart");

/*
 * The size word of a used block is read without the lock by its owner
 * (usable size) while a neighbour's free or split, under the lock,
 * rewrites its PREV_FREE flag: relaxed atomic accesses (plain moves on
 * x86) keep that well defined.  The size part never changes under a
 * reader.
 */
static inline size_t ld(const struct tlsf_block *b)
{
	return __atomic_load_n(&b->size, __ATOMIC_RELAXED);
}

static inline void st(struct tlsf_block *b, size_t v)
{
	__atomic_store_n(&b->size, v, __ATOMIC_RELAXED);
}

static inline void set_flags(struct tlsf_block *b, size_t f)
{
	st(b, ld(b) | f);
}

static inline void clear_flags(struct tlsf_block *b, size_t f)
{
	st(b, ld(b) & ~f);
}

static inline size_t bsize(const struct tlsf_block *b)
{
	return ld(b) & ~F_MASK;
}

static inline int bfree(const struct tlsf_block *b)
{
	return (ld(b) & F_FREE) != 0;
}

static inline struct tlsf_block *bnext(const struct tlsf_block *b)
{
	return (struct tlsf_block *)((char *)b + bsize(b));
}

static inline struct tlsf_block *bprev(const struct tlsf_block *b)
{
	return (struct tlsf_block *)((char *)b - b->prev_size);
}

static inline struct tlsf_block *from_ptr(const void *p)
{
	return (struct tlsf_block *)((char *)p - TLSF_HDR);
}

static inline void *to_ptr(struct tlsf_block *b)
{
	return (char *)b + TLSF_HDR;
}

static inline unsigned fls_sz(size_t x)
{
	return 63u - (unsigned)__builtin_clzll(x);
}

static inline void mapping(size_t size, unsigned *fl, unsigned *sl)
{
	if (size < ((size_t)1 << TLSF_FL_SHIFT)) {
		*fl = 0;
		*sl = (unsigned)(size >> 4);
	} else {
		unsigned f = fls_sz(size);

		*sl = (unsigned)(size >> (f - TLSF_SLI)) ^ TLSF_SL_COUNT;
		*fl = f - (TLSF_FL_SHIFT - 1);
	}
}

static inline void insert_free(struct tlsf *t, struct tlsf_block *b)
{
	unsigned fl, sl;
	struct tlsf_block *h;

	kh_assert(bfree(b) && bsize(b) >= TLSF_MIN_BLOCK &&
		  (uintptr_t)b % TLSF_ALIGN == 0);
	mapping(bsize(b), &fl, &sl);
	h = t->heads[fl][sl];
	b->next_free = h;
	b->prev_free = NULL;
	if (h)
		h->prev_free = b;
	t->heads[fl][sl] = b;
	t->fl_bitmap |= 1u << fl;
	t->sl_bitmap[fl] |= 1u << sl;
	t->free_bytes += bsize(b);
	t->free_blocks++;
}

static inline void remove_free(struct tlsf *t, struct tlsf_block *b)
{
	struct tlsf_block *n = b->next_free, *p = b->prev_free;

	kh_assert(bfree(b));
	kh_assert(!n || n->prev_free == b);
	kh_assert(!p || p->next_free == b);
	if (n)
		n->prev_free = p;
	if (p) {
		p->next_free = n;
	} else {
		unsigned fl, sl;

		mapping(bsize(b), &fl, &sl);
		t->heads[fl][sl] = n;
		if (!n) {
			t->sl_bitmap[fl] &= ~(1u << sl);
			if (!t->sl_bitmap[fl])
				t->fl_bitmap &= ~(1u << fl);
		}
	}
	t->free_bytes -= bsize(b);
	t->free_blocks--;
}

/* First block in a list at or above (fl, sl). */
static inline struct tlsf_block *find_from(const struct tlsf *t, unsigned fl,
					   unsigned sl)
{
	uint32_t slm = sl < TLSF_SL_COUNT ? t->sl_bitmap[fl] & (~0u << sl) : 0;

	if (!slm) {
		uint64_t flm = (uint64_t)t->fl_bitmap & (~(uint64_t)0 << (fl + 1));

		if (!flm)
			return NULL;
		fl = (unsigned)__builtin_ctzll(flm);
		slm = t->sl_bitmap[fl];
	}
	return t->heads[fl][__builtin_ctz(slm)];
}

/* A free block of at least size bytes, or NULL. */
static struct tlsf_block *find_fit(const struct tlsf *t, size_t size)
{
	unsigned fl, sl;
	struct tlsf_block *b;

	if (size >= ((size_t)1 << TLSF_FL_SHIFT)) {
		size_t r = size + ((size_t)1 << (fls_sz(size) - TLSF_SLI)) - 1;

		if (r < TLSF_MAX_BLOCK) {
			mapping(r, &fl, &sl);
			b = find_from(t, fl, sl);
			if (b)
				return b;
		}
	} else {
		mapping(size, &fl, &sl);
		return find_from(t, fl, sl);
	}
	/* Good fit skipped the list holding size itself: scan it. */
	mapping(size, &fl, &sl);
	for (b = t->heads[fl][sl]; b; b = b->next_free)
		if (bsize(b) >= size)
			return b;
	return NULL;
}

/* Mark b (not in any list) used with exactly size bytes if the remainder
 * can stand as a free block; the remainder is merged with a free next
 * block and listed. */
static void split_tail(struct tlsf *t, struct tlsf_block *b, size_t size)
{
	size_t bs = bsize(b);
	struct tlsf_block *r, *n;

	kh_assert(!bfree(b) && bs >= size && size % TLSF_ALIGN == 0);
	if (bs - size < TLSF_MIN_BLOCK)
		return;
	r = (struct tlsf_block *)((char *)b + size);
	n = bnext(b);
	st(b, size | (ld(b) & F_MASK));
	st(r, (bs - size) | F_FREE);
	if (bfree(n)) {
		remove_free(t, n);
		st(r, ld(r) + bsize(n));
		n = bnext(n);
	}
	n->prev_size = bsize(r);
	set_flags(n, F_PREV_FREE);
	insert_free(t, r);
}

static inline void mark_used(struct tlsf_block *b)
{
	kh_assert(bfree(b));
	clear_flags(b, F_FREE);
	clear_flags(bnext(b), F_PREV_FREE);
}

void tlsf_init(struct tlsf *t)
{
	memset(t, 0, sizeof(*t));
}

void tlsf_add_region(struct tlsf *t, void *mem, size_t size)
{
	struct tlsf_block *b = mem, *s;

	b->prev_size = 0;
	st(b, (size - TLSF_REGION_OVERHEAD) | F_FREE | F_FIRST);
	s = bnext(b);
	s->prev_size = bsize(b);
	st(s, F_PREV_FREE);
	insert_free(t, b);
}

int tlsf_region_is_empty(const void *mem, size_t size)
{
	const struct tlsf_block *b = mem;

	return bfree(b) && bsize(b) == size - TLSF_REGION_OVERHEAD;
}

void tlsf_remove_region(struct tlsf *t, void *mem)
{
	remove_free(t, mem);
}

void *tlsf_malloc(struct tlsf *t, size_t n)
{
	size_t size = tlsf_block_size(n);
	struct tlsf_block *b;

	if (!size)
		return NULL;
	b = find_fit(t, size);
	if (!b)
		return NULL;
	remove_free(t, b);
	mark_used(b);
	split_tail(t, b, size);
	return to_ptr(b);
}

void *tlsf_malloc_roomy(struct tlsf *t, size_t n)
{
	size_t size = tlsf_block_size(n);
	struct tlsf_block *b;
	unsigned fl;

	if (!size || !t->fl_bitmap)
		return NULL;
	fl = fls_sz(t->fl_bitmap);
	b = t->heads[fl][fls_sz(t->sl_bitmap[fl])];
	if (bsize(b) < size)
		return tlsf_malloc(t, n);
	remove_free(t, b);
	mark_used(b);
	split_tail(t, b, size);
	return to_ptr(b);
}

/*
 * Carve from a free block one whose address plus hdr is aligned to align
 * and whose size is at least size.  A front gap, when there is one, must be
 * a valid free block (>= 32 bytes), so asking for size + align + 32
 * guarantees a fit.
 */
static struct tlsf_block *alloc_aligned(struct tlsf *t, size_t size,
					size_t align, size_t hdr)
{
	size_t want;
	struct tlsf_block *b, *nb;
	uintptr_t a;

	if (size > TLSF_MAX_BLOCK || align > TLSF_MAX_BLOCK)
		return NULL;
	want = size + align + TLSF_MIN_BLOCK;
	b = find_fit(t, want);
	if (!b) {
		/* Near exhaustion: any block of the size's own list or larger
		 * lists that happens to hold an aligned fit. */
		unsigned fl, sl;
		size_t ms = size;

		mapping(ms, &fl, &sl);
		for (; fl < TLSF_FL_COUNT && !b; fl++, sl = 0) {
			for (; sl < TLSF_SL_COUNT && !b; sl++) {
				struct tlsf_block *c = t->heads[fl][sl];

				for (; c; c = c->next_free) {
					a = (((uintptr_t)c + hdr + align - 1) &
					     ~(uintptr_t)(align - 1)) - hdr;
					if (a != (uintptr_t)c &&
					    a - (uintptr_t)c < TLSF_MIN_BLOCK)
						a += align;
					if (a + size <= (uintptr_t)bnext(c)) {
						b = c;
						break;
					}
				}
			}
		}
		if (!b)
			return NULL;
	}
	remove_free(t, b);
	a = (((uintptr_t)b + hdr + align - 1) & ~(uintptr_t)(align - 1)) - hdr;
	if (a != (uintptr_t)b && a - (uintptr_t)b < TLSF_MIN_BLOCK)
		a += align;
	nb = (struct tlsf_block *)a;
	if (nb != b) {
		size_t gap = a - (uintptr_t)b;

		/* b's previous block is used (free blocks never touch). */
		st(nb, (bsize(b) - gap) | F_FREE | F_PREV_FREE);
		st(b, gap | (ld(b) & (F_FIRST | F_PREV_FREE)) | F_FREE);
		nb->prev_size = gap;
		insert_free(t, b);
	}
	clear_flags(nb, F_FREE);
	clear_flags(bnext(nb), F_PREV_FREE);
	split_tail(t, nb, size);
	return nb;
}

void *tlsf_memalign(struct tlsf *t, size_t align, size_t n)
{
	size_t size = tlsf_block_size(n);
	struct tlsf_block *b;

	if (align <= TLSF_ALIGN)
		return tlsf_malloc(t, n);
	if (!size)
		return NULL;
	b = alloc_aligned(t, size, align, TLSF_HDR);
	return b ? to_ptr(b) : NULL;
}

void *tlsf_alloc_frame(struct tlsf *t, size_t frame, size_t align)
{
	return alloc_aligned(t, frame, align < TLSF_ALIGN ? TLSF_ALIGN : align,
			     0);
}

int tlsf_free(struct tlsf *t, void *p)
{
	struct tlsf_block *b = from_ptr(p), *n = bnext(b);

	/* The library checks frees before they get here; a free block now
	 * would be a double free slipping through. */
	kh_assert((uintptr_t)p % TLSF_ALIGN == 0 && !bfree(b));
	kh_assert(!(ld(n) & F_PREV_FREE));
	set_flags(b, F_FREE);
	if (ld(b) & F_PREV_FREE) {
		struct tlsf_block *pb = bprev(b);

		remove_free(t, pb);
		st(pb, ld(pb) + bsize(b));
		b = pb;
	}
	if (bfree(n)) {
		remove_free(t, n);
		st(b, ld(b) + bsize(n));
		n = bnext(n);
	}
	n->prev_size = bsize(b);
	set_flags(n, F_PREV_FREE);
	insert_free(t, b);
	return (ld(b) & F_FIRST) && bsize(n) == 0;
}

int tlsf_resize(struct tlsf *t, void *p, size_t n)
{
	struct tlsf_block *b = from_ptr(p), *nx;
	size_t size = tlsf_block_size(n), cur = bsize(b);

	kh_assert(!bfree(b));
	if (!size)
		return 0;
	if (size <= cur) {
		split_tail(t, b, size);
		return 1;
	}
	nx = bnext(b);
	if (!bfree(nx) || cur + bsize(nx) < size)
		return 0;
	remove_free(t, nx);
	st(b, ld(b) + bsize(nx));
	clear_flags(bnext(b), F_PREV_FREE);
	split_tail(t, b, size);
	return 1;
}

int tlsf_is_free(const void *p)
{
	return bfree(from_ptr(p));
}

size_t tlsf_largest_free(const struct tlsf *t)
{
	size_t best = 0;
	unsigned fl, sl;
	const struct tlsf_block *b;

	if (!t->fl_bitmap)
		return 0;
	fl = fls_sz(t->fl_bitmap);
	sl = fls_sz(t->sl_bitmap[fl]);
	for (b = t->heads[fl][sl]; b; b = b->next_free)
		if (bsize(b) > best)
			best = bsize(b);
	return best - TLSF_OVERHEAD;
}

int tlsf_check_region(const struct tlsf *t, const void *mem, size_t size,
		      void (*visit)(void *ctx, const struct tlsf_walk_info *),
		      void *ctx, tlsf_report_fn report)
{
	const struct tlsf_block *b = mem;
	const char *end = (const char *)mem + size - TLSF_REGION_OVERHEAD;
	int errs = 0, prev_free = 0, first = 1;
	size_t prev_size = 0;

	(void)t;
	for (;;) {
		size_t s = bsize(b);

		if ((uintptr_t)b % TLSF_ALIGN) {
			report(ctx, "block %p misaligned", (void *)b);
			return errs + 1;
		}
		if (((ld(b) & F_FIRST) != 0) != first) {
			report(ctx, "block %p FIRST flag wrong", (void *)b);
			errs++;
		}
		if (((ld(b) & F_PREV_FREE) != 0) != prev_free) {
			report(ctx, "block %p PREV_FREE=%d, previous free=%d",
			       (void *)b, !!(ld(b) & F_PREV_FREE), prev_free);
			errs++;
		}
		if (prev_free && b->prev_size != prev_size) {
			report(ctx, "block %p prev_size %zu != %zu", (void *)b,
			       b->prev_size, prev_size);
			errs++;
		}
		if ((const char *)b == end) {
			if (s != 0 || bfree(b)) {
				report(ctx, "sentinel %p corrupt", (void *)b);
				errs++;
			}
			return errs;
		}
		if (s < TLSF_MIN_BLOCK || (const char *)b + s > end ||
		    s % TLSF_ALIGN) {
			report(ctx, "block %p bad size %zu", (void *)b, s);
			return errs + 1;
		}
		if (bfree(b) && prev_free) {
			report(ctx, "adjacent free blocks at %p", (void *)b);
			errs++;
		}
		if (visit) {
			struct tlsf_walk_info wi = {
				.ptr = to_ptr((struct tlsf_block *)b),
				.size = s, .free = bfree(b),
			};
			visit(ctx, &wi);
		}
		prev_free = bfree(b);
		prev_size = s;
		first = 0;
		b = bnext(b);
	}
}

int tlsf_check_lists(const struct tlsf *t, void *ctx, tlsf_report_fn report)
{
	int errs = 0;
	size_t bytes = 0, blocks = 0;
	unsigned fl, sl;

	for (fl = 0; fl < TLSF_FL_COUNT; fl++) {
		int fl_set = (t->fl_bitmap >> fl) & 1;

		if (fl_set != (t->sl_bitmap[fl] != 0)) {
			report(ctx, "fl bitmap bit %u wrong", fl);
			errs++;
		}
		for (sl = 0; sl < TLSF_SL_COUNT; sl++) {
			const struct tlsf_block *b = t->heads[fl][sl], *prev;
			int sl_set = (t->sl_bitmap[fl] >> sl) & 1;

			if (sl_set != (b != NULL)) {
				report(ctx, "sl bitmap bit %u/%u wrong", fl, sl);
				errs++;
			}
			for (prev = NULL; b; prev = b, b = b->next_free) {
				unsigned f, s;

				if (b->prev_free != prev) {
					report(ctx, "list %u/%u broken at %p",
					       fl, sl, (void *)b);
					return errs + 1;
				}
				if (!bfree(b)) {
					report(ctx, "used block %p listed",
					       (void *)b);
					errs++;
				}
				mapping(bsize(b), &f, &s);
				if (f != fl || s != sl) {
					report(ctx, "block %p size %zu in list %u/%u",
					       (void *)b, bsize(b), fl, sl);
					errs++;
				}
				if (bnext(b)->prev_size != bsize(b) ||
				    !(ld(bnext(b)) & F_PREV_FREE)) {
					report(ctx, "block %p next lacks PREV_FREE",
					       (void *)b);
					errs++;
				}
				bytes += bsize(b);
				if (++blocks > ((size_t)1 << 40)) {
					report(ctx, "list %u/%u loops", fl, sl);
					return errs + 1;
				}
			}
		}
	}
	if (bytes != t->free_bytes || blocks != t->free_blocks) {
		report(ctx, "free counters %zu/%zu, lists hold %zu/%zu",
		       t->free_bytes, t->free_blocks, bytes, blocks);
		errs++;
	}
	return errs;
}
