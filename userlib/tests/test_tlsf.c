// SPDX-License-Identifier: MIT
/*
 * test_tlsf.c - the TLSF core over ordinary memory: invariants after every
 * operation, exact boundaries, every alignment, resize, region removal
 * and a randomized differential test against a shadow model.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "ktap.h"
#include "tlsf.h"

static int report_errs;

static void report(void *ctx, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	if (report_errs++ < 10) {
		printf("# tlsf: ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
}

struct region {
	char *mem;
	size_t size;
};

static struct region reg_new(size_t size)
{
	struct region r = { NULL, size };

	r.mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.mem == MAP_FAILED) {
		printf("# mmap failed\n");
		exit(1);
	}
	return r;
}

static void reg_del(struct region *r)
{
	munmap(r->mem, r->size);
}

/* Lists, bitmaps and every block of the given regions. */
static int valid(struct tlsf *t, struct region *r, int nr)
{
	report_errs = 0;
	tlsf_check_lists(t, NULL, report);
	for (int i = 0; i < nr; i++)
		tlsf_check_region(t, r[i].mem, r[i].size, NULL, NULL, report);
	return report_errs == 0;
}

static void test_basic(void)
{
	struct tlsf t;
	struct region r = reg_new(1 << 20);
	void *p[64];

	tlsf_init(&t);
	tlsf_add_region(&t, r.mem, r.size);
	CHECK(valid(&t, &r, 1));
	CHECK(tlsf_region_is_empty(r.mem, r.size));
	for (int i = 0; i < 64; i++) {
		size_t n = (size_t)i * 97 + 1;

		p[i] = tlsf_malloc(&t, n);
		CHECK(p[i] != NULL);
		CHECK((uintptr_t)p[i] % 16 == 0);
		CHECK(tlsf_usable_size(p[i]) >= n);
		memset(p[i], i, n);
		CHECK(valid(&t, &r, 1));
	}
	CHECK(!tlsf_region_is_empty(r.mem, r.size));
	for (int i = 0; i < 64; i += 2) {
		CHECK(tlsf_free(&t, p[i]) == 0);
		CHECK(valid(&t, &r, 1));
	}
	for (int i = 1; i < 64; i += 2) {
		int empty = tlsf_free(&t, p[i]);

		CHECK(empty == (i == 63));
		CHECK(valid(&t, &r, 1));
	}
	CHECK(tlsf_region_is_empty(r.mem, r.size));
	CHECK(t.free_blocks == 1);
	CHECK(tlsf_malloc(&t, 0) != NULL);
	reg_del(&r);
}

/* The whole region as one block: exactly size - 24 usable bytes. */
static void test_exact_boundary(void)
{
	static const size_t sizes[] = { 64, 4096, 65536, 1 << 20, 3 << 20 };

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct tlsf t;
		struct region r = reg_new(sizes[i]);
		size_t max = sizes[i] - TLSF_REGION_OVERHEAD - TLSF_OVERHEAD;
		void *p;

		tlsf_init(&t);
		tlsf_add_region(&t, r.mem, r.size);
		CHECK(tlsf_largest_free(&t) == max);
		CHECK(tlsf_malloc(&t, max + 1) == NULL);
		CHECK(valid(&t, &r, 1));
		p = tlsf_malloc(&t, max);
		CHECKF(p != NULL, "region %zu, max %zu", sizes[i], max);
		if (p) {
			CHECK(tlsf_usable_size(p) == max);
			CHECK(tlsf_malloc(&t, 1) == NULL);
			CHECK(tlsf_free(&t, p) == 1);
		}
		/* Split in two: both halves fit exactly, a byte more fails. */
		if (sizes[i] >= 4096) {
			size_t a = 1000, b;
			void *q;

			p = tlsf_malloc(&t, a);
			b = max - tlsf_block_size(a);
			CHECK(tlsf_malloc(&t, b + 1) == NULL);
			q = tlsf_malloc(&t, b);
			CHECK(q != NULL);
			CHECK(tlsf_malloc(&t, 1) == NULL);
			CHECK(valid(&t, &r, 1));
			tlsf_free(&t, p);
			CHECK(tlsf_free(&t, q) == 1);
		}
		CHECK(valid(&t, &r, 1));
		reg_del(&r);
	}
}

/* Good-fit rounding must not hide a block that fits exactly. */
static void test_skipped_list(void)
{
	struct tlsf t;
	struct region r = reg_new(1 << 20);
	void *a, *hole, *b, *rest, *p;
	size_t n = 5000;

	tlsf_init(&t);
	tlsf_add_region(&t, r.mem, r.size);
	a = tlsf_malloc(&t, 100);
	hole = tlsf_malloc(&t, n);
	b = tlsf_malloc(&t, 100);
	rest = tlsf_malloc(&t, tlsf_largest_free(&t));
	CHECK(a && hole && b && rest);
	tlsf_free(&t, hole);
	/* The only free block is exactly n usable: must be found. */
	p = tlsf_malloc(&t, tlsf_usable_size(hole));
	CHECK(p == hole);
	CHECK(valid(&t, &r, 1));
	tlsf_free(&t, p);
	p = tlsf_memalign(&t, 16, n);
	CHECK(p == hole);
	reg_del(&r);
}

