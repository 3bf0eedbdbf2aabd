// SPDX-License-Identifier: GPL-2.0-only
/*
 * Obtaining and returning kheap's physically contiguous pool.
 *
 * Three sources, tried in this order by source=auto:
 *
 * reserved: a range the administrator kept away from the page allocator at
 *	boot (memmap=SIZE$ADDR) and handed to us with phys= and size=.  It
 *	is not in the kernel's direct map: the kernel reaches it through a
 *	memremap() mapping, and user space maps it as raw PFNs.
 * contig: a free range taken from a populated zone at load time with
 *	alloc_contig_range(), which migrates movable pages out of the way.
 * buddy: a single block from the page allocator, for small pools only.
 *
 * The pages of a contig or buddy pool are split order-0 pages with a
 * reference count of one each, held by the pool until it is destroyed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/nodemask.h>
#include <linux/overflow.h>
#include <linux/page-flags.h>
#include <linux/pageblock-flags.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include <linux/suspend.h>

#include "kheap.h"

static const char * const kheap_source_names[] = {
	[KHEAP_SOURCE_AUTO]	= "auto",
	[KHEAP_SOURCE_RESERVED]	= "reserved",
	[KHEAP_SOURCE_CONTIG]	= "contig",
	[KHEAP_SOURCE_BUDDY]	= "buddy",
};

/**
 * kheap_pool_source_name() - name of a pool source
 * @source: %KHEAP_SOURCE_AUTO or one of &enum kheap_pool_source
 *
 * Return: the name used by the source= parameter and by sysfs.
 */
const char *kheap_pool_source_name(int source)
{
	if (source < 0 || source >= ARRAY_SIZE(kheap_source_names))
		return "unknown";
	return kheap_source_names[source];
}

/**
 * kheap_pool_parse_source() - parse the value of the source= parameter
 * @str: "auto", "reserved", "contig" or "buddy"
 *
 * Return: %KHEAP_SOURCE_AUTO or one of &enum kheap_pool_source, or -EINVAL.
 */
int kheap_pool_parse_source(const char *str)
{
	return sysfs_match_string(kheap_source_names, str);
}

/* Format @size the way memparse() reads it back, for messages. */
static void kheap_format_size(char *buf, size_t len, u64 size)
{
	if (size && IS_ALIGNED(size, SZ_1G))
		snprintf(buf, len, "%lluG", size >> 30);
	else if (size && IS_ALIGNED(size, SZ_1M))
		snprintf(buf, len, "%lluM", size >> 20);
	else if (size && IS_ALIGNED(size, SZ_1K))
		snprintf(buf, len, "%lluK", size >> 10);
	else
		snprintf(buf, len, "%llu", size);
}

/*
 * A hibernation image holds the RAM the kernel manages; memmap= memory is
 * not part of it, so a reserved pool would come back from resume with
 * whatever the firmware left there, under mappings that promise the old
 * contents.  Refuse hibernation instead, while such a pool exists.
 */
static int kheap_pool_pm_event(struct notifier_block *nb,
			       unsigned long action, void *data)
{
	struct kheap_pool *pool = container_of(nb, struct kheap_pool, pm_nb);

	if (action != PM_HIBERNATION_PREPARE)
		return NOTIFY_DONE;
	pr_warn("hibernation refused: the %zu KiB reserved pool would not be saved (unload kheap first)\n",
		pool->size / SZ_1K);
	return notifier_from_errno(-EBUSY);
}

/*
 * Adopt the range [@phys, @phys + @size) that the administrator reserved
 * at boot.  Everything is validated before anything is claimed.
 */
