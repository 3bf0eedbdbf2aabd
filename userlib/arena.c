// SPDX-License-Identifier: MIT
/*
 * arena.c - the heap: window, granule maps, arenas and dedicated chunks.
 *
 * Arena policy:
 *  - an arena is one kernel chunk, arena_size bytes, 2 MiB aligned;
 *    arena_size is the pool size / 8 rounded down to a power of two,
 *    between 2 MiB and 64 MiB (never more than the pool);
 *  - all arenas are regions of one TLSF instance, so a request searches
 *    every arena at once in O(1);
 *  - when no arena can serve a request, a new arena is taken; when the
 *    pool has no arena-sized extent left, the largest extent that still
 *    serves the request is taken instead, so the pool can be used to the
 *    last granule;
 *  - a block larger than half an arena gets a dedicated chunk of its own
 *    (64 KiB granular); a freed one goes to a small chunk cache (see
 *    "chunk cache" below) instead of straight back to the kernel;
 *  - an arena that becomes empty is returned unless it is the only empty
 *    one (hysteresis: a free/malloc cycle at the boundary does not hit the
 *    kernel every time); before reporting ENOMEM every empty arena,
 *    every spare slab and every cached chunk is returned, so after
 *    everything is freed one allocation can take the whole pool again;
 *  - spare memory, the kept empty arena and the cached chunks together,
 *    is at most kh.cache_limit bytes (about one arena): what is freed last
 *    stays, older spare memory goes back.  So a process that freed
 *    everything keeps about one arena of the pool from the others (plus
 *    the slabs its threads' caches keep alive) until kheap_trim() or an
 *    allocation failure gives even that back.
 *
 * Everything here runs under kh.lock, except heap_ensure (which takes it)
 * and heap_usable_size (lock-free, on a live pointer).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma.h"
#include "internal.h"
#include "tcache.h"

struct heap kh = { .lock = KHEAP_LOCK_INIT };
struct heap_map khm;

#define MIB ((size_t)1 << 20)

static inline size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static inline size_t pow2_floor(size_t x)
{
	return (size_t)1 << (63 - __builtin_clzll(x));
}

/*
 * One mapping, touched lazily: the in-use bytes first (a page-aligned
 * 4 KiB per granule, given back page by page with the chunks), then the
 * per-granule maps.
 */
static int meta_map(size_t ngran)
{
	size_t live_len = ngran << (GRANULE_SHIFT - LIVE_SHIFT);
	size_t kind_len = round_up(ngran, 64);
	size_t owner_len = ngran * sizeof(struct chunk *);
	size_t slabs_len = ngran * sizeof(struct slab);
	size_t chunks_len = ngran * sizeof(struct chunk);
	size_t len = round_up(live_len + kind_len + owner_len + slabs_len +
			      chunks_len, 4096);
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m == MAP_FAILED)
		return -ENOMEM;
	kh.meta = m;
	kh.meta_len = len;
	khm.live = (uint8_t *)m;
	m += live_len;
	khm.kind = (uint8_t *)m;
	kh.owner = (struct chunk **)(m + kind_len);
	kh.slabs = (struct slab *)(m + kind_len + owner_len);
	kh.chunks = (struct chunk *)(m + kind_len + owner_len + slabs_len);
	return 0;
}

/* A chunk is going back: its in-use bytes are all clear or LIVE_FREED;
 * let the kernel have their whole pages. */
