// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl map: the picture that explains malloc, with real addresses.
 *
 * We allocate a few buffers through libkheap (one of them moved by
 * realloc), plus one chunk straight from the device (ALLOC + mmap), write
 * strings into some, and show three views:
 *
 *   1. the process's view: the /dev/kheap mappings in /proc/self/maps and
 *      the virtual range of each buffer inside them;
 *   2. the MMU's view: per virtual page, the physical page that libkheap
 *      (kheap_phys, which makes no system call) or the device
 *      (KHEAP_IOC_QUERY) says, next to what the page tables say
 *      (/proc/self/pagemap), marked ✓ when they agree;
 *   3. physical RAM: where each buffer sits inside the pool, and its bytes
 *      read back at that physical address through /proc/kcore, which does
 *      not go through our mapping at all (or, where kcore cannot see the
 *      pool, through kheap_phys_to_virt).
 *
 * With --device DEV, map first attaches DEV (kheap_attach() for libkheap's
 * buffers, KHEAP_IOC_ATTACH for the device chunk), so that every chunk is
 * placed where DEV reaches, and adds a fourth view: each buffer's device
 * address (kheap_dma_addr(), or DMA_ADDR at QUERY's token and offset),
 * checked to be contiguous at a few offsets up to the last byte and to lie
 * under the device's DMA mask.  Behind an IOMMU these are IOVAs, not
 * physical addresses: they are what the device must be given.
 *
 * Any disagreement, a buffer outside the pool, a physically discontiguous
 * buffer or a byte that does not read back makes the command fail (exit 1).
 * Without root, pagemap and kcore hide physical addresses: those checks
 * are reported as skipped, not failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kheap.h>
#include <kheap.h>	/* libkheap, from userlib/ */

#include "json.h"
#include "kheapctl.h"

#define MAX_BUFS	16
#define MAX_PAGES_SHOWN	4	/* per buffer in the text table */
#define POOL_CELLS	64

enum verdict { V_AGREE, V_HIDDEN, V_MISMATCH, V_ABSENT };

struct page_row {
	uintptr_t virt;		/* page start */
	uint64_t phys;		/* from libkheap or QUERY; 0 = unknown */
	uint64_t pagemap;	/* from /proc/self/pagemap */
	enum verdict v;
};

struct buf {
	char name;
	char call[64];
	unsigned char *p;
	size_t size;		/* requested */
	size_t usable;
	uint64_t phys;		/* of the first byte; 0 = unknown */
	const char *via;	/* "kheap_phys" or "QUERY" */
	const char *text;	/* string we wrote, or NULL */
	size_t npages;
	struct page_row *pages;
	bool contiguous;	/* phys(p + i) == phys(p) + i */
	bool in_pool;
	bool roundtrip;		/* kheap_phys_to_virt(phys) == p */
	/* physical RAM read-back of the text */
	const char *ram_source;	/* "kcore", "kheap_phys_to_virt" or NULL */
	bool ram_match;
	/* the device's view, with --device */
	uint64_t dma;		/* device address of the first byte; 0 = none */
	int dma_errno;		/* why there is none */
	unsigned int dma_probes;	/* offsets checked */
	bool dma_contiguous;	/* dma(p + i) == dma(p) + i at each of them */
	bool dma_reachable;	/* the last byte lies under the DMA mask */
	uintptr_t dma_bad_off;	/* first offset that disagreed */
	uint64_t dma_bad_got;
};

struct mapview {
	struct kheap_info info;
	bool have_info;
	long page;
	int pagemap_fd;
	struct kcore *kcore;
	int kcore_err;
	struct buf bufs[MAX_BUFS + 2];
	unsigned int nbufs;
	/* the realloc that moves */
	uintptr_t realloc_from;
	uint64_t realloc_from_phys;
	int realloc_to;		/* index into bufs */
	bool realloc_moved, realloc_kept;
	/* the device chunk */
	int devfd;
	void *chunk;
	size_t chunk_size;
	uint64_t chunk_token;
	/* --device: libkheap's attachment and the device chunk's */
	const char *device;
	int lib_handle;		/* from kheap_attach(); 0 = none */
	struct kheap_attach att;	/* KHEAP_IOC_ATTACH on devfd */
	unsigned int n_dma_bad;
	/* libkheap's own account, after all allocations */
	struct kheap_stats stats;
	bool have_stats;
	/* tallies */
	unsigned int n_agree, n_hidden, n_mismatch, n_absent;
	bool ok;
};

static const char hello[] = "Hello, kheap!";
static const char hello_realloc[] = "Hello, realloc!";
static const char hello_query[] = "Hello, QUERY!";

static bool phys_known(const struct mapview *mv)
{
	return mv->have_info && mv->info.pool_phys != 0;
}

/* ---- building the buffers ------------------------------------------------ */

static struct buf *add_buf(struct mapview *mv, void *p, size_t size, const char *via)
{
	struct buf *b = &mv->bufs[mv->nbufs];

	memset(b, 0, sizeof(*b));
	b->name = (char)('a' + mv->nbufs);
	b->p = p;
	b->size = size;
	b->via = via;
	mv->nbufs++;
	return b;
}

static int alloc_lib_buffers(struct mapview *mv, unsigned int n)
{
	static const size_t extra[] = { 1000, 8199, 256 << 10, 48, 100000, 1 << 20 };
	size_t page = (size_t)mv->page;

	for (unsigned int i = 0; i < n; i++) {
		struct buf *b;
		size_t size;
		void *p;

		switch (i) {
		case 0:
			size = 20;
			p = kheap_malloc(size);
			if (p)
				memcpy(p, hello, sizeof(hello));
			break;
		case 1:
			size = 3 * page + 100;
			p = kheap_calloc(1, size);
			break;
		case 2:
			size = 64 << 10;
			p = kheap_aligned_alloc(size, size);
			break;
		default:
			size = extra[(i - 3) % (sizeof(extra) / sizeof(extra[0]))];
			p = kheap_malloc(size);
			break;
		}
		if (!p) {
			errmsg("map: libkheap could not allocate %zu bytes: %s", size,
			       strerror(errno));
			return -1;
		}
		b = add_buf(mv, p, size, "kheap_phys");
		if (i == 0) {
			b->text = hello;
			snprintf(b->call, sizeof(b->call), "kheap_malloc(%zu)", size);
		} else if (i == 1) {
			snprintf(b->call, sizeof(b->call), "kheap_calloc(1, %zu)", size);
		} else if (i == 2) {
			snprintf(b->call, sizeof(b->call), "kheap_aligned_alloc(%zu, %zu)",
				 size, size);
		} else {
			memset(p, (int)(0x40 + i), size);
			snprintf(b->call, sizeof(b->call), "kheap_malloc(%zu)", size);
		}
	}
	return 0;
}

/*
 * A small block with a neighbour right behind it cannot grow in place, so
 * growing it far beyond its size class moves it.  Should the allocator
 * still manage in place, grow further, a few times.
 */
static int realloc_that_moves(struct mapview *mv, void **blocker)
{
	size_t grow[] = { 2 * (size_t)mv->page + 1, 64 << 10, 1 << 20 };
	unsigned char *p = kheap_malloc(32);
	struct buf *b;
	size_t size = 32;

	*blocker = kheap_malloc(32);
	if (!p || !*blocker) {
		errmsg("map: libkheap could not allocate 32 bytes: %s", strerror(errno));
		kheap_free(p);
		return -1;
	}
	memcpy(p, hello_realloc, sizeof(hello_realloc));
	mv->realloc_from = (uintptr_t)p;
	mv->realloc_from_phys = kheap_phys(p);
	for (unsigned int i = 0; i < sizeof(grow) / sizeof(grow[0]); i++) {
		unsigned char *q = kheap_realloc(p, grow[i]);

		if (!q) {
			errmsg("map: kheap_realloc(%p, %zu) failed: %s", (void *)p, grow[i],
			       strerror(errno));
			kheap_free(p);
			return -1;
		}
		p = q;
		size = grow[i];
		if ((uintptr_t)p != mv->realloc_from)
			break;
	}
	mv->realloc_moved = (uintptr_t)p != mv->realloc_from;
	mv->realloc_kept = !memcmp(p, hello_realloc, sizeof(hello_realloc));
	mv->realloc_to = (int)mv->nbufs;
	b = add_buf(mv, p, size, "kheap_phys");
	b->text = hello_realloc;
	snprintf(b->call, sizeof(b->call), "kheap_realloc(%#" PRIxPTR ", %zu)",
		 mv->realloc_from, size);
	return 0;
}

/* One chunk straight from the device, so that QUERY can answer for it. */
static int device_chunk(struct mapview *mv)
{
	struct kheap_alloc a = { .size = 2 * (uint64_t)mv->page };
	struct buf *b;

	if (ioctl(mv->devfd, KHEAP_IOC_ALLOC, &a)) {
		errmsg("map: KHEAP_IOC_ALLOC: %s", strerror(errno));
		return -1;
	}
	mv->chunk_token = a.token;
	mv->chunk_size = a.size_out;
	mv->chunk = mmap(NULL, mv->chunk_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 mv->devfd, (off_t)a.token);
	if (mv->chunk == MAP_FAILED) {
		errmsg("map: mmap of chunk %#llx: %s", (unsigned long long)a.token,
		       strerror(errno));
		mv->chunk = NULL;
		return -1;
	}
	memcpy(mv->chunk, hello_query, sizeof(hello_query));
	b = add_buf(mv, mv->chunk, mv->chunk_size, "QUERY");
	b->text = hello_query;
	b->usable = mv->chunk_size;
	b->phys = a.phys;
	snprintf(b->call, sizeof(b->call), "ioctl(ALLOC, %zu) + mmap", mv->chunk_size);
	return 0;
}

/* ---- translating and checking -------------------------------------------- */

static uint64_t translate(struct mapview *mv, const struct buf *b, uintptr_t addr)
{
	if (b->via[0] == 'Q') {
		struct kheap_query q = { .addr = addr };

		if (ioctl(mv->devfd, KHEAP_IOC_QUERY, &q))
			return 0;
		return q.phys;
	}
	return kheap_phys((const void *)addr);
}

static int check_buf(struct mapview *mv, struct buf *b)
{
	uintptr_t start = (uintptr_t)b->p, page = (uintptr_t)mv->page;
	uintptr_t first = start & ~(page - 1);
	uintptr_t end;

	if (!b->usable)
		b->usable = kheap_malloc_usable_size(b->p);
	if (!b->usable)
		b->usable = b->size;
	end = start + b->usable;
	if (b->via[0] != 'Q')
		b->phys = kheap_phys(b->p);
	b->npages = (end - first + page - 1) / page;
	b->pages = calloc(b->npages, sizeof(*b->pages));
	if (!b->pages)
		return -ENOMEM;

	/* Contiguity, byte by byte at every page edge and at both ends. */
	b->contiguous = true;
	if (b->phys) {
		for (uintptr_t a = first; a < end; a += page) {
			uintptr_t probe[3] = { a > start ? a - 1 : start,
					       a > start ? a : start,
					       (a + page < end ? a + page : end) - 1 };

			for (int k = 0; k < 3; k++)
				if (translate(mv, b, probe[k]) != b->phys + (probe[k] - start))
					b->contiguous = false;
		}
	}

	for (size_t i = 0; i < b->npages; i++) {
		struct page_row *r = &b->pages[i];
		uintptr_t in = first + i * page;
		uintptr_t probe = in < start ? start : in;
		uint64_t lib = translate(mv, b, probe);
		int ret;

		/* Touch, so that the page is present for pagemap. */
		(void)*(volatile unsigned char *)probe;
		r->virt = in;
		r->phys = lib ? lib - (probe - in) : 0;
		ret = mv->pagemap_fd >= 0 ? pagemap_phys(mv->pagemap_fd, in, &r->pagemap)
					  : mv->pagemap_fd;
		if (ret == PAGEMAP_HIDDEN || (ret < 0 && ret != -ENOENT)) {
			r->v = V_HIDDEN;
			mv->n_hidden++;
		} else if (ret == -ENOENT) {
			r->v = V_ABSENT;
			mv->n_absent++;
		} else if (r->phys && r->phys == r->pagemap) {
			r->v = V_AGREE;
			mv->n_agree++;
		} else if (!r->phys) {
			r->v = V_HIDDEN;	/* libkheap's view is restricted */
			mv->n_hidden++;
		} else {
			r->v = V_MISMATCH;
			mv->n_mismatch++;
		}
	}

	b->in_pool = true;
	if (b->phys && phys_known(mv))
		b->in_pool = b->phys >= mv->info.pool_phys &&
			     b->phys + b->usable <= mv->info.pool_phys + mv->info.pool_size;
	b->roundtrip = true;
	if (b->phys && b->via[0] != 'Q')
		b->roundtrip = kheap_phys_to_virt(b->phys) == (void *)b->p;

	/* Physical RAM: read the text back at its physical address. */
	if (b->text && b->phys) {
		size_t len = strlen(b->text) + 1;
		char got[64];

		if (mv->kcore && kcore_read(mv->kcore, b->phys, got, len) == 0) {
			b->ram_source = "kcore";
			b->ram_match = !memcmp(got, b->text, len);
		} else if (b->via[0] != 'Q') {
			const char *v = kheap_phys_to_virt(b->phys);

			b->ram_source = "kheap_phys_to_virt";
			b->ram_match = v && !memcmp(v, b->text, len);
		}
	}

	if (!b->contiguous || !b->in_pool || !b->roundtrip ||
	    (b->ram_source && !b->ram_match))
		mv->ok = false;
	return 0;
}

/* ---- the device's view (--device) ------------------------------------------ */

/* What a refused ATTACH usually means, in the terms of kheapctl devices. */
static const char *attach_hint(int err)
{
	switch (err) {
	case ENODEV: return " (kheapctl devices lists the devices there are)";
	case EBUSY: return " (its DMA is owned by vfio-pci or blocked by the IOMMU: "
			   "use kheap_vfio_map(); see kheapctl devices)";
	case ERANGE: return " (memory already held lies beyond its reach: load kheap "
			    "with max_phys=, see kheapctl devices)";
	case ENOTTY: return " (this kheap module has no KHEAP_IOC_ATTACH: ABI 2 is needed)";
	case EINVAL: return " (give a PCI address such as 0000:00:03.0, or BUS:NAME)";
	}
	return "";
}

/*
 * Before any allocation, so that every chunk is placed where the device
 * reaches: libkheap's file through kheap_attach(), and our own file, which
 * holds the device chunk, through the ioctl (which also tells the mode
 * and the mask).
 */
static int attach_device(struct mapview *mv)
{
	int err;

	if (strlen(mv->device) >= KHEAP_DEVICE_NAME_MAX) {
		errmsg("map: device name \"%s\" is too long", mv->device);
		return -1;
	}
	mv->att.name = (uintptr_t)mv->device;
	if (ioctl(mv->devfd, KHEAP_IOC_ATTACH, &mv->att)) {
		err = errno;
		errmsg("map: KHEAP_IOC_ATTACH %s: %s%s", mv->device, strerror(err),
		       attach_hint(err));
		return -1;
	}
	mv->lib_handle = kheap_attach(mv->device);
	if (mv->lib_handle <= 0) {
		err = errno;
		mv->lib_handle = 0;
		errmsg("map: kheap_attach(\"%s\"): %s%s", mv->device, strerror(err),
		       attach_hint(err));
		return -1;
	}
	return 0;
}

/* Device address of the byte at @addr of @b; 0 with errno on failure. */
static uint64_t dma_of(struct mapview *mv, const struct buf *b, uintptr_t addr)
{
	if (b->via[0] == 'Q') {
		struct kheap_query q = { .addr = addr };
		struct kheap_dma_addr d = { .handle = mv->att.handle };

		if (ioctl(mv->devfd, KHEAP_IOC_QUERY, &q))
			return 0;
		d.token = q.token;
		if (ioctl(mv->devfd, KHEAP_IOC_DMA_ADDR, &d))
			return 0;
		return d.dma_addr + q.offset;
	}
	return kheap_dma_addr((const void *)addr, mv->lib_handle);
}

/*
 * The promise of kheap_dma_addr(): dma(p + i) == dma(p) + i for every byte.
 * Checked at the second byte, both sides of the first page edge, the middle
 * and the last byte; and the last byte must lie under the device's mask.
 */
static void check_dma(struct mapview *mv, struct buf *b)
{
	size_t to_edge = (size_t)mv->page - ((uintptr_t)b->p & ((uintptr_t)mv->page - 1));
	size_t off[] = { 1, to_edge - 1, to_edge, b->usable / 2, b->usable - 1 };

	errno = 0;
	b->dma = dma_of(mv, b, (uintptr_t)b->p);
	if (!b->dma) {
		b->dma_errno = errno ? errno : EINVAL;
		mv->n_dma_bad++;
		mv->ok = false;
		return;
	}
	b->dma_contiguous = true;
	for (size_t k = 0; k < sizeof(off) / sizeof(off[0]); k++) {
		bool seen = off[k] == 0 || off[k] >= b->usable;
		uint64_t got;

		for (size_t m = 0; m < k && !seen; m++)
			seen = off[m] == off[k];
		if (seen)
			continue;
		got = dma_of(mv, b, (uintptr_t)b->p + off[k]);
		b->dma_probes++;
		if (got != b->dma + off[k]) {
			b->dma_contiguous = false;
			b->dma_bad_off = off[k];
			b->dma_bad_got = got;
			break;
		}
	}
	b->dma_reachable = b->dma + (b->usable - 1) <= mv->att.dma_mask;
	if (!b->dma_contiguous || !b->dma_reachable) {
		mv->n_dma_bad++;
		mv->ok = false;
	}
}

static const char *dma_mode_name(uint64_t mode)
{
	switch (mode) {
	case KHEAP_DMA_IOMMU: return "iommu";
	case KHEAP_DMA_DIRECT: return "direct";
	}
	return "unknown";
}

/* ---- text output ----------------------------------------------------------- */

static void print_hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x%s", p[i], i + 1 < n ? " " : "");
}

