// SPDX-License-Identifier: MIT
/*
 * test_heap.c - the whole allocator (slabs, TLSF arenas, dedicated
 * chunks, thread cache, public API) over the region provider: an ordinary
 * mapping posing as a pool at a made-up physical address.  The kernel's
 * side is tested in guests; this tests the allocator's own logic.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tcache.h"
#include "ktap.h"

/*
 * Made-up pool addresses that are not 1 GiB aligned, so that a window not
 * congruent to them modulo 1 GiB shows as a physical misalignment.
 * FAKE_PHYS is 2 MiB aligned (a whole-pool chunk needs 64 KiB), ODD_PHYS
 * only page aligned.
 */
#define FAKE_PHYS	0x142a00000ull	/* 5 GiB + 42 MiB */
#define ODD_PHYS	0x147654000ull
#define MIB		((size_t)1 << 20)

static void use_region_at(size_t pool, uint64_t phys)
{
	int err = kheap__use_provider(kheap_region_provider(pool, phys));

	if (err) {
		printf("# region provider failed: %d\n", err);
		exit(1);
	}
}

static void use_region(size_t pool)
{
	use_region_at(pool, FAKE_PHYS);
}

static int heap_ok(void)
{
	return kheap__check() == 0;
}

static void test_api_semantics(void)
{
	void *p, *q;
	int err;

	use_region(64 * MIB);
	p = kheap_malloc(0);
	q = kheap_malloc(0);
	CHECK(p && q && p != q);
	kheap_free(p);
	kheap_free(q);
	kheap_free(NULL);
	p = kheap_realloc(NULL, 100);
	CHECK(p && kheap_malloc_usable_size(p) >= 100);
	errno = 0;
	CHECK(kheap_realloc(p, 0) == NULL);
	CHECK(kheap_malloc_usable_size(NULL) == 0);

	errno = 0;
	CHECK(kheap_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL);
	CHECK(errno == ENOMEM);
	errno = 0;
	CHECK(kheap_calloc(SIZE_MAX, 2) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(kheap_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(kheap_malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(kheap_malloc(65 * MIB) == NULL && errno == ENOMEM);

	CHECK(kheap_posix_memalign(&p, 0, 10) == EINVAL);
	CHECK(kheap_posix_memalign(&p, 4, 10) == EINVAL);
	CHECK(kheap_posix_memalign(&p, 24, 10) == EINVAL);
	CHECK(kheap_posix_memalign(&p, 48, 10) == EINVAL);
	CHECK(kheap_posix_memalign(&p, (size_t)1 << 31, 10) == EINVAL);
	err = kheap_posix_memalign(&p, 8, 10);
	CHECK(err == 0 && p);
	kheap_free(p);
	err = kheap_posix_memalign(&p, 4096, SIZE_MAX / 4);
	CHECK(err == ENOMEM);
	errno = 0;
	CHECK(kheap_aligned_alloc(3, 10) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(kheap_aligned_alloc(0, 10) == NULL && errno == EINVAL);
	p = kheap_aligned_alloc(1, 10);
	CHECK(p != NULL);
	kheap_free(p);
	CHECK(heap_ok());
}

/* phys(p + i) == phys(p) + i == pool phys + pool offset, both ways. */
static void check_phys_range(char *p, size_t n)
{
	uint64_t ph = kheap_phys(p);
	size_t step = n > 4096 ? 4093 : 1;

	CHECK(ph != 0);
	CHECK(kheap_phys_to_virt(ph) == p);
	for (size_t i = 0; i < n; i += step) {
		CHECK(kheap_phys(p + i) == ph + i);
		CHECK(kheap_phys_to_virt(ph + i) == p + i);
	}
	CHECK(kheap_phys(p + n - 1) == ph + n - 1);
}

static void test_phys(void)
{
	static const size_t sizes[] = { 1, 16, 100, 1024, 1025, 5000, 65536,
					1 << 20, 20 << 20 };
	void *p[9];
	int local;
	uint64_t first, last;

	use_region_at(64 * MIB, ODD_PHYS);
	for (int i = 0; i < 9; i++) {
		p[i] = kheap_malloc(sizes[i]);
		CHECK(p[i] != NULL);
		if (!p[i])
			continue;
		check_phys_range(p[i], kheap_malloc_usable_size(p[i]));
		CHECK(kheap_phys(p[i]) >= ODD_PHYS &&
		      kheap_phys(p[i]) < ODD_PHYS + 64 * MIB);
	}
	/* The window mirrors the pool: offsets agree. */
	first = kheap_phys(p[0]);
	last = kheap_phys(p[8]);
	CHECK((uintptr_t)p[8] - (uintptr_t)p[0] == kheap_phys(p[8]) - first);
	errno = 0;
	CHECK(kheap_phys(&local) == 0 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys(NULL) == 0 && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys_to_virt(0) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys_to_virt(ODD_PHYS + 64 * MIB) == NULL &&
	      errno == EINVAL);
	for (int i = 0; i < 9; i++)
		kheap_free(p[i]);
	/* A dedicated chunk's memory is gone once freed (20 MiB is above
	 * the chunk cache's bound of pool / 8, so it went straight back). */
	errno = 0;
	CHECK(kheap_phys_to_virt(last) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys_to_virt(last + 20 * MIB - 1) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(kheap_phys(p[8]) == 0 && errno == EINVAL);
	CHECK(heap_ok());
}

/* Every alignment, virtually and physically, 16 B to 1 GiB. */
static void test_alignments(void)
{
	static const size_t sizes[] = { 1, 100, 1000, 5000, 100000, 3 << 20 };

	use_region_at(2048 * MIB, ODD_PHYS);
	for (size_t al = 8; al <= ((size_t)1 << 30); al <<= 1) {
		for (unsigned i = 0; i < 6; i++) {
			void *p = NULL, *q;
			int err = kheap_posix_memalign(&p, al, sizes[i]);

			CHECKF(err == 0 && p, "align %zu size %zu: %d", al,
			       sizes[i], err);
			if (!p)
				continue;
			CHECKF((uintptr_t)p % al == 0, "%p %% %zu", p, al);
			CHECK(kheap_phys(p) % al == 0);
			CHECK(kheap_malloc_usable_size(p) >= sizes[i]);
			memset(p, 0x5a, sizes[i]);
			q = kheap_aligned_alloc(al, sizes[i]);
			CHECK(q && (uintptr_t)q % al == 0 && q != p);
			CHECK(heap_ok());
			kheap_free(p);
			kheap_free(q);
		}
	}
	CHECK(heap_ok());
	use_region(64 * MIB);
}

/* Exhaustion at exact pool boundaries, and full recovery. */
static void test_enomem_boundaries(void)
{
	size_t pool = 8 * MIB;
	struct kheap_stats st;
	void *p, **v;
	size_t nv = 0, cap = 1 << 20;

	use_region(pool);
	/* The whole pool in one block, not a byte more. */
	p = kheap_malloc(pool);
	CHECK(p != NULL);
	errno = 0;
	CHECK(kheap_malloc(1) == NULL && errno == ENOMEM);
	kheap_free(p);
	errno = 0;
	CHECK(kheap_malloc(pool + 1) == NULL && errno == ENOMEM);
	p = kheap_malloc(pool - GRANULE + 1);
	CHECK(p != NULL);
	CHECK(kheap_malloc_usable_size(p) == pool);
	kheap_free(p);
	p = kheap_calloc(1, pool);
	CHECK(p != NULL);
	kheap_free(p);

	/* Fill with small and medium blocks to the last byte. */
	v = malloc(cap * sizeof(*v));
	for (size_t n = 0;; n++) {
		size_t sz = (n % 7) ? 48 : 3000;

		p = kheap_malloc(sz);
		if (!p)
			break;
		v[nv++] = p;
	}
	CHECK(errno == ENOMEM);
	CHECK(kheap_stats(&st) == 0);
	ktap_diag("filled %zu blocks, %llu bytes in use of %zu, %llu failed",
		  nv, (unsigned long long)st.bytes_in_use, pool,
		  (unsigned long long)st.failed_requests);
	CHECK(st.bytes_in_use >= pool * 9 / 10);
	CHECK(st.bytes_held == pool);
	CHECK(st.failed_requests >= 1);
	CHECK(heap_ok());
	/* Top up with 16-byte blocks until even those fail: then the next
	 * tiny request fails too, and every block returns. */
	while (nv < cap && (p = kheap_malloc(16)) != NULL)
		v[nv++] = p;
	errno = 0;
	CHECK(kheap_malloc(16) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(kheap_malloc(1) == NULL && errno == ENOMEM);
	CHECK(heap_ok());
	for (size_t i = 0; i < nv; i++)
		kheap_free(v[i]);
	CHECK(heap_ok());
	/* Full recovery: the whole pool in one block again. */
	p = kheap_malloc(pool);
	CHECK(p != NULL);
	kheap_free(p);
	CHECK(kheap_stats(&st) == 0);
	CHECK(heap_ok());
	free(v);
	use_region(64 * MIB);
}

static void fill(void *p, size_t n, unsigned char c)
{
	memset(p, c, n);
}

static int filled(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != c)
			return 0;
	return 1;
}

static void test_realloc(void)
{
	char *a, *b, *c, *q;
	size_t u;

	use_region(64 * MIB);
	/* small: same slot within the class, moves beyond */
	a = kheap_malloc(100);
	fill(a, 100, 1);
	CHECK(kheap_realloc(a, 110) == a);
	q = kheap_realloc(a, 2000);
	CHECK(q && q != a && filled(q, 100, 1));
	a = q;
	fill(a, 2000, 2);

	/* TLSF: grows into a free neighbour in place */
	kheap__flush_thread_cache();
	b = kheap_malloc(5000);
	c = kheap_malloc(5000);
	fill(b, 5000, 3);
	fill(c, 5000, 4);
	kheap_free(c);
	kheap__flush_thread_cache();	/* c back in TLSF, merged */
	q = kheap_realloc(b, 9000);
	CHECK(q == b);
	CHECK(filled(q, 5000, 3));
	CHECK(kheap_malloc_usable_size(q) >= 9000);
	CHECK(heap_ok());
	/* shrinks in place */
	q = kheap_realloc(b, 6000);
	CHECK(q == b);
	u = kheap_malloc_usable_size(q);
	CHECK(u >= 6000 && u < 6100);
	CHECK(filled(q, 5000, 3));
	/* blocked by a neighbour: moves, contents kept */
	c = kheap_malloc(5000);
	fill(b, 6000, 5);
	q = kheap_realloc(b, 200000);
	CHECK(q && filled(q, 6000, 5));
	b = q;
	CHECK(heap_ok());
	/* to a dedicated chunk and back */
	fill(b, 200000, 6);
	q = kheap_realloc(b, 40 * MIB);
	CHECK(q && filled(q, 200000, 6));
	b = q;
	fill(b, 40 * MIB, 7);
	q = kheap_realloc(b, 39 * MIB);
	CHECK(q == b);
	q = kheap_realloc(b, 3000);
	CHECK(q && q != b && filled(q, 3000, 7));
	b = q;
	/* a failed realloc leaves the block alone */
	errno = 0;
	q = kheap_realloc(b, 200 * MIB);
	CHECK(q == NULL && errno == ENOMEM);
	CHECK(filled(b, 3000, 7));
	/* doubling from 16 B to 16 MiB keeps the contents */
	q = kheap_malloc(16);
	fill(q, 16, 9);
	for (size_t n = 32, prev = 16; n <= 16 * MIB; prev = n, n *= 2) {
		char *r = kheap_realloc(q, n);

		CHECK(r != NULL);
		if (!r)
			break;
		CHECK(filled(r, prev, 9));
		fill(r, n, 9);
		q = r;
	}
	kheap_free(q);
	kheap_free(a);
	kheap_free(b);
	kheap_free(c);
	CHECK(heap_ok());
}

static void test_calloc_zero(void)
{
	struct rng r = { 77 };
	void *v[256];

	use_region(64 * MIB);
	/* Dirty a lot of memory, give it back, calloc over it. */
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 256; i++) {
			size_t n = rng_logu(&r, 1, 300000);

			v[i] = kheap_malloc(n);
			CHECK(v[i] != NULL);
			memset(v[i], 0xff, kheap_malloc_usable_size(v[i]));
		}
		for (int i = 0; i < 256; i++)
			kheap_free(v[i]);
		if (round & 1)
			kheap__flush_thread_cache();
		for (int i = 0; i < 256; i++) {
			size_t n = rng_logu(&r, 1, 300000);

			v[i] = kheap_calloc(1, n);
			CHECK(v[i] && filled(v[i], n, 0));
			memset(v[i], 0xee, n);
		}
		for (int i = 0; i < 256; i++)
			kheap_free(v[i]);
	}
	/* fresh and large */
	v[0] = kheap_calloc(4, 5 * MIB);
	CHECK(v[0] && filled(v[0], 20 * MIB, 0));
	kheap_free(v[0]);
	CHECK(heap_ok());

	/* The last free block of a fresh arena, above its zero mark, taken
	 * whole: its tail is the sentinel's prev_size word, never zero. */
	use_region(16 * MIB);		/* 2 MiB arenas */
	v[0] = kheap_malloc(900 * 1024);
	v[1] = kheap_malloc(900 * 1024);
	{
		size_t n = tlsf_largest_free(&kh.tlsf);
		unsigned char *p = kheap_calloc(1, n);

		CHECKF(p && kheap_malloc_usable_size(p) == n, "calloc(%zu)", n);
		CHECK(p && filled(p, n, 0));
		kheap_free(p);
	}
	kheap_free(v[0]);
	kheap_free(v[1]);
	CHECK(heap_ok());
	use_region(64 * MIB);
}

/*
 * Free one block of every medium bin's size, up to each bin's capacity
 * (16 blocks of 1-8 KiB down to 2 of 64-128 KiB: about 6 MiB in all,
 * more than any bound), and return what the thread cache then holds.
 */
static uint64_t cache_every_bin(void)
{
	static void *v[TC_MED_BINS * TC_MED_CAP];
	struct kheap_stats st;
	size_t n = 0, lo, sz;
	int k, c;

	for (lo = TC_MED_MIN; lo < TC_MED_MAX; lo *= 2)
		for (k = 0; k < 8; k++) {
			sz = lo + lo / 8 * k + 16;
			c = TC_MED_CAP_FOR(lo);
			while (c--) {
				v[n] = kheap_malloc(sz);
				CHECK(v[n] != NULL);
				n++;
			}
		}
	while (n)
		kheap_free(v[--n]);
	CHECK(kheap_stats(&st) == 0);
	return st.bytes_cached;
}

/* The medium thread cache keeps at most min(4 MiB, pool / 64) bytes. */
static void test_tcache_bounds(void)
{
	struct kheap_stats st;
	uint64_t held;
	void *v[16];

	/* pool / 64 = 8 MiB: the 4 MiB bound holds */
	use_region(512 * MIB);
	held = cache_every_bin();
	ktap_diag("512 MiB pool: %llu bytes in the thread cache",
		  (unsigned long long)held);
	CHECK(held <= 4 * MIB + 16 * 1024);
	CHECK(held >= 4 * MIB - (128 << 10));
	CHECK(heap_ok());

	/* pool / 64 = 1 MiB */
	use_region(64 * MIB);
	held = cache_every_bin();
	CHECK(held <= MIB + 16 * 1024);
	CHECK(held >= MIB - (128 << 10));
	CHECK(heap_ok());
	use_region(64 * MIB);
	/* 64-128 KiB blocks over all eight bins of that power of two */
	for (int i = 0; i < 16; i++)
		v[i] = kheap_malloc((size_t)(65 + 4 * i) << 10);
	for (int i = 0; i < 16; i++) {
		CHECK(v[i] != NULL);
		kheap_free(v[i]);
	}
	CHECK(kheap_stats(&st) == 0);
	ktap_diag("%llu bytes in the thread cache",
		  (unsigned long long)st.bytes_cached);
	CHECK(st.bytes_cached <= MIB);
	CHECK(st.bytes_cached >= MIB - (128 << 10));
	CHECK(heap_ok());
}

static void test_stats(void)
{
	struct kheap_stats st;
	void *p[100];
	uint64_t want = 0;

	use_region(64 * MIB);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_in_use == 0 && st.bytes_held == 0);
	CHECK(st.pool_size == 64 * MIB && st.pool_free == 64 * MIB);
	CHECK(st.largest_free == 64 * MIB);
	for (int i = 0; i < 100; i++) {
		p[i] = kheap_malloc((size_t)i * 300 + 1);
		want += kheap_malloc_usable_size(p[i]);
	}
	p[99] = kheap_realloc(p[99], 10 * MIB);
	CHECK(kheap_stats(&st) == 0);
	want = 0;
	for (int i = 0; i < 100; i++)
		want += kheap_malloc_usable_size(p[i]);
	CHECKF(st.bytes_in_use == want, "%llu != %llu",
	       (unsigned long long)st.bytes_in_use, (unsigned long long)want);
	CHECK(st.chunks_held >= 2);
	CHECK(st.bytes_held >= 10 * MIB + st.arena_size);
	CHECK(st.peak_held >= st.bytes_held);
	CHECK(st.peak_in_use >= st.bytes_in_use);
	CHECK(st.pool_free == 64 * MIB - st.bytes_held);
	for (int i = 0; i < 100; i++)
		kheap_free(p[i]);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_in_use == 0);
	CHECK(heap_ok());
}

/* ---- randomized differential test through the public API ---- */

#define SLOTS 2048

struct slot {
	unsigned char *p;
	size_t n;
	unsigned char fill;
};

static uint64_t *owned;		/* one bit per 16 pool bytes */
static size_t pool_bytes;

static int own(void *p, size_t n, int on)
{
	size_t off = (size_t)(kheap_phys(p) - FAKE_PHYS);
	size_t a = off / 16, b = (off + n + 15) / 16;
	int overlap = 0;

	if (off + n > pool_bytes)
		return 1;
	for (size_t i = a; i < b;) {
		if (i % 64 == 0 && b - i >= 64) {
			if (on && owned[i / 64])
				overlap = 1;
			owned[i / 64] = on ? ~0ull : 0;
			i += 64;
			continue;
		}
		if (on && (owned[i / 64] >> (i % 64) & 1))
			overlap = 1;
		if (on)
			owned[i / 64] |= 1ull << (i % 64);
		else
			owned[i / 64] &= ~(1ull << (i % 64));
		i++;
	}
	return overlap;
}

static int contents_ok(const struct slot *s)
{
	return filled(s->p, s->n, s->fill);
}

static void differential(unsigned long long seed, long ops, size_t pool,
			 long check_every)
{
	static struct slot s[SLOTS];
	struct rng r = { seed };
	long errors = 0, fails = 0, moves = 0, inplace = 0;

	use_region(pool);
	pool_bytes = pool;
	owned = calloc(pool / 16 / 64 + 1, 8);
	memset(s, 0, sizeof(s));
	for (long op = 0; op < ops && errors < 5; op++) {
		struct slot *x = &s[rng_below(&r, SLOTS)];
		unsigned act = (unsigned)rng_below(&r, 100);
		size_t n;
		unsigned char *q;

		if (!x->p) {
			size_t al = 0;

			n = act < 1 ? rng_logu(&r, 100000, 8 * MIB) :
			    rng_logu(&r, 1, 70000);
			if (act >= 90)
				al = (size_t)8 << rng_below(&r, 14);
			if (act >= 80 && act < 85) {
				q = kheap_calloc(1, n);
				if (q && !filled(q, n, 0)) {
					printf("# op %ld: calloc(%zu) not zero\n",
					       op, n);
					errors++;
				}
			} else if (al) {
				void *t = NULL;

				if (kheap_posix_memalign(&t, al, n))
					t = NULL;
				q = t;
				if (q && (uintptr_t)q % al) {
					printf("# op %ld: misaligned\n", op);
					errors++;
				}
			} else {
				q = kheap_malloc(n);
			}
			if (!q) {
				fails++;
				continue;
			}
			if (kheap_malloc_usable_size(q) < n) {
				printf("# op %ld: usable size short\n", op);
				errors++;
			}
			if (own(q, kheap_malloc_usable_size(q), 1)) {
				printf("# op %ld: %p overlaps\n", op, (void *)q);
				errors++;
			}
			x->p = q;
			x->n = n;
			x->fill = (unsigned char)rng_next(&r);
			memset(q, x->fill, n);
		} else if (act < 25) {
			size_t keep;

			n = act < 2 ? rng_logu(&r, 100000, 8 * MIB) :
			    rng_logu(&r, 1, 70000);
			keep = n < x->n ? n : x->n;
			own(x->p, kheap_malloc_usable_size(x->p), 0);
			q = kheap_realloc(x->p, n);
			if (!q) {
				fails++;
				if (!contents_ok(x)) {
					printf("# op %ld: failed realloc lost "
					       "contents\n", op);
					errors++;
				}
				own(x->p, kheap_malloc_usable_size(x->p), 1);
				continue;
			}
			if (q == x->p)
				inplace++;
			else
				moves++;
			x->p = q;
			if (!filled(q, keep, x->fill)) {
				printf("# op %ld: realloc lost contents\n", op);
				errors++;
			}
			if (own(q, kheap_malloc_usable_size(q), 1)) {
				printf("# op %ld: realloc %p overlaps\n", op,
				       (void *)q);
				errors++;
			}
			x->n = n;
			memset(q, x->fill, n);
		} else {
			if (!contents_ok(x)) {
				printf("# op %ld: contents of %p changed\n", op,
				       (void *)x->p);
				errors++;
			}
			own(x->p, kheap_malloc_usable_size(x->p), 0);
			kheap_free(x->p);
			x->p = NULL;
		}
		if (op % check_every == 0 && !heap_ok()) {
			printf("# op %ld: heap check failed\n", op);
			errors++;
		}
	}
	for (int i = 0; i < SLOTS; i++) {
		if (s[i].p) {
			if (!contents_ok(&s[i]))
				errors++;
			kheap_free(s[i].p);
		}
	}
	CHECK(heap_ok());
	CHECKF(errors == 0, "seed %llu: %ld errors", seed, errors);
	ktap_diag("seed %llu: %ld ops, %ld ENOMEM, realloc %ld in place, %ld moved",
		  seed, ops, fails, inplace, moves);
	free(owned);
}

static void test_invariants_every_op(void)
{
	differential(3, 30000, 16 * MIB, 1);
	use_region(64 * MIB);
}

static void test_differential(void)
{
	for (unsigned long long seed = 21; seed < 24; seed++)
		differential(seed, 1000000, 64 * MIB, 20000);
	/* a small pool: ENOMEM all the time */
	differential(99, 1000000, 12 * MIB, 20000);
	use_region(64 * MIB);
}

/* Utilisation at first failure: random actions, log-uniform 16 B-8 KiB. */
static void test_utilisation(void)
{
	size_t pool = 32 * MIB, cap = 1 << 20, nv = 0, live = 0;
	struct { void *p; size_t n; } *v = malloc(cap * sizeof(*v));
	struct rng r = { 5 };

	use_region(pool);
	for (;;) {
		if (nv && rng_below(&r, 4) == 0) {
			size_t i = rng_below(&r, nv);

			kheap_free(v[i].p);
			live -= v[i].n;
			v[i] = v[--nv];
		} else {
			size_t n = rng_logu(&r, 16, 8192);
			void *p = kheap_malloc(n);

			if (!p)
				break;
			v[nv].p = p;
			v[nv++].n = n;
			live += n;
		}
	}
	ktap_diag("utilisation at first failure: %.2f%% (%zu live blocks)",
		  100.0 * (double)live / (double)pool, nv);
	CHECK(live >= pool * 90 / 100);
	CHECK(heap_ok());
	for (size_t i = 0; i < nv; i++)
		kheap_free(v[i].p);
	CHECK(kheap_malloc(pool) != NULL);
	free(v);
	use_region(64 * MIB);
}

/* Freed dedicated chunks are cached and reused (best fit, bounded waste),
 * dirty ones are cleared by calloc, and they go back before ENOMEM. */
static void test_chunk_cache(void)
{
	const size_t pool = 64 * MIB;	/* arena 8 MiB: dedicated above 4 */
	struct kheap_stats st;
	unsigned char *p, *q, *r, *v[12];
	uint64_t reuses;

	use_region(pool);
	p = kheap_malloc(6 * MIB);
	CHECK(p != NULL);
	if (!p)
		return;
	fill(p, 6 * MIB, 0xab);
	kheap_free(p);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunks_cached == 1 && st.bytes_chunks_cached == 6 * MIB);
	CHECK(st.bytes_held >= 6 * MIB && st.bytes_in_use == 0);
	CHECK(st.chunk_reuses == 0);
	CHECK(st.largest_free == pool - st.bytes_held || st.largest_free >= 6 * MIB);
	/* a cached chunk is not this process's memory any more */
	errno = 0;
	CHECK(kheap_phys(p) == 0 && errno == EINVAL);
	CHECK(heap_ok());

	/* reused for a smaller request that wastes at most a quarter */
	q = kheap_malloc(5 * MIB + 1);
	CHECK(q == p);
	CHECK(kheap_malloc_usable_size(q) == 5 * MIB + GRANULE);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunks_cached == 0 && st.chunk_reuses == 1);
	CHECK(st.bytes_in_use == 5 * MIB + GRANULE);
	CHECK(filled(q, 5 * MIB, 0xab));	/* malloc does not clear */
	/* grows in place up to the chunk's size, then moves */
	CHECK(kheap_realloc(q, 6 * MIB) == q);
	CHECK(kheap_malloc_usable_size(q) == 6 * MIB);
	CHECK(kheap_stats(&st) == 0 && st.bytes_in_use == 6 * MIB);
	CHECK(heap_ok());
	kheap_free(q);

	/* calloc over the dirty chunk: zero */
	q = kheap_calloc(3, 2 * MIB);
	CHECK(q == p && filled(q, 6 * MIB, 0));
	CHECK(kheap_stats(&st) == 0 && st.chunk_reuses == 2);
	fill(q, 6 * MIB, 0xcd);
	kheap_free(q);
	/* calloc after a smaller use: still zero everywhere */
	q = kheap_malloc(5 * MIB);
	CHECK(q == p);
	fill(q, 5 * MIB, 0xef);
	kheap_free(q);
	q = kheap_calloc(1, 6 * MIB);
	CHECK(q == p && filled(q, 6 * MIB, 0));
	kheap_free(q);

	/* too much waste (4.25 of 6 MiB): a fresh chunk, cache untouched */
	CHECK(kheap_stats(&st) == 0);
	reuses = st.chunk_reuses;
	q = kheap_malloc(4 * MIB + 256 * 1024);
	CHECK(q && q != p);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunk_reuses == reuses && st.chunks_cached == 1);
	kheap_free(q);
	/* best fit: over-aligned small requests get small dedicated chunks;
	 * of two cached ones the smaller that fits is taken */
	q = kheap_aligned_alloc(4 * MIB, 2 * MIB);
	r = kheap_aligned_alloc(4 * MIB, 1 * MIB);
	CHECK(q && r && kheap_malloc_usable_size(r) == 1 * MIB);
	kheap_free(q);
	kheap_free(r);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunks_cached >= 2 && st.bytes_chunks_cached <= pool / 8);
	reuses = st.chunk_reuses;
	p = kheap_aligned_alloc(4 * MIB, 1 * MIB - GRANULE);
	CHECK(p == r);
	p = kheap_aligned_alloc(4 * MIB, 2 * MIB - 3 * GRANULE);
	CHECK(p == q);
	CHECK(kheap_stats(&st) == 0 && st.chunk_reuses == reuses + 2);
	kheap_free(q);
	kheap_free(r);
	CHECK(heap_ok());

	/* bounds: many chunks freed, the cache stays within its bounds */
	for (int i = 0; i < 12; i++)
		v[i] = kheap_malloc((size_t)(4 * MIB + 64 * 1024 * (i + 1)));
	for (int i = 0; i < 12; i++) {
		CHECK(v[i] != NULL);
		kheap_free(v[i]);
	}
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunks_cached >= 1 && st.chunks_cached <= 8);
	CHECK(st.bytes_chunks_cached <= pool / 8);
	CHECK(heap_ok());

	/* cached chunks go back before ENOMEM: the whole pool, one block */
	CHECK(st.chunks_cached >= 1);
	p = kheap_malloc(pool);
	CHECK(p != NULL);
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.chunks_cached == 0 && st.bytes_held == pool);
	kheap_free(p);		/* larger than the cache bound: released */
	CHECK(kheap_stats(&st) == 0);
	CHECK(st.bytes_held == 0 && st.pool_free == pool);
	/* and a full pool of small blocks after caching a chunk */
	p = kheap_malloc(5 * MIB);
	kheap_free(p);
	p = kheap_calloc(1, pool);
	CHECK(p != NULL && filled(p, pool, 0));
	kheap_free(p);
	CHECK(heap_ok());

	/* realloc doubling past the threshold reuses the cached chunk */
	for (int round = 0; round < 3; round++) {
		q = kheap_malloc(16);
		fill(q, 16, 0x5a);
		for (size_t n = 32, prev = 16; n <= 8 * MIB; prev = n, n *= 2) {
			unsigned char *t = kheap_realloc(q, n);

			CHECK(t && filled(t, prev, 0x5a));
			if (!t)
				break;
			fill(t, n, 0x5a);
			q = t;
		}
		kheap_free(q);
	}
	CHECK(kheap_stats(&st) == 0);
	ktap_diag("after doubling: %llu reuses, %llu cached",
		  (unsigned long long)st.chunk_reuses,
		  (unsigned long long)st.chunks_cached);
	CHECK(st.chunk_reuses >= 2);
	CHECK(heap_ok());
}