static void test_alignments(void)
{
	struct tlsf t;
	struct region r = reg_new(16 << 20);
	static const size_t sizes[] = { 1, 24, 100, 4096, 70000 };

	tlsf_init(&t);
	tlsf_add_region(&t, r.mem, r.size);
	for (size_t al = 1; al <= (1 << 21); al <<= 1) {
		void *p[5];

		for (int i = 0; i < 5; i++) {
			p[i] = tlsf_memalign(&t, al, sizes[i]);
			CHECKF(p[i] != NULL, "align %zu size %zu", al, sizes[i]);
			if (!p[i])
				continue;
			CHECKF((uintptr_t)p[i] % (al < 16 ? 16 : al) == 0,
			       "%p align %zu", p[i], al);
			CHECK(tlsf_usable_size(p[i]) >= sizes[i]);
			memset(p[i], 0xa5, sizes[i]);
			CHECK(valid(&t, &r, 1));
		}
		for (int i = 0; i < 5; i++)
			if (p[i])
				tlsf_free(&t, p[i]);
		CHECK(valid(&t, &r, 1));
		CHECK(tlsf_region_is_empty(r.mem, r.size));
	}
	/* Frames: block address aligned, size exact. */
	for (int i = 0; i < 20; i++) {
		char *f = tlsf_alloc_frame(&t, 65536, 65536);

		CHECK(f && (uintptr_t)f % 65536 == 0);
		CHECK(tlsf_usable_size(f + 16) + 16 >= 65536);
		CHECK(valid(&t, &r, 1));
	}
	reg_del(&r);
}

static void test_resize(void)
{
	struct tlsf t;
	struct region r = reg_new(1 << 20);
	char *a, *b, *c;

	tlsf_init(&t);
	tlsf_add_region(&t, r.mem, r.size);
	a = tlsf_malloc(&t, 1000);
	b = tlsf_malloc(&t, 1000);
	c = tlsf_malloc(&t, 1000);
	memset(a, 1, 1000);
	/* b in the way: cannot grow. */
	CHECK(tlsf_resize(&t, a, 3000) == 0);
	tlsf_free(&t, b);
	/* b free: grows into it. */
	CHECK(tlsf_resize(&t, a, 1900) == 1);
	CHECK(tlsf_usable_size(a) >= 1900);
	CHECK(valid(&t, &r, 1));
	CHECK(tlsf_resize(&t, a, 2100) == 0);
	/* shrink in place, the tail merges with the next free block */
	CHECK(tlsf_resize(&t, a, 100) == 1);
	CHECK(tlsf_usable_size(a) < 200);
	CHECK(valid(&t, &r, 1));
	for (int i = 0; i < 100; i++)
		CHECK(a[i] == 1);
	/* c's block grows into the rest of the region */
	CHECK(tlsf_resize(&t, c, 500000) == 1);
	CHECK(valid(&t, &r, 1));
	tlsf_free(&t, a);
	CHECK(tlsf_free(&t, c) == 1);
	CHECK(valid(&t, &r, 1));
	reg_del(&r);
}

static void test_regions(void)
{
	struct tlsf t;
	struct region r[3] = { reg_new(1 << 16), reg_new(1 << 18),
			       reg_new(1 << 20) };
	void *p[3];

	tlsf_init(&t);
	for (int i = 0; i < 3; i++)
		tlsf_add_region(&t, r[i].mem, r[i].size);
	CHECK(valid(&t, r, 3));
	/* Too big for the two small ones. */
	p[0] = tlsf_malloc(&t, 600000);
	CHECK(p[0] && (char *)p[0] >= r[2].mem &&
	      (char *)p[0] < r[2].mem + r[2].size);
	p[1] = tlsf_malloc(&t, 200000);
	CHECK(p[1] && (char *)p[1] >= r[1].mem &&
	      (char *)p[1] < r[1].mem + r[1].size);
	p[2] = tlsf_malloc(&t, 63000);
	CHECK(p[2] && (char *)p[2] >= r[0].mem &&
	      (char *)p[2] < r[0].mem + r[0].size);
	CHECK(valid(&t, r, 3));
	CHECK(tlsf_free(&t, p[1]) == 1);
	CHECK(tlsf_region_is_empty(r[1].mem, r[1].size));
	tlsf_remove_region(&t, r[1].mem);
	CHECK(valid(&t, (struct region[]){ r[0], r[2] }, 2));
	CHECK(tlsf_malloc(&t, 200000) != NULL);
	for (int i = 0; i < 3; i++)
		reg_del(&r[i]);
}