static void print_process_view(const struct mapview *mv)
{
	char line[512], sz[32];
	FILE *f = fopen("/proc/self/maps", "re");

	printf("Process view: virtual addresses of pid %d\n", (int)getpid());
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off;
		char perms[8], path[256] = "";

		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %255s", &s, &e, perms, &off,
			   path) < 4 ||
		    (strcmp(path, KHEAP_DEVNODE) && strcmp(path, KHEAP_MAPFILE_NAME)))
			continue;
		printf("  %012llx-%012llx %s %s offset %#llx (%s)\n", s, e, perms, path, off,
		       fmt_size(e - s, sz, sizeof(sz)));
		for (unsigned int i = 0; i < mv->nbufs; i++) {
			const struct buf *b = &mv->bufs[i];

			if ((uintptr_t)b->p < s || (uintptr_t)b->p >= e)
				continue;
			printf("    %c  %012" PRIxPTR "  %-10s %-34s", b->name, (uintptr_t)b->p,
			       fmt_size(b->usable, sz, sizeof(sz)), b->call);
			if (b->text)
				printf(" \"%s\"", (const char *)b->p);
			printf("\n");
		}
	}
	if (f)
		fclose(f);
	if (mv->have_stats)
		printf("  libkheap holds %llu chunk%s of the pool (%s), arenas of %s; "
		       "%llu bytes in use\n",
		       (unsigned long long)mv->stats.chunks_held,
		       mv->stats.chunks_held == 1 ? "" : "s",
		       fmt_size(mv->stats.bytes_held, sz, sizeof(sz)),
		       fmt_size(mv->stats.arena_size, line, sizeof(line)),
		       (unsigned long long)mv->stats.bytes_in_use);
	if (mv->realloc_moved)
		printf("  realloc moved %c from %012" PRIxPTR " to %012" PRIxPTR
		       ", contents %s\n", mv->bufs[mv->realloc_to].name, mv->realloc_from,
		       (uintptr_t)mv->bufs[mv->realloc_to].p,
		       mv->realloc_kept ? "kept" : "LOST");
	else
		printf("  realloc grew %c in place (it did not have to move)\n",
		       mv->bufs[mv->realloc_to].name);
}

