// SPDX-License-Identifier: GPL-2.0-only
/*
 * Obtaining and returning kheap's physically contiguous pool.
 *
 * Three sources, tried in this order by source=auto:
 *
 * reserved: a range the administrator kept away from the page allocator at
 *	boot (memmap=SIZE$ADDR) and handed to us with phys= and size=.  It
 *	has no usable struct pages and is not in the kernel's direct map
 *	until memremap_pages() gives it both, as device-dax does.
 * contig: a free range taken from a populated zone at load time with
 *	alloc_contig_range(), which migrates movable pages out of the way.
 * buddy: a single block from the page allocator, for small pools only.
 *
 * The pages of a contig or buddy pool are split order-0 pages with a
 * reference count of one each, held by the pool until it is destroyed.
 * Those of a reserved pool are ZONE_DEVICE pages, which start with a
 * reference count of one each too; see kheap_pool_map_reserved().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/memory_hotplug.h>
#include <linux/memremap.h>
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
 * The kernel's memory failure handling for a ZONE_DEVICE page: called by
 * memory_failure() (a machine check, or madvise(MADV_HWPOISON)) with a
 * page of the pool.  Marking the page is all kheap needs: like a poisoned
 * contig page, it is never mapped again, read for a fork copy, zeroed or
 * handed out (kheap_retire.c).  Handling it here also keeps the kernel
 * from its generic fallback for ZONE_DEVICE pages, which expects a
 * file system DAX page and gives up on ours.
 */
static int kheap_pool_memory_failure(struct dev_pagemap *pgmap,
				     unsigned long pfn, unsigned long nr_pages,
				     int mf_flags)
{
	unsigned long end = pfn + nr_pages;

	for (; pfn < end; pfn++)
		SetPageHWPoison(pfn_to_page(pfn));
	return 0;
}

/*
 * No page_free: the pool holds the reference every page starts with until
 * memunmap_pages(), so a page's count never drops to zero.  Both 6.1 and
 * 6.12 WARN when it does without page_free, which is the check we want.
 */
static const struct dev_pagemap_ops kheap_pgmap_ops = {
	.memory_failure	= kheap_pool_memory_failure,
};

/*
 * Give the reserved range [@phys, @phys + @size) struct pages and a place
 * in the direct map, as ZONE_DEVICE memory of type MEMORY_DEVICE_GENERIC:
 * the range then behaves like the pages of a contig pool.
 *
 * - Every page starts with a reference count of one (6.1 and 6.12 alike;
 *   only the private, coherent and P2P types start at zero) and the pool
 *   keeps that reference: user mappings are made with vm_insert_pages()
 *   and the fault handler, as for any pool, and take references of their
 *   own, which is how the core expects a ZONE_DEVICE page mapped without
 *   pte_devmap() to be handled.  get_user_pages() pins them like any page
 *   (ZONE_DEVICE is not ZONE_MOVABLE: long-term pins need no migration).
 * - The pages start PG_reserved.  VFIO type1 takes a PG_reserved page for
 *   an MMIO frame: it pins it but never unpins it (put_pfn()), which
 *   would keep such a chunk in the quarantine for good.  The flag only
 *   stands for "not onlined" here, and these pages are never onlined nor
 *   freed to the page allocator; nothing on the paths a pool's pages take
 *   (mapping, get_user_pages(), DMA mapping, memunmap_pages()) needs it,
 *   so it is cleared.
 * - memunmap_pages() waits for the pgmap references that get_user_pages()
 *   takes while it works, not for page references: a pin that outlives
 *   every mapping keeps its chunk in the quarantine, which keeps the
 *   module, and so the pgmap, alive (kheap_retire.c).
 * - memory hot-add works in subsections: the range must be aligned to
 *   memremap_compat_align() (2 MiB on x86), or the kernel WARNs.
 */