/* ---- randomized differential test against a shadow model ---- */

#define SLOTS 1024

struct shadow {
	char *p;
	size_t n;
	unsigned char fill;
};

struct model {
	struct tlsf t;
	struct region r;
	struct shadow s[SLOTS];
	uint64_t *owned;	/* one bit per 16 bytes of the region */
	size_t live_bytes;
};

static void own(struct model *m, char *p, size_t n, int on, int *overlap)
{
	size_t a = (size_t)(p - m->r.mem) / 16;
	size_t b = ((size_t)(p - m->r.mem) + n + 15) / 16;

	for (size_t i = a; i < b; i++) {
		uint64_t bit = 1ull << (i % 64);

		if (on && (m->owned[i / 64] & bit))
			*overlap = 1;
		if (on)
			m->owned[i / 64] |= bit;
		else
			m->owned[i / 64] &= ~bit;
	}
}

static int contents_ok(const struct shadow *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s->p[i] != s->fill)
			return 0;
	return 1;
}

static void differential(unsigned long long seed, long ops, size_t region,
			 size_t maxsz, long check_every)
{
	struct model *m = calloc(1, sizeof(*m));
	struct rng rng = { seed };
	long fails = 0, allocs = 0, errors = 0;
	int overlap = 0;

	m->r = reg_new(region);
	m->owned = calloc(region / 16 / 64 + 1, 8);
	tlsf_init(&m->t);
	tlsf_add_region(&m->t, m->r.mem, m->r.size);
	for (long op = 0; op < ops && errors < 5; op++) {
		struct shadow *s = &m->s[rng_below(&rng, SLOTS)];
		unsigned act = (unsigned)rng_below(&rng, 10);

		if (!s->p) {
			size_t n = rng_logu(&rng, 1, maxsz);
			size_t al = act < 2 ? (size_t)1 << rng_below(&rng, 13) : 0;

			s->p = al ? tlsf_memalign(&m->t, al, n) :
				    tlsf_malloc(&m->t, n);
			allocs++;
			if (!s->p) {
				fails++;
				continue;
			}
			if (al && (uintptr_t)s->p % al)
				errors++;
			if (tlsf_usable_size(s->p) < n)
				errors++;
			s->n = n;
			s->fill = (unsigned char)rng_next(&rng);
			own(m, s->p, tlsf_usable_size(s->p), 1, &overlap);
			memset(s->p, s->fill, n);
			m->live_bytes += n;
		} else if (act < 3) {
			size_t n = rng_logu(&rng, 1, maxsz);
			size_t keep = n < s->n ? n : s->n;

			own(m, s->p, tlsf_usable_size(s->p), 0, &overlap);
			if (tlsf_resize(&m->t, s->p, n)) {
				if (!contents_ok(s, keep))
					errors++;
				if (tlsf_usable_size(s->p) < n)
					errors++;
				m->live_bytes += n;
				m->live_bytes -= s->n;
				s->n = n;
				memset(s->p, s->fill, n);
			}
			own(m, s->p, tlsf_usable_size(s->p), 1, &overlap);
		} else {
			if (!contents_ok(s, s->n))
				errors++;
			own(m, s->p, tlsf_usable_size(s->p), 0, &overlap);
			tlsf_free(&m->t, s->p);
			m->live_bytes -= s->n;
			s->p = NULL;
		}
		if (overlap) {
			errors++;
			overlap = 0;
		}
		if (op % check_every == 0 && !valid(&m->t, &m->r, 1)) {
			printf("# invariants broken at op %ld\n", op);
			errors++;
		}
	}
	CHECKF(errors == 0, "seed %llu: %ld errors", seed, errors);
	CHECK(valid(&m->t, &m->r, 1));
	for (int i = 0; i < SLOTS; i++)
		if (m->s[i].p)
			tlsf_free(&m->t, m->s[i].p);
	CHECK(tlsf_region_is_empty(m->r.mem, m->r.size));
	ktap_diag("seed %llu: %ld ops, %ld allocations, %ld ENOMEM", seed,
		  ops, allocs, fails);
	reg_del(&m->r);
	free(m->owned);
	free(m);
}

/* Every operation checked, small region so that ENOMEM happens often. */
static void test_invariants_every_op(void)
{
	differential(1, 60000, 256 << 10, 8192, 1);
}

/* 10^6 operations per seed, several seeds, contents verified. */
static void test_differential(void)
{
	for (unsigned long long seed = 11; seed < 15; seed++)
		differential(seed, 1000000, 8 << 20, 16384, 4096);
}

int main(void)
{
	ktap_plan(8);
	RUN(test_basic);
	RUN(test_exact_boundary);
	RUN(test_skipped_list);
	RUN(test_alignments);
	RUN(test_resize);
	RUN(test_regions);
	RUN(test_invariants_every_op);
	RUN(test_differential);
	return ktap_finish();
}