static const char *mark(enum verdict v)
{
	switch (v) {
	case V_AGREE: return "✓";
	case V_HIDDEN: return "? hidden";
	case V_ABSENT: return "✗ not present";
	case V_MISMATCH: return "✗ MISMATCH";
	}
	return "";
}

static void print_row(const struct buf *b, const struct page_row *r, bool first)
{
	printf("  %c  %012" PRIxPTR "  %-10s  ", first ? b->name : ' ', r->virt, b->via);
	if (r->phys)
		printf("%012" PRIx64, r->phys);
	else
		printf("%-12s", "hidden");
	if (r->v == V_HIDDEN || r->v == V_ABSENT)
		printf("  %-12s  ", "-");
	else
		printf("  %012" PRIx64 "  ", r->pagemap);
	printf("%s\n", mark(r->v));
}

static void print_mmu_view(const struct mapview *mv)
{
	printf("\nMMU view: virtual page -> physical page (✓: the allocator's answer "
	       "equals the page tables')\n");
	printf("  %-1s  %-12s  %-10s  %-12s  %-12s\n", "", "virtual", "asked", "physical",
	       "pagemap");
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];
		size_t shown = b->npages <= MAX_PAGES_SHOWN + 1 ? b->npages : MAX_PAGES_SHOWN;
		size_t agree = 0, hidden = 0, rest = b->npages - shown;

		for (size_t k = 0; k < b->npages; k++) {
			if (k < shown)
				print_row(b, &b->pages[k], k == 0);
			else if (b->pages[k].v == V_AGREE)
				agree++;
			else if (b->pages[k].v == V_HIDDEN)
				hidden++;
		}
		if (rest && agree == rest)
			printf("     ... %zu more pages of %c, all ✓\n", rest, b->name);
		else if (rest && hidden == rest)
			printf("     ... %zu more pages of %c, all hidden\n", rest, b->name);
		else if (rest)
			printf("     ... %zu more pages of %c: %zu ✓, %zu hidden, %zu ✗ (see --json)\n",
			       rest, b->name, agree, hidden, rest - agree - hidden);
		if (b->phys && !b->contiguous)
			printf("     %c is NOT physically contiguous\n", b->name);
	}
	printf("  %u pages: %u agree, %u hidden, %u mismatched, %u not present\n",
	       mv->n_agree + mv->n_hidden + mv->n_mismatch + mv->n_absent, mv->n_agree,
	       mv->n_hidden, mv->n_mismatch, mv->n_absent);
	if (mv->n_hidden)
		printf("  hidden: /proc/self/pagemap shows page frames only to CAP_SYS_ADMIN, "
		       "and with\n  restrict_phys=1 the module gives physical addresses only "
		       "to CAP_SYS_RAWIO\n");
}

