// SPDX-License-Identifier: MIT
/*
 * slab.c - small size classes and their slabs (see slab.h).
 *
 * Classes: 16-byte steps to 256, 32-byte steps to 512, 64-byte steps to
 * 1024 (at most 12.5% internal waste above 128 bytes, less below).  Each
 * class keeps a list of partially used unowned slabs and at most one spare
 * empty slab, and all classes together at most SPARE_SLABS_MAX (a spare
 * slab keeps its arena from ever being empty and given back); any other
 * empty slab goes back to TLSF at once.  Each thread cache keeps the list
 * of partially used slabs it owns (slab.h), per class; an empty slab is
 * nobody's.  All under kh.lock.
 */
#include <stddef.h>

#include "internal.h"
#include "tcache.h"

#define SPARE_SLABS_MAX	4

const uint16_t kh_class_size[NCLASS] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512,
	576, 640, 704, 768, 832, 896, 960, 1024,
};

/* Class of a request, indexed by (size + 15) / 16. */
const uint8_t kh_size_class[SMALL_MAX / 16 + 1] = {
	0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23,
	23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
	27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31,
	31,
};

static inline char *slab_frame(const struct slab *s)
{
	return (char *)(khm.lo + ((size_t)(s - kh.slabs) << GRANULE_SHIFT));
}

/* A slab frame's bytes as its arena counts them. */
static inline size_t frame_bytes(const struct slab *s)
{
	return tlsf_usable_size(slab_frame(s) + TLSF_HDR);
}

/* The partial list a slab belongs on: its owner's, or its class's. */
static struct slab **list_of(const struct slab *s)
{
	return s->owner ? &s->owner->spartial[s->cls] : &kh.cls[s->cls].partial;
}

static void list_add(struct slab *s)
{
	struct slab **head = list_of(s);

	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
	s->listed = 1;
}

static void list_del(struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*list_of(s) = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->listed = 0;
}

/* The free kheap_free reads it lock-free (a hint there, never trusted). */
static void set_owner(struct slab *s, struct tcache *tc)
{
	int listed = s->listed;

	if (listed)
		list_del(s);
	__atomic_store_n(&s->owner, tc, __ATOMIC_RELAXED);
	if (listed)
		list_add(s);
}

static struct slab *slab_new(unsigned c)
{
	char *f = heap_alloc_frame();
	size_t g, sz = kh_class_size[c];
	struct slab *s;

	if (!f)
		return NULL;
	g = gran_of((uintptr_t)f);
	s = &kh.slabs[g];
	s->free = NULL;
	s->bump = f + SLAB_OBJ_OFF;
	s->nobj = (uint32_t)((SLAB_SIZE - SLAB_OBJ_OFF) / sz);
	s->end = s->bump + (size_t)s->nobj * sz;
	s->nfree = s->nobj;
	s->cls = (uint8_t)c;
	s->listed = 0;
	s->next = s->prev = NULL;
	s->owner = NULL;
	khm.kind[g] = (uint8_t)(c + 1);
	kh.cls[c].nslabs++;
	return s;
}

static void slab_destroy(struct slab *s)
{
	char *f = slab_frame(s);

	khm.kind[s - kh.slabs] = K_ARENA;
	__atomic_store_n(&s->owner, NULL, __ATOMIC_RELAXED);
	kh.cls[s->cls].nslabs--;
	heap_free_block(f + TLSF_HDR);
}

/* A slab of class c with free objects for owner's refill, listed. */
static struct slab *pick(unsigned c, struct tcache *owner)
{
	struct slab_class *k = &kh.cls[c];
	struct slab *s = owner ? owner->spartial[c] : k->partial;

	if (s)
		return s;
	s = k->partial;			/* unowned: a thread's that is gone */
	if (!s && k->spare) {
		s = k->spare;
		k->spare = NULL;
		kh.nspare_slabs--;
		arena_of(slab_frame(s))->spare_bytes -= frame_bytes(s);
	}
	if (!s)
		s = slab_new(c);
	if (!s)		/* the pool is full: another thread's free objects */
		s = tcache_other_partial(owner, c);
	if (!s)
		return NULL;
	if (!s->listed)
		list_add(s);
	set_owner(s, owner);
	return s;
}