/* Fork: the child keeps its inherited blocks and allocates its own. */
/*
 * fork: the child keeps its heap, privately (the region is private memory,
 * as the device's chunks are since ABI 3): it frees, reallocates and
 * writes inherited blocks, gives up the inherited chunk cache (unmapped at
 * once: it would pin the parent's chunk), and the parent's bytes do not
 * change.  A shared block's writes cross.
 */
static void test_fork(void)
{
	unsigned char *small = kheap_malloc(200), *mid = kheap_malloc(20000);
	unsigned char *big = kheap_malloc(30 * MIB);
	unsigned char *gone = kheap_malloc(5 * MIB);	/* to the cache */
	unsigned char *shared = kheap_malloc_shared(3 * 4096);
	uint64_t ps = kheap_phys(small), pb = kheap_phys(big);
	struct kheap_stats st;
	pid_t pid;
	int status = -1;

	CHECK(small && mid && big && gone && shared);
	kheap_free(gone);
	CHECK(kheap_stats(&st) == 0 && st.chunks_cached == 1);
	fill(small, 200, 0x11);
	fill(mid, 20000, 0x22);
	fill(big, 4096, 0x33);
	fill(shared, 3 * 4096, 0x55);
	pid = fork();
	if (pid == 0) {
		int bad = 0;
		void *v[300];

		bad |= !filled(small, 200, 0x11) || !filled(mid, 20000, 0x22);
		bad |= !filled(big, 4096, 0x33);
		bad |= kheap_phys(small) != ps || kheap_phys(big) != pb;
		bad |= kheap_malloc_usable_size(mid) < 20000;
		fill(small, 200, 0x66);
		fill(big, 4096, 0x77);
		kheap_free(small);	/* the child's copy: really freed */
		for (int i = 0; i < 300; i++) {
			v[i] = kheap_malloc((size_t)(i % 3 ? 64 : 30000));
			bad |= !v[i];
			if (v[i])
				memset(v[i], 0x44, 64);
		}
		mid = kheap_realloc(mid, 40000);
		bad |= !mid || !filled(mid, 20000, 0x22);
		big = kheap_realloc(big, 12 * MIB);
		bad |= !big || !filled(big, 4096, 0x77);
		bad |= kheap__check() != 0;
		/* the inherited cached chunk was given up: a fresh one */
		{
			unsigned char *h = kheap_malloc(5 * MIB);
			struct kheap_stats cs;

			bad |= !h || h[0] || h[5 * MIB - 1];
			bad |= kheap_stats(&cs) != 0 ||
			       cs.chunk_reuses != st.chunk_reuses;
			kheap_free(h);
		}
		fill(shared, 4096, 0x99);	/* crosses to the parent */
		shared = kheap_realloc(shared, 5 * 4096);	/* stays shared */
		bad |= !shared || !filled(shared + 4096, 2 * 4096, 0x55);
		for (int i = 0; i < 300; i++)
			kheap_free(v[i]);
		kheap_free(mid);
		kheap_free(big);
		kheap_free(shared);
		bad |= kheap__check() != 0;
		_exit(bad);
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x",
	       status);
	CHECK(filled(small, 200, 0x11) && filled(mid, 20000, 0x22));
	CHECK(filled(big, 4096, 0x33));
	CHECK(filled(shared, 4096, 0x99) && filled(shared + 4096, 2 * 4096, 0x55));
	kheap_free(small);
	kheap_free(mid);
	kheap_free(big);
	kheap_free(shared);
	CHECK(heap_ok());
}