/*
 * The same, zoomed onto libkheap's buffers: each paints the cells its
 * bytes cover with its letter.
 */
static void zoom_bar(const struct mapview *mv)
{
	uint64_t lo = UINT64_MAX, hi = 0, cell;
	char cells[POOL_CELLS + 1], sz[32];

	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];

		if (!b->phys || !b->in_pool || b->via[0] == 'Q')
			continue;
		if (b->phys < lo)
			lo = b->phys;
		if (b->phys + b->usable > hi)
			hi = b->phys + b->usable;
	}
	if (hi <= lo)
		return;
	lo &= ~(uint64_t)(mv->page - 1);
	hi = (hi + (uint64_t)mv->page - 1) & ~(uint64_t)(mv->page - 1);
	cell = (hi - lo + POOL_CELLS - 1) / POOL_CELLS;
	memset(cells, '.', POOL_CELLS);
	cells[POOL_CELLS] = '\0';
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];
		uint64_t first, last;

		if (!b->phys || !b->in_pool || b->via[0] == 'Q')
			continue;
		first = (b->phys - lo) / cell;
		last = (b->phys + b->usable - 1 - lo) / cell;
		for (uint64_t c = first; c <= last && c < POOL_CELLS; c++)
			cells[c] = cells[c] == '.' ? b->name : '+';
	}
	printf("  [%s]  zoom %012" PRIx64 "-%012" PRIx64 ", one cell = %s\n", cells, lo,
	       hi - 1, fmt_size(cell, sz, sizeof(sz)));
}