static int kheap_pool_map_reserved(struct kheap_pool *pool, u64 phys, u64 size)
{
	unsigned long align = memremap_compat_align();
	struct dev_pagemap *pgmap = &pool->pgmap;
	unsigned long pfn;
	void *vaddr;

	if (!IS_ALIGNED(phys, align) || !IS_ALIGNED(size, align)) {
		pr_err("phys=%#llx and size=%llu must be multiples of %lu KiB for a reserved pool to get struct pages\n",
		       phys, size, align / SZ_1K);
		return -EINVAL;
	}

	memset(pgmap, 0, sizeof(*pgmap));
	pgmap->type = MEMORY_DEVICE_GENERIC;
	pgmap->range.start = phys;
	pgmap->range.end = phys + size - 1;
	pgmap->nr_range = 1;
	pgmap->ops = &kheap_pgmap_ops;

	vaddr = memremap_pages(pgmap, memory_add_physaddr_to_nid(phys));
	if (IS_ERR(vaddr)) {
		pr_err("cannot give [%#llx-%#llx] struct pages: %pe\n",
		       phys, phys + size - 1, vaddr);
		return PTR_ERR(vaddr);
	}

	for (pfn = PHYS_PFN(phys); pfn < PHYS_PFN(phys + size); pfn++) {
		ClearPageReserved(pfn_to_page(pfn));
		if (!(pfn % SZ_1K))
			cond_resched();
	}
	return 0;
}

/* walk_iomem_res_desc() callback: stop at the first resource found. */
static int kheap_pool_found_res(struct resource *res, void *arg)
{
	return 1;
}

/*
 * Adopt the range [@phys, @phys + @size) that the administrator reserved
 * at boot.  Everything is validated before anything is claimed.
 */
static int kheap_pool_adopt_reserved(struct kheap_pool *pool, u64 phys,
				     u64 size)
{
	u64 end;
	int ret;

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

	/*
	 * memremap_pages() claims nothing in the resource tree: we do.  A
	 * NULL means a claim already there, or no memory for ours.
	 */
	if (!request_mem_region(phys, size, KBUILD_MODNAME)) {
		if (walk_iomem_res_desc(IORES_DESC_NONE,
					IORESOURCE_MEM | IORESOURCE_BUSY,
					phys, end - 1, NULL,
					kheap_pool_found_res) != 1)
			return -ENOMEM;
		pr_err("[%#llx-%#llx] is claimed by another driver\n",
		       phys, end - 1);
		return -EBUSY;
	}

	ret = kheap_pool_map_reserved(pool, phys, size);
	if (ret) {
		release_mem_region(phys, size);
		return ret;
	}

	pool->source = KHEAP_SOURCE_RESERVED;
	pool->phys = phys;
	pool->size = size;
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

/* Name the poisoned pages of a reserved pool, whose marks are lost. */
static void kheap_pool_report_poisoned(const struct kheap_pool *pool)
{
	unsigned long pfn = PHYS_PFN(pool->phys);
	unsigned long end = pfn + (pool->size >> PAGE_SHIFT);

	for (; pfn < end; pfn++) {
		if (PageHWPoison(pfn_to_page(pfn)))
			pr_warn("pfn %#lx is hardware-poisoned: a reserved pool loaded again would not know\n",
				pfn);
		if (!(pfn % SZ_1K))
			cond_resched();
	}
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
		/*
		 * The struct pages go, and with them any PG_hwpoison mark:
		 * a reserved pool loaded again knows nothing of the pages
		 * poisoned before.  Say which they were.
		 */
		kheap_pool_report_poisoned(pool);
		memunmap_pages(&pool->pgmap);
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
int kheap_pool_zero(phys_addr_t phys, size_t size)
{
	size_t off;

	for (off = 0; off < size; off += PAGE_SIZE) {
		if (fatal_signal_pending(current))
			return -EINTR;
		clear_highpage(kheap_phys_to_page(phys + off));
		cond_resched();
	}
	return 0;
}

/**
 * kheap_pool_copy_page() - copy one page of the pool to another
 * @dst: physical address of the destination page
 * @src: physical address of the source page
 */
void kheap_pool_copy_page(phys_addr_t dst, phys_addr_t src)
{
	copy_highpage(kheap_phys_to_page(dst), kheap_phys_to_page(src));
}