unsigned slab_alloc_batch(unsigned c, void **out, unsigned want,
			  struct tcache *owner)
{
	unsigned got = 0, sz = kh_class_size[c];

	while (got < want) {
		struct slab *s = pick(c, owner);

		if (!s)
			break;
		kh_assert(khm.kind[s - kh.slabs] == c + 1 && s->cls == c &&
			  s->owner == owner && s->listed && s->nfree);
		while (got < want && s->nfree) {
			void *p = s->free;

			if (p) {
				s->free = *(void **)p;
			} else {
				p = s->bump;
				s->bump += sz;
			}
			s->nfree--;
			out[got++] = p;
		}
		if (!s->nfree)
			list_del(s);
	}
	return got;
}

void slab_disown(struct tcache *tc)
{
	for (struct chunk *a = kh.arenas; a; a = a->next) {
		size_t g0 = gran_of(a->start), n = a->c.size >> GRANULE_SHIFT;

		for (size_t g = g0; g < g0 + n; g++)
			if (khm.kind[g] - 1u < NCLASS && kh.slabs[g].owner == tc)
				set_owner(&kh.slabs[g], NULL);
	}
	for (unsigned c = 0; c < NCLASS; c++)
		kh_assert(!tc->spartial[c]);
}

void slab_free_batch(void **objs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		void *p = objs[i];
		struct slab *s = &kh.slabs[gran_of((uintptr_t)p)];
		struct slab_class *k = &kh.cls[s->cls];

		/* An object of this slab, on an object boundary, not free. */
		kh_assert(khm.kind[s - kh.slabs] == s->cls + 1u);
		kh_assert((char *)p >= slab_frame(s) + SLAB_OBJ_OFF &&
			  (char *)p < s->bump &&
			  ((char *)p - slab_frame(s) - SLAB_OBJ_OFF) %
			  kh_class_size[s->cls] == 0);
		kh_assert(s->nfree < s->nobj);
		*(void **)p = s->free;
		s->free = p;
		s->nfree++;
		if (s->nfree == s->nobj) {
			if (s->listed)
				list_del(s);
			/* Empty: nobody's, as a spare or gone. */
			__atomic_store_n(&s->owner, NULL, __ATOMIC_RELAXED);
			if (!k->spare && kh.nspare_slabs < SPARE_SLABS_MAX &&
			    arena_of(slab_frame(s))->used >
			    arena_of(slab_frame(s))->spare_bytes +
			    frame_bytes(s)) {
				/* a spare only where other blocks live */
				k->spare = s;
				kh.nspare_slabs++;
				arena_of(slab_frame(s))->spare_bytes +=
					frame_bytes(s);
			} else {
				slab_destroy(s);
			}
		} else if (!s->listed) {
			list_add(s);
		}
	}
}

void slab_release_spares(void)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		struct slab *s = kh.cls[c].spare;

		if (s) {
			kh.cls[c].spare = NULL;
			arena_of(slab_frame(s))->spare_bytes -= frame_bytes(s);
			slab_destroy(s);
		}
	}
	kh.nspare_slabs = 0;
}

void slab_release_spares_in(struct chunk *a)
{
	struct slab *gone[NCLASS];
	unsigned n = 0;

	/* Unlisted first: each destroy may give the arena back. */
	for (unsigned c = 0; c < NCLASS; c++) {
		struct slab *s = kh.cls[c].spare;

		if (s && arena_of(slab_frame(s)) == a) {
			kh.cls[c].spare = NULL;
			kh.nspare_slabs--;
			a->spare_bytes -= frame_bytes(s);
			gone[n++] = s;
		}
	}
	for (unsigned i = 0; i < n; i++)
		slab_destroy(gone[i]);
}

int slab_class_aligned(size_t n, size_t align)
{
	for (unsigned c = size_class(n); c < NCLASS; c++) {
		unsigned sz = kh_class_size[c];
		unsigned nat = sz & -sz;

		if ((nat >= 64 ? 64 : nat) >= align)
			return (int)c;
	}
	return -1;
}