/* The pool's exported dma-bufs (anyone's), where the module says. */
static void print_dmabufs(uint64_t base)
{
	struct dmabufs d;
	char sz[32];

	if (read_dmabufs(&d))
		return;	/* a module before ABI 4 */
	printf("  dma-bufs exported from the pool: %" PRIu64 "%s\n", d.count,
	       d.count && !d.have_extents ? " (where: root only)" : "");
	for (size_t i = 0; i < d.n; i++)
		printf("     %012" PRIx64 "-%012" PRIx64 "  pool+%#-10" PRIx64 " %s\n",
		       base + d.ext[i].offset,
		       base + d.ext[i].offset + d.ext[i].length - 1,
		       d.ext[i].offset, fmt_size(d.ext[i].length, sz, sizeof(sz)));
	if (d.truncated)
		printf("     ...\n");
}

static void print_ram_view(const struct mapview *mv)
{
	char sz[32], cells[POOL_CELLS + 1];
	uint64_t base = mv->info.pool_phys, size = mv->info.pool_size;

	printf("\nPhysical RAM: ");
	if (!phys_known(mv)) {
		printf("the pool's physical base is hidden from this user "
		       "(restrict_phys=1 without CAP_SYS_RAWIO)\n");
		return;
	}
	printf("pool %012" PRIx64 "-%012" PRIx64 " (%s, %s)\n", base, base + size - 1,
	       fmt_size(size, sz, sizeof(sz)), pool_source_name(mv->info.pool_source));
	memset(cells, '.', POOL_CELLS);
	cells[POOL_CELLS] = '\0';
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];
		uint64_t c;

		if (!b->phys || !b->in_pool)
			continue;
		c = (b->phys - base) * POOL_CELLS / size;
		cells[c] = cells[c] == '.' ? b->name : '+';
	}
	printf("  [%s]  one cell = %s; + = several\n", cells,
	       fmt_size(size / POOL_CELLS, sz, sizeof(sz)));
	zoom_bar(mv);
	print_dmabufs(base);
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];

		printf("  %c  %012" PRIx64 "  pool+%#-10" PRIx64 " %s%s\n", b->name, b->phys,
		       b->phys - base, b->in_pool ? "inside the pool" : "OUTSIDE THE POOL",
		       b->contiguous ? ", contiguous" : ", NOT contiguous");
		if (!b->text)
			continue;
		printf("     bytes: ");
		print_hex(b->p, strlen(b->text) + 1);
		printf("  \"%s\"\n", b->text);
		if (b->ram_source && !strcmp(b->ram_source, "kcore"))
			printf("     read at physical %012" PRIx64 " via /proc/kcore: %s\n",
			       b->phys, b->ram_match ? "same bytes ✓" : "DIFFERENT ✗");
		else if (b->ram_source)
			printf("     kheap_phys_to_virt(%012" PRIx64 ") reads: %s "
			       "(/proc/kcore: %s)\n", b->phys,
			       b->ram_match ? "same bytes ✓" : "DIFFERENT ✗",
			       mv->kcore ? "the pool is not System RAM there"
					 : strerror(-mv->kcore_err));
		else
			printf("     not read back: /proc/kcore %s\n",
			       mv->kcore ? "does not cover the pool" : strerror(-mv->kcore_err));
	}
}

