// SPDX-License-Identifier: MIT
/*
 * check.c - integrity checker: walks every block of every chunk and
 * cross-checks the TLSF lists, the slabs, the granule maps, the counters
 * and this thread's cache.  Used by the tests after every operation;
 * returns the number of problems found and prints each to stderr.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"
#include "tcache.h"

struct ctx {
	int errs;
	size_t free_bytes;
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

static void visit(void *vctx, const struct tlsf_walk_info *wi)
{
	struct ctx *c = vctx;

	if (wi->free)
		c->free_bytes += wi->size;
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
	if (type == CH_ARENA)
		(void)tlsf_check_region(&kh.tlsf, (void *)ch->start,
					     ch->c.size, visit, c, report);
}

static void check_cache(struct ctx *c, const struct tcache *tc)
{
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
		}
	}
	for (unsigned i = 0; i < TC_MED_BINS; i++) {
		const struct tc_mbin *m = &tc->med[i];

		for (unsigned j = 0; j < m->count; j++) {
			uintptr_t v = (uintptr_t)m->items[j];

			if (v - khm.lo >= khm.span ||
			    khm.kind[gran_of(v)] != K_ARENA ||
			    tlsf_is_free(m->items[j]) ||
			    med_bin(tlsf_usable_size(m->items[j])) != i)
				report(c, "cached block %p bad", m->items[j]);
		}
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
	struct ctx c = { 0, 0 };
	uint64_t held = 0, n = 0;

	if (!kh.ready)
		return 0;
	check_classes(&c);
	kheap_lock(&kh.lock);
	(void)tlsf_check_lists(&kh.tlsf, &c, report);
	for (const struct chunk *a = kh.arenas; a; a = a->next, n++) {
		check_chunk(&c, a, CH_ARENA);
		held += a->c.size;
	}
	for (const struct chunk *h = kh.huges; h; h = h->next, n++) {
		check_chunk(&c, h, CH_HUGE);
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
	for (unsigned cls = 0; cls < NCLASS; cls++) {
		const struct slab_class *k = &kh.cls[cls];
		size_t cnt = 0;

		for (const struct slab *s = k->partial; s; s = s->next) {
			if (s->cls != cls || !s->listed)
				report(&c, "class %u partial list holds a bad slab",
				       cls);
			if (++cnt > kh.ngran) {
				report(&c, "class %u partial list loops", cls);
				break;
			}
		}
	}
	if (kh_tc)
		check_cache(&c, kh_tc);
	kheap_unlock(&kh.lock);
	return c.errs;
}