static void live_release(uintptr_t start, size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = round_up((uintptr_t)live_of(start), pg);
	uintptr_t b = ((uintptr_t)live_of(start) + (size >> LIVE_SHIFT)) &
		      ~(uintptr_t)(pg - 1);

	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

static int heap_init(void)
{
	const struct kheap_provider *prov = kh.prov ? kh.prov :
						    &kheap_device_provider;
	uintptr_t lo, hi;
	size_t as;
	int err;

	err = prov->open(&kh.pool);
	if (err)
		return err;
	kh.prov = prov;
	lo = kh.pool.base & ~(GRANULE - 1);
	hi = round_up(kh.pool.base + kh.pool.span, GRANULE);
	kh.ngran = (hi - lo) >> GRANULE_SHIFT;
	err = meta_map(kh.ngran);
	if (err) {
		prov->close();
		return err;
	}

	as = pow2_floor(kh.pool.size / 8 ? kh.pool.size / 8 : 1);
	if (as < 2 * MIB)
		as = 2 * MIB;
	if (as > 64 * MIB)
		as = 64 * MIB;
	if (as > kh.pool.size)
		as = kh.pool.size & ~(GRANULE - 1);
	if (as < GRANULE)
		as = GRANULE;
	kh.arena_size = as;
	kh.arena_align = as >= 2 * MIB ? 2 * MIB : GRANULE;
	kh.huge_min = as / 2;
	kh.cache_limit = kh.pool.size / 8 < CACHE_MAX_BYTES ?
			 kh.pool.size / 8 : CACHE_MAX_BYTES;
	tlsf_init(&kh.tlsf);
	kh.arenas = kh.huges = kh.cached = NULL;
	kh.cached_bytes = kh.ncached = kh.cache_reuses = 0;
	memset(kh.cls, 0, sizeof(kh.cls));
	kh.nspare_slabs = 0;

	khm.lo = lo;
	khm.base = kh.pool.base;
	khm.phys = kh.pool.phys;
	khm.pool_size = kh.pool.size;
	__atomic_store_n(&khm.span, kh.ngran << GRANULE_SHIFT,
			 __ATOMIC_RELEASE);
	tcache_heap_init();
	__atomic_store_n(&kh.ready, 1, __ATOMIC_RELEASE);
	return 0;
}

int heap_ensure(void)
{
	int err = 0;

	if (likely(__atomic_load_n(&kh.ready, __ATOMIC_ACQUIRE)))
		return 0;
	heap_lock();
	if (!kh.ready)
		err = heap_init();
	heap_unlock();
	return err;
}

/* ---- chunks ---- */

static void drop_chunk(struct chunk *ch);

/* Register a fresh chunk; NULL (the chunk given back) when it cannot be
 * mapped for the process's VFIO containers. */
static struct chunk *add_chunk(const struct kheap_chunk *c, int type)
{
	uintptr_t start = kh.pool.base + c->off;
	size_t g0 = gran_of(start), n = c->size >> GRANULE_SHIFT, g;
	struct chunk *ch = &kh.chunks[g0];
	struct chunk **list = type == CH_ARENA ? &kh.arenas : &kh.huges;

	kh_assert(start % GRANULE == 0 && c->size % GRANULE == 0 && n > 0);
	kh_assert(khm.kind[g0] == K_NONE && !kh.owner[g0]);
	memset(ch, 0, sizeof(*ch));
	ch->c = *c;
	ch->start = start;
	ch->dirty_end = start;
	ch->uend = start + c->size;
	ch->type = (uint8_t)type;
	ch->next = *list;
	if (*list)
		(*list)->prev = ch;
	*list = ch;
	for (g = g0; g < g0 + n; g++) {
		kh.owner[g] = ch;
		khm.kind[g] = type == CH_ARENA ? K_ARENA : K_HUGE;
	}
	kh.held += c->size;
	kh.nchunks++;
	if (kh.held > kh.peak_held)
		kh.peak_held = kh.held;
	if (dma_chunk_added(ch)) {
		drop_chunk(ch);
		return NULL;
	}
	return ch;
}

static void drop_chunk(struct chunk *ch)
{
	size_t g0 = gran_of(ch->start), n = ch->c.size >> GRANULE_SHIFT, g;
	struct chunk **list = ch->type == CH_ARENA ? &kh.arenas : &kh.huges;
	struct kheap_chunk c = ch->c;

	if (ch->prev)
		ch->prev->next = ch->next;
	else
		*list = ch->next;
	if (ch->next)
		ch->next->prev = ch->prev;
	for (g = g0; g < g0 + n; g++) {
		kh.owner[g] = NULL;
		khm.kind[g] = K_NONE;
	}
	kh.held -= c.size;
	kh.nchunks--;
	dma_chunk_removed(ch);
	live_release(ch->start, c.size);
	kh.prov->free(&c);
}

/* A chunk of want bytes, or failing that the largest that still holds
 * min bytes. */
static int take_chunk(size_t want, size_t align, size_t min,
		      struct kheap_chunk *c)
{
	struct kheap_pool_usage u;
	size_t sz;
	int err, tries;

	err = kh.prov->alloc(want, align, 0, c);
	if (err != -ENOMEM || kh.prov->usage(&u))
		return err;
	sz = (size_t)u.largest_free & ~(GRANULE - 1);
	if (sz > want)
		sz = want;
	for (tries = 0; tries < 3 && sz >= min; tries++, sz -= GRANULE) {
		err = kh.prov->alloc(sz, GRANULE, 0, c);
		if (err != -ENOMEM)
			return err;
	}
	return -ENOMEM;
}

/* A new arena in which a block of need bytes (slack included) fits. */
static int grow(size_t need)
{
	struct kheap_chunk c;
	struct chunk *ch;
	size_t min = round_up(need + TLSF_REGION_OVERHEAD, GRANULE);
	size_t want = kh.arena_size > min ? kh.arena_size : min;
	int err = take_chunk(want, kh.arena_align, min, &c);

	if (err) {
		kh.grow_err = -err;	/* central_block's errno */
		return err;
	}
	ch = add_chunk(&c, CH_ARENA);
	if (!ch)
		return -ENOMEM;
	tlsf_add_region(&kh.tlsf, (void *)ch->start, c.size);
	ch->dirty_end = ch->start + 2 * TLSF_MIN_BLOCK;
	return 0;
}

static void note_dirty(void *p)
{
	struct chunk *ch = kh.owner[gran_of((uintptr_t)p)];
	uintptr_t end = (uintptr_t)p + tlsf_usable_size(p) + TLSF_MIN_BLOCK;

	if (end > ch->dirty_end)
		ch->dirty_end = end;
}

static void *tlsf_get(size_t n, size_t align)
{
	if (align == HEAP_ROOMY)
		return tlsf_malloc_roomy(&kh.tlsf, n);
	if (align > TLSF_ALIGN)
		return tlsf_memalign(&kh.tlsf, align, n);
	return tlsf_malloc(&kh.tlsf, n);
}

void *heap_alloc_block(size_t n, size_t align, uintptr_t *dirty_before)
{
	size_t bs = tlsf_block_size(n);
	void *p;

	if (!bs)
		return NULL;
	p = tlsf_get(n, align);
	if (!p) {
		size_t need = bs + (align > TLSF_ALIGN && align != HEAP_ROOMY ?
				    align + TLSF_MIN_BLOCK : 0);

		if (grow(need))
			return NULL;
		p = tlsf_get(n, align);
		if (!p)
			return NULL;
	}
	if (dirty_before)
		*dirty_before = kh.owner[gran_of((uintptr_t)p)]->dirty_end;
	note_dirty(p);
	arena_of(p)->used += tlsf_usable_size(p);
	return p;
}

void *heap_alloc_block_held(size_t n)
{
	void *p = tlsf_malloc(&kh.tlsf, n);

	if (!p)
		return NULL;
	note_dirty(p);
	arena_of(p)->used += tlsf_usable_size(p);
	return p;
}

void *heap_alloc_frame(void)
{
	char *f = tlsf_alloc_frame(&kh.tlsf, SLAB_SIZE, SLAB_SIZE);

	if (!f) {
		if (grow(SLAB_SIZE))
			return NULL;
		f = tlsf_alloc_frame(&kh.tlsf, SLAB_SIZE, SLAB_SIZE);
		if (!f)
			return NULL;
	}
	note_dirty(f + TLSF_HDR);
	arena_of(f)->used += tlsf_usable_size(f + TLSF_HDR);
	return f;
}

static int arena_is_empty(const struct chunk *a)
{
	return tlsf_region_is_empty((void *)a->start, a->c.size);
}

static void release_arena(struct chunk *a)
{
	tlsf_remove_region(&kh.tlsf, (void *)a->start);
	drop_chunk(a);
}

static void cache_release(struct chunk *ch);

/* The least recently freed cached chunk (the cache's tail). */
static struct chunk *cache_oldest(void)
{
	struct chunk *t = kh.cached;

	while (t && t->next)
		t = t->next;
	return t;
}

/* Bytes of empty arenas other than a. */
static size_t empty_arena_bytes(const struct chunk *a)
{
	size_t n = 0;

	for (const struct chunk *o = kh.arenas; o; o = o->next)
		if (o != a && arena_is_empty(o))
			n += o->c.size;
	return n;
}

void heap_free_block(void *p)
{
	struct chunk *a;

	kh_assert(khm.kind[gran_of((uintptr_t)p)] == K_ARENA);
	a = arena_of(p);
	kh_assert(a->used >= tlsf_usable_size(p));
	a->used -= tlsf_usable_size(p);
	if (!tlsf_free(&kh.tlsf, p)) {
		/* Only spare slabs left: they would keep the arena from
		 * ever being given back.  The last one's free comes back
		 * here with the arena empty. */
		if (a->spare_bytes && a->used == a->spare_bytes)
			slab_release_spares_in(a);
		return;
	}
	kh_assert(a->used == 0);
	/* The arena is empty: keep it only if no other arena is, and then
	 * within the spare bound, older cached chunks giving way. */
	if (empty_arena_bytes(a) || a->c.size > kh.cache_limit) {
		release_arena(a);
		return;
	}
	while (kh.cached_bytes + a->c.size > kh.cache_limit)
		cache_release(cache_oldest());
}

int heap_resize_block(void *p, size_t n)
{
	size_t old = tlsf_usable_size(p);

	if (!tlsf_resize(&kh.tlsf, p, n))
		return 0;
	note_dirty(p);
	arena_of(p)->used += tlsf_usable_size(p) - old;
	return 1;
}

/*
 * Chunk cache.  A dedicated chunk cannot be resized or split in the kernel,
 * and a fresh one costs a system call, the kernel's zero fill of every
 * byte, a mapping and its page faults.  So a freed dedicated chunk is kept
 * (most recent first) and a later dedicated request takes the smallest
 * cached chunk that holds it with at most a quarter of the chunk unused
 * (the tail of a reused chunk serves nobody while the block lives, so the
 * waste is bounded like TLSF's rounding, not by the cache size).
 *
 * Bounds: at most min(pool / 8, 64 MiB) bytes and 8 chunks; a chunk larger
 * than the byte bound goes straight back, and the least recently freed
 * chunks go back when a new one would exceed a bound.  Before any ENOMEM
 * (heap_reclaim) every cached chunk goes back, so the whole pool is still
 * one allocation away after everything is freed.  A fork child forgets the
 * cache: those chunks belong to the parent's open file.
 *
 * A cached chunk is dirty: its dirty_end says up to where (the largest
 * usable area ever handed out), and calloc clears only below it.
 */
static void cache_unlink(struct chunk *ch)
{
	if (ch->prev)
		ch->prev->next = ch->next;
	else
		kh.cached = ch->next;
	if (ch->next)
		ch->next->prev = ch->prev;
	kh.cached_bytes -= ch->c.size;
	kh.ncached--;
}

static void cache_release(struct chunk *ch)
{
	struct kheap_chunk c = ch->c;

	kh_assert(ch->type == CH_HUGE);
	cache_unlink(ch);
	for (size_t g = gran_of(ch->start), e = g + (c.size >> GRANULE_SHIFT);
	     g < e; g++)
		kh.owner[g] = NULL;
	kh.held -= c.size;
	kh.nchunks--;
	dma_chunk_removed(ch);
	live_release(ch->start, c.size);
	kh.prov->free(&c);
}

static void cache_release_all(void)
{
	while (kh.cached)
		cache_release(kh.cached);
}

/* Cached chunks keep their owner entries (the chunk's own descriptor);
 * only the kind bytes change, one memset. */
static void set_kind(struct chunk *ch, uint8_t k)
{
	memset(&khm.kind[gran_of(ch->start)], k, ch->c.size >> GRANULE_SHIFT);
}

static void *cache_take(size_t size, size_t align, uintptr_t *dirty_before)
{
	struct chunk *best = NULL;

	for (struct chunk *ch = kh.cached; ch; ch = ch->next)
		if (ch->c.size >= size && ch->c.size - size <= ch->c.size / 4 &&
		    !(ch->start & (align - 1)) &&
		    (!best || ch->c.size < best->c.size))
			best = ch;
	if (!best)
		return NULL;
	cache_unlink(best);
	best->prev = NULL;
	best->next = kh.huges;
	if (kh.huges)
		kh.huges->prev = best;
	kh.huges = best;
	set_kind(best, K_HUGE);
	best->uend = best->start + size;
	if (dirty_before)
		*dirty_before = best->dirty_end;
	if (best->dirty_end < best->uend)
		best->dirty_end = best->uend;
	kh.cache_reuses++;
	return (void *)best->start;
}

void *heap_alloc_huge(size_t n, size_t align, unsigned int flags, int *err,
		      uintptr_t *dirty_before)
{
	struct kheap_chunk c;
	struct chunk *ch;
	size_t size = round_up(n, GRANULE);
	void *p;
	int e;

	if (size < n || !size) {
		*err = ENOMEM;
		return NULL;
	}
	if (align < GRANULE)
		align = GRANULE;
	/* Cached chunks are private ones. */
	p = flags & PROV_SHARED ? NULL : cache_take(size, align, dirty_before);
	if (p)
		return p;
	/* Growable: realloc may extend it in place (resize.c). */
	e = kh.prov->alloc(size, align,
			   flags & PROV_SHARED ? flags : flags | PROV_GROWABLE,
			   &c);
	if (e) {
		*err = e == -EINVAL ? ENOMEM : -e;
		return NULL;
	}
	ch = add_chunk(&c, CH_HUGE);
	if (!ch) {
		*err = ENOMEM;
		return NULL;
	}
	if (dirty_before)
		*dirty_before = ch->start;	/* the kernel zeroed it */
	ch->dirty_end = ch->uend;
	return (void *)ch->start;
}

void heap_free_huge(struct chunk *c)
{
	struct chunk *a, *n;

	kh_assert(c->type == CH_HUGE && khm.kind[gran_of(c->start)] == K_HUGE);
	/* A shared chunk is never handed out again as a private one. */
	if (c->c.size > kh.cache_limit || c->c.shared) {
		drop_chunk(c);
		return;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		kh.huges = c->next;
	if (c->next)
		c->next->prev = c->prev;
	set_kind(c, K_NONE);
	c->prev = NULL;
	c->next = kh.cached;
	if (kh.cached)
		kh.cached->prev = c;
	kh.cached = c;
	kh.cached_bytes += c->c.size;
	kh.ncached++;
	/* Within the spare bound: the empty arena goes first (kept since
	 * before this chunk was freed), then the least recently freed. */
	for (a = kh.arenas; a && kh.cached_bytes + empty_arena_bytes(NULL) >
	     kh.cache_limit; a = n) {
		n = a->next;
		if (arena_is_empty(a))
			release_arena(a);
	}
	while (kh.cached_bytes > kh.cache_limit ||
	       kh.ncached > CACHE_MAX_CHUNKS)
		cache_release(cache_oldest());
}

void heap_reclaim(void)
{
	struct chunk *a, *n;

	slab_release_spares();
	for (a = kh.arenas; a; a = n) {
		n = a->next;
		if (arena_is_empty(a))
			release_arena(a);
	}
	cache_release_all();
}

void heap_calloc_clear(void *p, size_t n, uintptr_t dirty_before)
{
	uintptr_t s = (uintptr_t)p;
	size_t usable = tlsf_usable_size(p), pre = 16;

	/* Zero below the arena's high-water mark; above it only TLSF's own
	 * words can be non-zero: a free block's links (first 16 bytes) and
	 * the next block's prev_size (last 8 bytes of the usable area). */
	if (dirty_before > s && dirty_before - s > pre)
		pre = dirty_before - s;
	if (pre > n)
		pre = n;
	memset(p, 0, pre);
	if (n > pre && n > usable - 8)
		memset((char *)p + usable - 8, 0, n - (usable - 8));
}

size_t heap_usable_size(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	size_t g;
	unsigned k;

	if (v - khm.lo >= khm.span)
		return 0;
	g = gran_of(v);
	k = khm.kind[g] & ~K_FOREIGN;
	if (k >= 1 && k <= NCLASS)
		return kh_class_size[k - 1];
	if (k == K_ARENA)
		return tlsf_usable_size(p);
	if (k == K_HUGE) {
		const struct chunk *c = kh.owner[g];

		return c->uend - v;
	}
	return 0;
}

/* ---- fork ---- */

__thread int kh_in_fork __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void)
{
	kheap_lock(&kh.lock);
	tcache_atfork_prepare();
	kh.fork_pid = (int)getpid();
	kh.fork_child_done = 0;
	kh_in_fork = 1;
}

static void atfork_parent(void)
{
	kh_in_fork = 0;
	tcache_atfork_parent();
	kheap_unlock(&kh.lock);
}

static void mark_inherited(struct chunk *list)
{
	for (struct chunk *c = list; c; c = c->next) {
		c->c.inherited = 1;
		if (!c->c.shared)
			c->c.phys = 0;	/* the child's copy is elsewhere */
	}
}

static void mark_foreign(struct chunk *list)
{
	for (struct chunk *c = list; c; c = c->next) {
		size_t g0 = gran_of(c->start), n = c->c.size >> GRANULE_SHIFT;

		for (size_t g = g0; g < g0 + n; g++)
			khm.kind[g] |= K_FOREIGN;
	}
}

/*
 * Runs once per fork, from kheap's child handler or from the first
 * allocation of a child handler that runs before it.
 *
 * With the device since ABI 3, and with the region provider, the child's
 * chunks are private copies of the parent's, metadata and blocks alike:
 * the child keeps its heap exactly as it was, and only learns that each
 * chunk now sits elsewhere physically.  Each is adopted (its copy made a
 * chunk of the child's own file, its physical address learnt) the first
 * time the child needs that address (heap_chunk_own()); one the child
 * frees before is just unmapped.  Shared chunks stay the parent's pages.
 *
 * With an older module the child shares every chunk it inherited with
 * the parent, and the parent keeps allocating from them.  So the child
 * must never write allocator state into them: they become foreign
 * (readable, usable for the blocks the child already had, never allocated
 * from, frees ignored) and the child starts afresh with chunks of its own.
 */
static void child_reset(void)
{
	int keep = 0;

	kh.fork_child_done = 1;
	kheap_lock_init(&kh.lock);
	if (kh.ready && kh.prov->atfork_child()) {
		keep = 1;
		dma_forget(0);
		mark_inherited(kh.arenas);
		mark_inherited(kh.huges);
		mark_inherited(kh.cached);
	} else if (kh.ready) {
		mark_foreign(kh.arenas);
		mark_foreign(kh.huges);
		/* The cached chunks are the parent's too (its file holds
		 * them): unmap them, never reuse them. */
		cache_release_all();
		kh.arenas = kh.huges = kh.cached = NULL;
		kh.cached_bytes = kh.ncached = 0;
		tlsf_init(&kh.tlsf);
		memset(kh.cls, 0, sizeof(kh.cls));
	kh.nspare_slabs = 0;
		kh.held = kh.peak_held = kh.nchunks = 0;
		kh.out = kh.peak_out = 0;
		dma_forget(0);
	}
	if (tcache_atfork_child(keep) && keep)
		kh.fork_lost = 1;
	/*
	 * What the child holds but does not use, it gives up at once: its
	 * mapping of a chunk keeps the parent's chunk from the pool (even
	 * after the parent frees it) and, once either side touches a page,
	 * costs a copy.  Cached chunks, spare slabs and empty arenas (the
	 * other threads' caches just flushed included) are unmapped.
	 */
	if (keep)
		heap_reclaim();
}

int heap_chunk_own(struct chunk *ch)
{
	struct kheap_chunk c = ch->c;
	int err;

	if (!c.inherited || c.shared)
		return 0;
	err = kh.prov->adopt(&c);
	if (err)
		return err;
	ch->c.inherited = 0;
	__atomic_store_n(&ch->c.phys, c.phys, __ATOMIC_RELEASE);
	return 0;
}

static void atfork_child(void)
{
	if (!kh.fork_child_done)
		child_reset();
	kh_in_fork = 0;
}

void heap_fork_sync(void)
{
	if (!kh.fork_child_done && (int)getpid() != kh.fork_pid)
		child_reset();
}

/*
 * Registered when the library loads, before any library that links it
 * and before the program's main: prepare handlers run in reverse order
 * of registration, so kheap's runs last (after every later handler has
 * allocated what it wanted) and its child and parent handlers first
 * (the child is sound before any later child handler allocates).
 */
__attribute__((constructor)) static void register_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- test hooks ---- */

void kheap__reset(void)
{
	heap_lock();
	tcache_discard_current();
	dma_forget(1);
	if (kh.ready) {
		kh.prov->close();
		munmap(kh.meta, kh.meta_len);
	}
	__atomic_store_n(&khm.span, 0, __ATOMIC_RELAXED);
	khm.kind = NULL;
	khm.live = NULL;
	kh.ready = 0;
	kh.arenas = kh.huges = kh.cached = NULL;
	kh.cached_bytes = kh.ncached = kh.cache_reuses = 0;
	kh.held = kh.peak_held = kh.nchunks = 0;
	kh.out = kh.peak_out = 0;
	kh.failed = 0;
	kh.fork_lost = 0;
	heap_unlock();
}

int kheap__use_provider(const struct kheap_provider *prov)
{
	kheap__reset();
	kh.prov = prov;
	return heap_ensure();
}