static void print_device_view(const struct mapview *mv)
{
	bool all_phys = true;

	printf("\nDevice view: %s, ", mv->device);
	if (mv->att.mode == KHEAP_DMA_IOMMU)
		printf("behind a translating IOMMU: device addresses are IOVAs\n");
	else if (mv->att.mode == KHEAP_DMA_DIRECT)
		printf("no IOMMU translation: device addresses are bus addresses\n");
	else
		printf("mode %llu unknown to kheapctl\n", (unsigned long long)mv->att.mode);
	printf("  DMA mask %#llx, kheap_attach() handle %d\n",
	       (unsigned long long)mv->att.dma_mask, mv->lib_handle);
	printf("  %-1s  %-12s  %-12s  %-12s  %s\n", "", "virtual", "physical", "device",
	       "dma(p + i) == dma(p) + i");
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];

		printf("  %c  %012" PRIxPTR "  ", b->name, (uintptr_t)b->p);
		if (b->phys)
			printf("%012" PRIx64 "  ", b->phys);
		else
			printf("%-12s  ", "hidden");
		if (!b->dma) {
			printf("%-12s  ✗ %s: %s\n", "-",
			       b->via[0] == 'Q' ? "DMA_ADDR" : "kheap_dma_addr",
			       strerror(b->dma_errno));
			all_phys = false;
			continue;
		}
		if (b->dma != b->phys)
			all_phys = false;
		printf("%012" PRIx64 "  ", b->dma);
		if (b->dma_contiguous)
			printf("✓ at %u offset%s up to the last byte", b->dma_probes,
			       b->dma_probes == 1 ? "" : "s");
		else
			printf("✗ at +%#" PRIxPTR " it is %#" PRIx64 ", not %#" PRIx64,
			       b->dma_bad_off, b->dma_bad_got, b->dma + b->dma_bad_off);
		printf("%s\n", b->dma_reachable ? "" : "; ✗ ENDS ABOVE THE DMA MASK");
	}
	if (mv->att.mode == KHEAP_DMA_IOMMU)
		printf("  give the device these addresses, not the physical ones: the IOMMU "
		       "maps exactly\n  this process's chunks for it\n");
	else if (all_phys)
		printf("  here the device address of every buffer is its physical address\n");
}