static int kheap_pool_adopt_reserved(struct kheap_pool *pool, u64 phys,
				     u64 size)
{
	void *vaddr;
	u64 end;

	if (!PAGE_ALIGNED(phys) || !PAGE_ALIGNED(size)) {
		pr_err("phys=%#llx and size=%llu must be multiples of the page size (%lu)\n",
		       phys, size, PAGE_SIZE);
		return -EINVAL;
	}
	/* genalloc uses address 0 to report failure. */
	if (!phys) {
		pr_err("phys=0 cannot be used\n");
		return -EINVAL;
	}
	if (check_add_overflow(phys, size, &end) ||
	    end - 1 != (phys_addr_t)(end - 1)) {
		pr_err("phys=%#llx size=%llu is beyond the physical address space\n",
		       phys, size);
		return -EINVAL;
	}
	if (region_intersects(phys, size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT) {
		pr_err("[%#llx-%#llx] is not reserved: it overlaps System RAM (boot with memmap=SIZE$ADDR first)\n",
		       phys, end - 1);
		return -EINVAL;
	}
	/*
	 * memmap=SIZE$ADDR makes the range "Reserved" in the firmware's
	 * memory map.  Anything else the kernel knows there - a PCI BAR,
	 * ACPI tables, nothing at all - is not RAM we may hand out.  (A
	 * range that is partly Reserved and partly unlisted cannot be told
	 * apart from a whole one: region_intersects() ignores holes.)
	 */
	if (region_intersects(phys, size, IORESOURCE_MEM,
			      IORES_DESC_RESERVED) != REGION_INTERSECTS) {
		pr_err("[%#llx-%#llx] is not RAM reserved with memmap=SIZE$ADDR (see /proc/iomem)\n",
		       phys, end - 1);
		return -EINVAL;
	}

	if (!request_mem_region(phys, size, KBUILD_MODNAME)) {
		pr_err("[%#llx-%#llx] is claimed by another driver\n",
		       phys, end - 1);
		return -EBUSY;
	}

	/*
	 * Not in the direct map: the kernel's accesses (zeroing, ptrace) go
	 * through this mapping, which also registers the range as write-back
	 * with PAT so that user mappings get the same memory type.
	 */
	vaddr = memremap(phys, size, MEMREMAP_WB);
	if (!vaddr) {
		pr_err("cannot map [%#llx-%#llx]\n", phys, end - 1);
		release_mem_region(phys, size);
		return -ENOMEM;
	}

	pool->source = KHEAP_SOURCE_RESERVED;
	pool->phys = phys;
	pool->size = size;
	pool->vaddr = vaddr;
	pool->pm_nb.notifier_call = kheap_pool_pm_event;
	register_pm_notifier(&pool->pm_nb);
	return 0;
}

/*
 * Is the page at @pfn obviously not allocatable from @zone?  This is only
 * a cheap filter, so that blocks that cannot possibly be migrated are
 * skipped without isolating anything; alloc_contig_range() has the final
 * word.
 */
static bool kheap_pfn_unusable(struct zone *zone, unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	return !page || page_zone(page) != zone || PageReserved(page) ||
	       PageSlab(page) || PageHuge(page) || PageHWPoison(page);
}

/* Pages asked of alloc_contig_range() at once while all goes well. */
#define KHEAP_CONTIG_BATCH	(SZ_64M >> PAGE_SHIFT)

/*
 * Allocate the @nr pages from @start, in batches of KHEAP_CONTIG_BATCH
 * pages.  When a batch fails, it is retried one pageblock at a time to
 * find the block that is in the way.
 *
 * Return: 0, -EBUSY with *@fail_pfn set to the first pfn of a block that
 * could not be allocated, or -EINTR.  On failure nothing stays allocated.
 */
static int kheap_contig_grab(unsigned long start, unsigned long nr,
			     unsigned long *fail_pfn)
{
	unsigned long pfn = start, fine_end = start, have = 0;

	while (have < nr) {
		unsigned long step = pfn < fine_end ? pageblock_nr_pages :
						      KHEAP_CONTIG_BATCH;

		step = min(step, nr - have);
		if (fatal_signal_pending(current)) {
			if (have)
				free_contig_range(start, have);
			return -EINTR;
		}
		cond_resched();

		if (!alloc_contig_range(pfn, pfn + step, MIGRATE_MOVABLE,
					GFP_KERNEL | __GFP_NOWARN)) {
			have += step;
			pfn += step;
			continue;
		}
		if (step > pageblock_nr_pages) {
			fine_end = pfn + step;
			continue;
		}

		pr_debug("contig: pfn %#lx: busy\n", pfn);
		if (have)
			free_contig_range(start, have);
		*fail_pfn = pfn;
		return -EBUSY;
	}
	return 0;
}

/*
 * Look for @nr free or movable pages in a row in @zone.
 *
 * Candidate runs start on pageblock boundaries.  Each one is first checked
 * with kheap_pfn_unusable() from its end backwards, so that the search
 * can resume right after the last obviously unusable page; only a run
 * that passes is handed to alloc_contig_range(), and a failure there moves
 * the search past the block that failed.  Stepping by pageblocks rather
 * than by the pool size keeps large pools findable.
 */
static int kheap_contig_scan_zone(struct kheap_pool *pool, struct zone *zone,
				  unsigned long nr, unsigned long limit_pfn)
{
	unsigned long zone_end = min(zone_end_pfn(zone), limit_pfn);
	/* Skip pfn 0: genalloc uses address 0 to report failure. */
	unsigned long run = ALIGN(max(zone->zone_start_pfn, 1UL),
				  pageblock_nr_pages);
	/* [run, checked) passed kheap_pfn_unusable() already. */
	unsigned long checked = run;
	unsigned long pfn, fail_pfn;
	int ret;

	while (run < zone_end && zone_end - run >= nr) {
		unsigned long end = run + nr;
		unsigned long low = max(run, checked);

		if (fatal_signal_pending(current))
			return -EINTR;

		for (pfn = end; pfn > low; pfn--) {
			if (kheap_pfn_unusable(zone, pfn - 1))
				break;
			if (!(pfn % SZ_1K))
				cond_resched();
		}
		checked = end;
		if (pfn > low) {
			/* pfn - 1 is in the way: no run can include it. */
			pr_debug("contig: pfn %#lx: unmovable\n", pfn - 1);
			run = ALIGN(pfn, pageblock_nr_pages);
			continue;
		}

		ret = kheap_contig_grab(run, nr, &fail_pfn);
		if (!ret) {
			pool->source = KHEAP_SOURCE_CONTIG;
			pool->phys = PFN_PHYS(run);
			pool->size = (size_t)nr << PAGE_SHIFT;
			return 0;
		}
		if (ret != -EBUSY)
			return ret;
		run = fail_pfn + pageblock_nr_pages;
	}
	return -ENOMEM;
}

/*
 * Zones in the order they are searched: ZONE_NORMAL, ZONE_DMA32, the rest.
 *
 * Never ZONE_MOVABLE (movablecore=, memory onlined movable): the pool's
 * pages are not on the LRU and cannot migrate, so a long-term pin of a
 * chunk there (io_uring fixed buffers, VFIO, RDMA) would retry migration
 * forever, and memory offlining would hang.  CMA pageblocks need no test
 * of ours: alloc_contig_range(MIGRATE_MOVABLE) refuses to isolate them.
 */
#define KHEAP_ZONE_RANKS	3
#define KHEAP_ZONE_NEVER	(-1)

static int kheap_zone_rank(const struct zone *zone)
{
	switch (zone_idx(zone)) {
	case ZONE_NORMAL:
		return 0;
#ifdef CONFIG_ZONE_DMA32
	case ZONE_DMA32:
		return 1;
#endif
	case ZONE_MOVABLE:
		return KHEAP_ZONE_NEVER;
	default:
		return 2;
	}
}

/* First pfn at or above @max_phys (0: no limit), for the scans. */
static unsigned long kheap_limit_pfn(u64 max_phys)
{
	if (!max_phys || PHYS_PFN(max_phys) > ULONG_MAX)
		return ULONG_MAX;
	return PHYS_PFN(max_phys);
}

static int kheap_pool_alloc_contig(struct kheap_pool *pool, size_t size,
				   u64 max_phys)
{
	unsigned long nr = size >> PAGE_SHIFT;
	int rank, nid, ret;

	for (rank = 0; rank < KHEAP_ZONE_RANKS; rank++) {
		for_each_online_node(nid) {
			pg_data_t *pgdat = NODE_DATA(nid);
			int z;

			for (z = 0; z < MAX_NR_ZONES; z++) {
				struct zone *zone = &pgdat->node_zones[z];

				if (!populated_zone(zone) ||
				    kheap_zone_rank(zone) != rank)
					continue;
				ret = kheap_contig_scan_zone(pool, zone, nr,
							     kheap_limit_pfn(max_phys));
				if (ret != -ENOMEM)
					return ret;
			}
		}
	}
	return -ENOMEM;
}

static int kheap_pool_alloc_buddy(struct kheap_pool *pool, size_t size,
				  u64 max_phys)
{
	gfp_t gfp = GFP_KERNEL | __GFP_NOWARN;
	void *vaddr;

	/* The zone that lies below the limit, where one does. */
#ifdef CONFIG_ZONE_DMA32
	if (max_phys && max_phys <= SZ_4G)
		gfp |= GFP_DMA32;
#endif
	/* Split into order-0 pages, each with one reference. */
	vaddr = alloc_pages_exact(size, gfp);
	if (!vaddr)
		return -ENOMEM;
	/* genalloc uses address 0 to report failure. */
	if (!virt_to_phys(vaddr) ||
	    (max_phys && virt_to_phys(vaddr) + size > max_phys)) {
		free_pages_exact(vaddr, size);
		return -ENOMEM;
	}

	pool->source = KHEAP_SOURCE_BUDDY;
	pool->phys = virt_to_phys(vaddr);
	pool->size = size;
	return 0;
}

/**
 * kheap_pool_create() - obtain the pool the parameters ask for
 * @pool: filled in on success
 * @params: the parsed module parameters
 *
 * Bad parameters are reported with one line each and give -EINVAL.  When
 * no source could provide the pool, one line says what was tried and how
 * to reserve the memory at boot instead.
 *
 * Return: 0, -EINVAL, -EBUSY (reserved range claimed by someone else),
 * -EINTR (interrupted by a fatal signal) or -ENOMEM.
 */
int kheap_pool_create(struct kheap_pool *pool,
		      const struct kheap_pool_params *params)
{
	const size_t buddy_max = PAGE_SIZE * MAX_ORDER_NR_PAGES;
	u64 ram = (u64)totalram_pages() << PAGE_SHIFT;
	int source = params->source;
	const char *tried = NULL;
	char sz[24];
	size_t size;
	int ret;

	if (!params->size) {
		pr_err("size must not be zero\n");
		return -EINVAL;
	}

	/* memmap=$ memory is not in totalram: only runtime pools count. */
	if (params->has_phys) {
		if (source != KHEAP_SOURCE_AUTO &&
		    source != KHEAP_SOURCE_RESERVED) {
			pr_err("phys= cannot be used with source=%s\n",
			       kheap_pool_source_name(source));
			return -EINVAL;
		}
		if (params->max_phys &&
		    (params->phys >= params->max_phys ||
		     params->max_phys - params->phys < params->size)) {
			pr_err("phys=%#llx size=%llu does not lie below max_phys=%#llx\n",
			       params->phys, params->size, params->max_phys);
			return -EINVAL;
		}
		return kheap_pool_adopt_reserved(pool, params->phys,
						 params->size);
	}
	if (source == KHEAP_SOURCE_RESERVED) {
		pr_err("source=reserved needs phys=ADDR of a range reserved with memmap=SIZE$ADDR\n");
		return -EINVAL;
	}
	if (params->size > ram) {
		pr_err("size=%llu is larger than the RAM the kernel manages (%llu bytes)\n",
		       params->size, ram);
		return -EINVAL;
	}

	/* Cannot overflow: params->size is at most the size of RAM. */
	size = PAGE_ALIGN(params->size);
	if (source == KHEAP_SOURCE_BUDDY && size > buddy_max) {
		pr_err("source=buddy provides at most %zu bytes, size=%zu asked\n",
		       buddy_max, size);
		return -EINVAL;
	}

	if (source == KHEAP_SOURCE_AUTO || source == KHEAP_SOURCE_CONTIG) {
		ret = kheap_pool_alloc_contig(pool, size, params->max_phys);
		if (ret != -ENOMEM)
			return ret;
		tried = "contig";
	}
	if (source == KHEAP_SOURCE_BUDDY ||
	    (source == KHEAP_SOURCE_AUTO && size <= buddy_max)) {
		ret = kheap_pool_alloc_buddy(pool, size, params->max_phys);
		if (ret != -ENOMEM)
			return ret;
		tried = tried ? "contig, buddy" : "buddy";
	}

	kheap_format_size(sz, sizeof(sz), size);
	if (params->max_phys)
		pr_err("no physically contiguous range of %s bytes is free below max_phys=%#llx (tried %s)\n",
		       sz, params->max_phys, tried);
	else
		pr_err("no physically contiguous range of %s bytes is free (tried %s): boot with memmap=%s$ADDR and load with phys=ADDR size=%s\n",
		       sz, tried, sz, sz);
	return -ENOMEM;
}

/*
 * Free the @nr pages of a contig pool from @pfn, but for the poisoned ones
 * (kheap_retire.c): free_contig_range() warns about pages with another
 * reference than ours, which memory_failure() may keep on a poisoned page
 * for good.  A poisoned page only loses our reference; the page allocator
 * never takes it back (free_pages_prepare() keeps PG_hwpoison pages out).
 */
static void kheap_pool_free_contig(unsigned long pfn, unsigned long nr)
{
	unsigned long end = pfn + nr, run = pfn;

	for (; pfn < end; pfn++) {
		struct page *page = pfn_to_page(pfn);

		if (!PageHWPoison(page))
			continue;
		if (run < pfn)
			free_contig_range(run, pfn - run);
		put_page(page);
		run = pfn + 1;
	}
	if (run < end)
		free_contig_range(run, end - run);
}

/**
 * kheap_pool_destroy() - return the pool to where it came from
 * @pool: a pool set up by kheap_pool_create(); no page of it may be in
 *	use, but for poisoned pages (kheap_retire.c)
 */
void kheap_pool_destroy(struct kheap_pool *pool)
{
	switch (pool->source) {
	case KHEAP_SOURCE_RESERVED:
		unregister_pm_notifier(&pool->pm_nb);
		memunmap(pool->vaddr);
		release_mem_region(pool->phys, pool->size);
		break;
	case KHEAP_SOURCE_CONTIG:
		kheap_pool_free_contig(PHYS_PFN(pool->phys),
				       pool->size >> PAGE_SHIFT);
		break;
	case KHEAP_SOURCE_BUDDY:
		/* Page by page: a poisoned page only loses our reference. */
		free_pages_exact(phys_to_virt(pool->phys), pool->size);
		break;
	}
}

/**
 * kheap_pool_zero() - zero-fill part of the pool
 * @pool: the pool
 * @phys: physical address of the first byte, page aligned
 * @size: bytes to clear, a multiple of PAGE_SIZE
 *
 * May sleep; reschedules between pages so that clearing a large chunk
 * does not hog the CPU, and gives up when the caller is being killed, so
 * that a huge ALLOC cannot hold a dying process for seconds.
 *
 * Return: 0, or -EINTR when a fatal signal is pending (the range is then
 * partly cleared).
 */
int kheap_pool_zero(const struct kheap_pool *pool, phys_addr_t phys,
		    size_t size)
{
	size_t off;

	for (off = 0; off < size; off += PAGE_SIZE) {
		if (fatal_signal_pending(current))
			return -EINTR;
		if (pool->vaddr)
			memset(pool->vaddr + (phys - pool->phys) + off, 0,
			       PAGE_SIZE);
		else
			clear_highpage(kheap_phys_to_page(phys + off));
		cond_resched();
	}
	return 0;
}

/**
 * kheap_pool_copy() - copy to or from the pool on behalf of a debugger
 * @pool: the pool
 * @phys: physical address of the first byte
 * @buf: kernel buffer
 * @len: bytes to copy, not crossing a page boundary
 * @write: copy from @buf to the pool rather than the other way round
 */
void kheap_pool_copy(const struct kheap_pool *pool, phys_addr_t phys,
		     void *buf, size_t len, bool write)
{
	void *vaddr;

	if (pool->vaddr)
		vaddr = pool->vaddr + (phys - pool->phys);
	else
		vaddr = kmap_local_page(kheap_phys_to_page(phys)) +
			offset_in_page(phys);

	if (write)
		memcpy(vaddr, buf, len);
	else
		memcpy(buf, vaddr, len);

	if (!pool->vaddr)
		kunmap_local(vaddr);
}

/**
 * kheap_pool_copy_page() - copy one page of the pool to another
 * @pool: the pool
 * @dst: physical address of the destination page
 * @src: physical address of the source page
 */
void kheap_pool_copy_page(const struct kheap_pool *pool, phys_addr_t dst,
			  phys_addr_t src)
{
	if (pool->vaddr)
		memcpy(pool->vaddr + (dst - pool->phys),
		       pool->vaddr + (src - pool->phys), PAGE_SIZE);
	else
		copy_highpage(kheap_phys_to_page(dst), kheap_phys_to_page(src));
}