/* No device: ENODEV and one message. */
static void test_no_device(void)
{
	char path[] = "/tmp/kheap-stderr-XXXXXX", buf[4096];
	int fd = mkstemp(path), saved = dup(2), lines = 0;
	ssize_t len;

	setenv("KHEAP_DEVICE", "/nonexistent/kheap", 1);
	dup2(fd, 2);
	CHECK(kheap__use_provider(&kheap_device_provider) == -ENODEV);
	for (int i = 0; i < 3; i++) {
		errno = 0;
		CHECK(kheap_malloc(10) == NULL && errno == ENODEV);
		errno = 0;
		CHECK(kheap_calloc(10, 10) == NULL && errno == ENODEV);
	}
	dup2(saved, 2);
	close(saved);
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[len > 0 ? len : 0] = 0;
	for (char *c = buf; *c; c++)
		lines += *c == '\n';
	CHECKF(lines == 1, "%d lines: %s", lines, buf);
	CHECK(strstr(buf, "/nonexistent/kheap") != NULL);
	close(fd);
	unlink(path);
	unsetenv("KHEAP_DEVICE");
	kheap_free(NULL);
	use_region(64 * MIB);
}

int main(void)
{
	ktap_plan(14);
	RUN(test_api_semantics);
	RUN(test_phys);
	RUN(test_alignments);
	RUN(test_enomem_boundaries);
	RUN(test_realloc);
	RUN(test_calloc_zero);
	RUN(test_tcache_bounds);
	RUN(test_stats);
	RUN(test_invariants_every_op);
	RUN(test_differential);
	RUN(test_utilisation);
	RUN(test_chunk_cache);
	RUN(test_fork);
	RUN(test_no_device);
	return ktap_finish();
}