/* ---- JSON output ----------------------------------------------------------- */

static void json_opt_u64(struct json *j, const char *key, bool known, uint64_t v)
{
	if (known)
		json_u64(j, key, v);
	else
		json_null(j, key);
}

static void print_json(const struct mapview *mv)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_bool(&j, "ok", mv->ok);
	json_u64(&j, "pid", (uint64_t)getpid());
	json_u64(&j, "page_size", (uint64_t)mv->page);
	json_object_begin(&j, "pool");
	json_opt_u64(&j, "phys", phys_known(mv), mv->info.pool_phys);
	json_u64(&j, "size", mv->info.pool_size);
	json_string(&j, "source", pool_source_name(mv->info.pool_source));
	json_object_end(&j);
	if (mv->device) {
		json_object_begin(&j, "device");
		json_string(&j, "name", mv->device);
		json_u64(&j, "handle", (uint64_t)mv->lib_handle);
		json_string(&j, "mode", dma_mode_name(mv->att.mode));
		json_u64(&j, "dma_mask", mv->att.dma_mask);
		json_u64(&j, "bad", mv->n_dma_bad);
		json_object_end(&j);
	} else {
		json_null(&j, "device");
	}

	json_array_begin(&j, "buffers");
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		const struct buf *b = &mv->bufs[i];
		char name[2] = { b->name, '\0' };

		json_object_begin(&j, NULL);
		json_string(&j, "name", name);
		json_string(&j, "call", b->call);
		json_string(&j, "via", b->via);
		json_u64(&j, "size", b->size);
		json_u64(&j, "usable", b->usable);
		json_u64(&j, "virt", (uintptr_t)b->p);
		json_opt_u64(&j, "phys", b->phys != 0, b->phys);
		json_opt_u64(&j, "pool_offset", b->phys && phys_known(mv),
			     b->phys - mv->info.pool_phys);
		json_bool(&j, "contiguous", b->contiguous);
		json_bool(&j, "in_pool", b->in_pool);
		if (mv->device) {
			json_object_begin(&j, "dma");
			json_opt_u64(&j, "addr", b->dma != 0, b->dma);
			json_string(&j, "error", b->dma ? NULL : strerror(b->dma_errno));
			json_u64(&j, "offsets_checked", b->dma_probes);
			json_bool(&j, "contiguous", b->dma && b->dma_contiguous);
			json_bool(&j, "reachable", b->dma && b->dma_reachable);
			json_object_end(&j);
		} else {
			json_null(&j, "dma");
		}
		if (b->text) {
			json_string(&j, "text", b->text);
			json_string(&j, "read_via", b->ram_source);
			if (b->ram_source)
				json_bool(&j, "read_match", b->ram_match);
			else
				json_null(&j, "read_match");
		}
		json_array_begin(&j, "pages");
		for (size_t k = 0; k < b->npages; k++) {
			const struct page_row *r = &b->pages[k];

			json_object_begin(&j, NULL);
			json_u64(&j, "virt", r->virt);
			json_opt_u64(&j, "phys", r->phys != 0, r->phys);
			json_opt_u64(&j, "pagemap", r->v == V_AGREE || r->v == V_MISMATCH,
				     r->pagemap);
			if (r->v == V_AGREE || r->v == V_MISMATCH)
				json_bool(&j, "agree", r->v == V_AGREE);
			else
				json_null(&j, "agree");
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);

	json_object_begin(&j, "realloc");
	json_u64(&j, "from_virt", mv->realloc_from);
	json_opt_u64(&j, "from_phys", mv->realloc_from_phys != 0, mv->realloc_from_phys);
	json_string_n(&j, "to", &mv->bufs[mv->realloc_to].name, 1);
	json_bool(&j, "moved", mv->realloc_moved);
	json_bool(&j, "contents_kept", mv->realloc_kept);
	json_object_end(&j);

	if (mv->have_stats) {
		json_object_begin(&j, "libkheap");
		json_u64(&j, "bytes_in_use", mv->stats.bytes_in_use);
		json_u64(&j, "bytes_held", mv->stats.bytes_held);
		json_u64(&j, "chunks_held", mv->stats.chunks_held);
		json_u64(&j, "arena_size", mv->stats.arena_size);
		json_object_end(&j);
	}

	json_object_begin(&j, "pages");
	json_u64(&j, "agree", mv->n_agree);
	json_u64(&j, "hidden", mv->n_hidden);
	json_u64(&j, "mismatch", mv->n_mismatch);
	json_u64(&j, "absent", mv->n_absent);
	json_object_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

