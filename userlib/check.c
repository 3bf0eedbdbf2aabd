// SPDX-License-Identifier: MIT
/*
 * check.c - integrity checker: walks every block of every chunk and
 * cross-checks the TLSF lists, the slabs, the granule maps, the counters,
 * every thread's cache and the in-use bytes: each block is exactly one of
 * in use (LIVE_USED), in one thread cache, or free in its slab or TLSF.
 * Used by the tests after every operation; returns the number of problems
 * found and prints each to stderr.  Other threads' caches are read as
 * they are: call it while no other thread allocates or frees.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "tcache.h"

struct ctx {
	int errs;
	size_t free_bytes;
	size_t arena_used;	/* used TLSF bytes of the arena walked */
	void **cached;		/* every thread cache's blocks, sorted */
	size_t ncached, cap;
};

static void report(void *vctx, const char *fmt, ...)
{
	struct ctx *c = vctx;
	va_list ap;

	if (c->errs++ < 20) {
		fprintf(stderr, "kheap check: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a;
	uintptr_t y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

static int is_cached(const struct ctx *c, const void *p)
{
	return c->ncached &&
	       bsearch(&p, c->cached, c->ncached, sizeof(void *), cmp_ptr);
}

static int in_use(const void *p)
{
	return *live_of((uintptr_t)p) == LIVE_USED;
}

/* In-use bytes set in [p, p + n) (n a multiple of 8, p 8-aligned). */
static size_t count_used(const uint8_t *p, size_t n)
{
	size_t cnt = 0;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		/* LIVE_USED is the only value with bit 0 set */
		cnt += (size_t)__builtin_popcountll(w & 0x0101010101010101ull);
	}
	return cnt;
}

static void visit(void *vctx, const struct tlsf_walk_info *wi)
{
	struct ctx *c = vctx;
	int used, cached;

	if (wi->free)
		c->free_bytes += wi->size;
	else
		c->arena_used += tlsf_usable_size(wi->ptr);
	/* A slab's frame is a used block, but its objects are the blocks. */
	if (khm.kind[gran_of((uintptr_t)wi->ptr)] != K_ARENA)
		return;
	used = in_use(wi->ptr);
	cached = is_cached(c, wi->ptr);
	if (wi->free && (used || cached))
		report(c, "free block %p is %s", wi->ptr,
		       used ? "marked in use" : "in a thread cache");
	else if (!wi->free && used == cached && (used || !kh.fork_lost))
		report(c, "block %p is %s", wi->ptr, used ?
		       "in a thread cache and marked in use" :
		       "neither in use nor in a thread cache");
}

static void check_slab(struct ctx *c, size_t g, unsigned cls)
{
	const struct slab *s = &kh.slabs[g];
	char *frame = (char *)(khm.lo + (g << GRANULE_SHIFT));
	size_t sz = kh_class_size[cls], chain = 0;
	const void *p;

	if (s->cls != cls)
		report(c, "slab %p class %u, map says %u", frame, s->cls, cls);
	if (tlsf_is_free(frame + TLSF_HDR) ||
	    tlsf_usable_size(frame + TLSF_HDR) + TLSF_HDR < SLAB_SIZE)
		report(c, "slab %p: its TLSF block is not a used frame", frame);
	if (s->nobj != (SLAB_SIZE - SLAB_OBJ_OFF) / sz ||
	    s->end != frame + SLAB_OBJ_OFF + s->nobj * sz ||
	    s->bump < frame + SLAB_OBJ_OFF || s->bump > s->end ||
	    (size_t)(s->bump - frame - SLAB_OBJ_OFF) % sz) {
		report(c, "slab %p geometry wrong", frame);
		return;
	}
	for (p = s->free; p; p = *(void *const *)p) {
		const char *q = p;

		if (q < frame + SLAB_OBJ_OFF || q >= s->bump ||
		    (size_t)(q - frame - SLAB_OBJ_OFF) % sz) {
			report(c, "slab %p: bad free object %p", frame, p);
			return;
		}
		if (++chain > s->nobj) {
			report(c, "slab %p: free chain loops", frame);
			return;
		}
		if (in_use(p) || is_cached(c, p))
			report(c, "slab %p: free object %p is %s", frame, p,
			       in_use(p) ? "marked in use" : "in a thread cache");
	}
	/* Below the bump: in use, cached, or on the chain, one of the three;
	 * at or above it nothing is in use. */
	{
		size_t used = 0, cached = 0, below = 0;

		for (const char *q = frame + SLAB_OBJ_OFF; q < s->bump;
		     q += sz, below++) {
			int u = in_use(q), k = is_cached(c, q);

			if (u && k)
				report(c, "slab %p: object %p in a thread cache "
				       "and marked in use", frame, (void *)q);
			used += (size_t)u;
			cached += (size_t)k;
		}
		if (used + cached + chain != below &&
		    (used + cached + chain > below || !kh.fork_lost))
			report(c, "slab %p: %zu objects handed out, %zu in use, "
			       "%zu cached, %zu free", frame, below, used,
			       cached, chain);
		if (count_used(live_of((uintptr_t)frame),
			       SLAB_SIZE >> LIVE_SHIFT) != used)
			report(c, "slab %p: in-use bytes off the objects",
			       frame);
	}
	if (s->nfree != chain + (size_t)(s->end - s->bump) / sz)
		report(c, "slab %p: nfree %u, chain %zu + bump %zu", frame,
		       s->nfree, chain, (size_t)(s->end - s->bump) / sz);
	if (s->listed != (s->nfree > 0 && s->nfree < s->nobj))
		report(c, "slab %p: listed=%u with %u/%u free", frame,
		       s->listed, s->nfree, s->nobj);
	if (s->nfree == s->nobj && kh.cls[cls].spare != s)
		report(c, "slab %p: empty but not the spare", frame);
}

static void check_chunk(struct ctx *c, const struct chunk *ch, int type)
{
	size_t g0 = gran_of(ch->start), n = ch->c.size >> GRANULE_SHIFT;

	if (ch != &kh.chunks[g0] || ch->type != type ||
	    ch->start != kh.pool.base + ch->c.off ||
	    ch->c.size % GRANULE || ch->start % GRANULE) {
		report(c, "chunk %p descriptor wrong", (void *)ch->start);
		return;
	}
	for (size_t g = g0; g < g0 + n; g++) {
		unsigned k = khm.kind[g];

		if (kh.owner[g] != ch)
			report(c, "granule %zu owner wrong", g);
		if (type == CH_HUGE && k != K_HUGE)
			report(c, "granule %zu of a huge chunk has kind %#x",
			       g, k);
		if (type == CH_ARENA) {
			if (k >= 1 && k <= NCLASS)
				check_slab(c, g, k - 1);
			else if (k != K_ARENA)
				report(c, "granule %zu of an arena has kind %#x",
				       g, k);
		}
	}
	if (type == CH_HUGE &&
	    (ch->uend <= ch->start || ch->uend > ch->start + ch->c.size ||
	     ch->uend % GRANULE || ch->dirty_end < ch->uend ||
	     ch->dirty_end > ch->start + ch->c.size))
		report(c, "huge chunk %p: usable end %#lx, dirty end %#lx",
		       (void *)ch->start, (unsigned long)ch->uend,
		       (unsigned long)ch->dirty_end);
	if (type == CH_ARENA) {
		size_t spare = 0;

		c->arena_used = 0;
		(void)tlsf_check_region(&kh.tlsf, (void *)ch->start,
					     ch->c.size, visit, c, report);
		for (unsigned k = 0; k < NCLASS; k++) {
			const struct slab *s = kh.cls[k].spare;
			uintptr_t f;

			if (!s)
				continue;
			f = khm.lo + ((uintptr_t)(s - kh.slabs) << GRANULE_SHIFT);
			if (f - ch->start < ch->c.size)
				spare += tlsf_usable_size((char *)f + TLSF_HDR);
		}
		if (c->arena_used != ch->used || spare != ch->spare_bytes ||
		    (spare && spare == ch->used))
			report(c, "arena %p: %zu bytes used, %zu in spare "
			       "slabs; counters say %zu, %zu",
			       (void *)ch->start, c->arena_used, spare,
			       ch->used, ch->spare_bytes);
	}
}

static void cache_add(struct ctx *c, void *p)
{
	if (c->ncached < c->cap)
		c->cached[c->ncached++] = p;
}

/* A partial slab list: slabs of class cls, listed, owned by owner (NULL:
 * the class's unowned list), and no loop. */
static void check_partial(struct ctx *c, const struct slab *head,
			  unsigned int cls, const struct tcache *owner,
			  const char *what)
{
	size_t cnt = 0;

	for (const struct slab *s = head; s; s = s->next) {
		if (s->cls != cls || !s->listed || s->owner != owner)
			report(c, "class %u %s list holds a bad slab", cls, what);
		if (++cnt > kh.ngran) {
			report(c, "class %u %s list loops", cls, what);
			break;
		}
	}
}

static void check_cache(const struct tcache *tc, void *arg)
{
	struct ctx *c = arg;

	for (unsigned cls = 0; cls < NCLASS; cls++) {
		const struct tc_bin *b = &tc->small[cls];

		if (b->count > b->cap)
			report(c, "cache bin %u over capacity", cls);
		for (unsigned i = 0; i < b->count && i < b->cap; i++) {
			uintptr_t v = (uintptr_t)b->items[i];

			if (v - khm.lo >= khm.span ||
			    khm.kind[gran_of(v)] != cls + 1)
				report(c, "cached %p not of class %u",
				       b->items[i], cls);
			else
				cache_add(c, b->items[i]);
		}
	}
	if (tc->nremote > TC_REMOTE_CAP)
		report(c, "remote buffer over capacity");
	for (unsigned i = 0; i < tc->nremote && i < TC_REMOTE_CAP; i++) {
		uintptr_t v = (uintptr_t)tc->remote[i];

		if (v - khm.lo >= khm.span ||
		    khm.kind[gran_of(v)] - 1u >= NCLASS)
			report(c, "remote %p not a small object", tc->remote[i]);
		else
			cache_add(c, tc->remote[i]);
	}
	/* The slabs it owns with free objects: its, listed, of the class. */
	for (unsigned cls = 0; cls < NCLASS; cls++)
		check_partial(c, tc->spartial[cls], cls, tc, "owned");
	for (unsigned i = 0; i < TC_MED_BINS; i++) {
		const struct tc_mbin *m = &tc->med[i];

		for (unsigned j = 0; j < m->count; j++) {
			uintptr_t v = (uintptr_t)m->items[j];

			if (v - khm.lo >= khm.span ||
			    khm.kind[gran_of(v)] != K_ARENA ||
			    tlsf_is_free(m->items[j]) ||
			    med_bin(tlsf_usable_size(m->items[j])) != i)
				report(c, "cached block %p bad", m->items[j]);
			else
				cache_add(c, m->items[j]);
		}
	}
}

static void count_cache(const struct tcache *tc, void *arg)
{
	size_t *n = arg;

	for (unsigned cls = 0; cls < NCLASS; cls++)
		*n += tc->small[cls].count;
	*n += tc->nremote;
	for (unsigned i = 0; i < TC_MED_BINS; i++)
		*n += tc->med[i].count;
}

/* Every thread's cached blocks, sorted; a block twice is reported. */
static void collect_caches(struct ctx *c)
{
	size_t n = 0;

	tcache_for_each(count_cache, &n);
	c->cap = n + 64;	/* room for the bounds checks to report */
	c->cached = mmap(NULL, c->cap * sizeof(void *), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->cached == MAP_FAILED) {
		c->cached = NULL;
		c->cap = 0;
		report(c, "no memory for the cache cross-check");
		return;
	}
	tcache_for_each(check_cache, c);
	qsort(c->cached, c->ncached, sizeof(void *), cmp_ptr);
	for (size_t i = 0; i < c->ncached; i++) {
		if (i && c->cached[i] == c->cached[i - 1])
			report(c, "block %p twice in thread caches",
			       c->cached[i]);
		if (in_use(c->cached[i]))
			report(c, "block %p in a thread cache and marked in use",
			       c->cached[i]);
	}
}

/* The class tables: sizes ascending multiples of 16 up to SMALL_MAX, and
 * every request maps to the smallest class that holds it. */
static void check_classes(struct ctx *c)
{
	for (unsigned i = 0; i < NCLASS; i++)
		if (kh_class_size[i] % 16 ||
		    (i && kh_class_size[i] <= kh_class_size[i - 1]))
			report(c, "class %u size %u", i, kh_class_size[i]);
	if (kh_class_size[NCLASS - 1] != SMALL_MAX)
		report(c, "largest class is not SMALL_MAX");
	for (size_t n = 0; n <= SMALL_MAX; n++) {
		unsigned k = size_class(n);

		if (k >= NCLASS || kh_class_size[k] < n ||
		    (k && kh_class_size[k - 1] >= n && n))
			report(c, "request %zu maps to class %u", n, k);
	}
}

int kheap__check(void)
{
	struct ctx c = { 0 };
	uint64_t held = 0, n = 0;

	if (!kh.ready)
		return 0;
	check_classes(&c);
	heap_lock();
	collect_caches(&c);
	(void)tlsf_check_lists(&kh.tlsf, &c, report);
	for (const struct chunk *a = kh.arenas; a; a = a->next, n++) {
		check_chunk(&c, a, CH_ARENA);
		held += a->c.size;
	}
	for (const struct chunk *h = kh.huges; h; h = h->next, n++) {
		check_chunk(&c, h, CH_HUGE);
		if (!in_use((void *)h->start))
			report(&c, "dedicated block %p not marked in use",
			       (void *)h->start);
		held += h->c.size;
	}
	{
		uint64_t cb = 0, cn = 0;

		for (const struct chunk *h = kh.cached; h; h = h->next) {
			size_t g0 = gran_of(h->start);

			if (h != &kh.chunks[g0] || h->type != CH_HUGE ||
			    h->start != kh.pool.base + h->c.off ||
			    h->c.size % GRANULE || h->c.size > kh.cache_limit ||
			    (h->prev ? h->prev->next : kh.cached) != h)
				report(&c, "cached chunk %p descriptor wrong",
				       (void *)h->start);
			for (size_t g = g0;
			     g < g0 + (h->c.size >> GRANULE_SHIFT); g++)
				if (khm.kind[g] != K_NONE || kh.owner[g] != h)
					report(&c, "granule %zu of a cached "
					       "chunk is mapped", g);
			if (in_use((void *)h->start))
				report(&c, "cached chunk %p marked in use",
				       (void *)h->start);
			cb += h->c.size;
			if (++cn > CACHE_MAX_CHUNKS)
				break;
		}
		if (cb != kh.cached_bytes || cn != kh.ncached ||
		    cn > CACHE_MAX_CHUNKS || cb > kh.cache_limit)
			report(&c, "chunk cache: %llu bytes in %llu chunks, "
			       "counters say %llu/%llu",
			       (unsigned long long)cb, (unsigned long long)cn,
			       (unsigned long long)kh.cached_bytes,
			       (unsigned long long)kh.ncached);
		held += cb;
		n += cn;
	}
	if (c.free_bytes != kh.tlsf.free_bytes)
		report(&c, "walk found %zu free bytes, lists hold %zu",
		       c.free_bytes, kh.tlsf.free_bytes);
	if (held != kh.held || n != kh.nchunks)
		report(&c, "held %llu bytes in %llu chunks, counters say %llu/%llu",
		       (unsigned long long)held, (unsigned long long)n,
		       (unsigned long long)kh.held,
		       (unsigned long long)kh.nchunks);
	for (unsigned cls = 0; cls < NCLASS; cls++)
		check_partial(&c, kh.cls[cls].partial, cls, NULL, "partial");
	heap_unlock();
	if (c.cached)
		munmap(c.cached, c.cap * sizeof(void *));
	return c.errs;
}