/* ---- the command ------------------------------------------------------------- */

int cmd_map(int argc, char **argv)
{
	struct mapview *mv;
	const char *device = NULL;
	void *blocker = NULL;
	unsigned int n = 3;
	bool json = false;
	int rc = KC_FAIL;

	for (int i = 1; i < argc; i++) {
		uint64_t v;

		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--device") || !strncmp(argv[i], "--device=", 9)) {
			device = argv[i][8] ? argv[i] + 9 : i + 1 < argc ? argv[++i] : "";
			if (!*device) {
				usage_error("map: --device needs a device name (0000:00:03.0)");
				return KC_USAGE;
			}
		} else if (parse_u64(argv[i], &v) == 0 && v >= 1 && v <= MAX_BUFS) {
			n = (unsigned int)v;
		} else {
			usage_error("map: expected --json, --device DEV or a buffer count from 1 "
				    "to %d, not \"%s\"", MAX_BUFS, argv[i]);
			return KC_USAGE;
		}
	}

	mv = calloc(1, sizeof(*mv));
	if (!mv) {
		errmsg("map: out of memory");
		return KC_FAIL;
	}
	mv->ok = true;
	mv->device = device;
	mv->page = sysconf(_SC_PAGESIZE);
	mv->pagemap_fd = pagemap_open();
	mv->kcore = kcore_open(&mv->kcore_err);

	mv->devfd = open(KHEAP_DEVNODE, O_RDWR | O_CLOEXEC);
	if (mv->devfd < 0) {
		errmsg("map: %s: %s%s", KHEAP_DEVNODE, strerror(errno),
		       errno == ENOENT ? " (is the module loaded? kheapctl load)" : "");
		goto out;
	}
	if (ioctl(mv->devfd, KHEAP_IOC_INFO, &mv->info)) {
		errmsg("map: KHEAP_IOC_INFO: %s", strerror(errno));
		goto out;
	}
	mv->have_info = true;

	if (mv->device && attach_device(mv))
		goto out;
	if (alloc_lib_buffers(mv, n) || realloc_that_moves(mv, &blocker) ||
	    device_chunk(mv))
		goto out;
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		if (check_buf(mv, &mv->bufs[i])) {
			errmsg("map: out of memory");
			goto out;
		}
		if (mv->device)
			check_dma(mv, &mv->bufs[i]);
	}
	if (mv->n_mismatch || mv->n_absent || !mv->realloc_kept)
		mv->ok = false;
	mv->have_stats = kheap_stats(&mv->stats) == 0;

	if (json) {
		print_json(mv);
	} else {
		print_process_view(mv);
		print_mmu_view(mv);
		print_ram_view(mv);
		if (mv->device)
			print_device_view(mv);
		if (!mv->ok)
			printf("\nmap: FAILED, see the marks above\n");
		else if (mv->n_agree)
			printf("\nmap: every checked address agrees\n");
		else
			printf("\nmap: nothing to check: physical addresses are hidden from "
			       "this user (run as root for the full picture)\n");
	}
	rc = mv->ok ? KC_OK : KC_FAIL;
out:
	for (unsigned int i = 0; i < mv->nbufs; i++) {
		struct buf *b = &mv->bufs[i];

		free(b->pages);
		if (b->via[0] != 'Q')
			kheap_free(b->p);
	}
	kheap_free(blocker);
	if (mv->lib_handle)
		kheap_detach(mv->lib_handle);
	if (mv->chunk)
		munmap(mv->chunk, mv->chunk_size);
	if (mv->devfd >= 0)
		close(mv->devfd);
	if (mv->pagemap_fd >= 0)
		close(mv->pagemap_fd);
	kcore_close(mv->kcore);
	free(mv);
	return rc;
}
