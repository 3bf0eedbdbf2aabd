/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kheap internals: the pool, the chunk allocator on top of it and the
 * per-file state.
 *
 * Object model
 * ------------
 * One &struct kheap_dev per module instance owns one physically contiguous
 * &struct kheap_pool (kheap_pool.c).  A genalloc pool whose addresses are
 * the physical addresses of the pool hands out page-granular chunks
 * (kheap_chunk.c).  Every open file (&struct kheap_file) owns the chunks it
 * allocated, indexed by their mmap() offset ("token").  A VMA created by
 * kheap_mmap() (kheap_mmap.c) holds a reference on the chunk it maps, so a
 * chunk outlives both FREE and close() while it is mapped.  The VMA's file
 * is the kheap file's mapping file, not the kheap file itself, so that
 * close() releases every chunk that is not mapped at once.
 *
 * Where the pages of a released chunk go - back to genalloc, into the
 * quarantine while someone else still holds a reference on them, or out
 * of service for good when the hardware poisoned them - is decided in
 * kheap_retire.c.
 *
 * Lock ordering (outermost first)
 * -------------------------------
 *   device_lock  ->  mm->mmap_lock  ->  kheap_dev.dmabuf_lock  ->
 *   kheap_dev.fork_lock  ->  kheap_file.lock  ->  kheap_dev.dma_lock  ->
 *   kheap_dev.lock
 *
 * mmap() runs with mmap_lock held and takes kheap_file.lock, so nothing may
 * touch user memory (copy_*_user(), get_user_pages()) while holding
 * kheap_file.lock or kheap_dev.lock.  The fault handler takes no lock
 * (the VMA's chunk reference keeps the chunk alive) unless a fork copy is
 * involved (kheap_fork.c), when it takes kheap_dev.fork_lock.
 */
#ifndef _KHEAP_H
#define _KHEAP_H

#include <linux/genalloc.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/maple_tree.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/dma-direction.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/sizes.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include <uapi/linux/kheap.h>

struct dma_buf;

/*
 * The largest ALLOC alignment granted to a file that physical addresses
 * are withheld from (restrict_phys=1, opened without CAP_SYS_RAWIO).  An
 * alignment fixes the low bits of a chunk's physical address; up to 2 MiB
 * that tells nothing new (the uapi header, struct kheap_alloc, says why),
 * beyond it ALLOC gives -EPERM.
 */
#define KHEAP_RESTRICTED_ALIGN_MAX	SZ_2M

/* "auto" is not a pool source, only a choice of the source= parameter. */
#define KHEAP_SOURCE_AUTO	0

/**
 * struct kheap_pool_params - what the module parameters asked for
 * @size: pool size in bytes, as given (not yet rounded)
 * @phys: physical base address of a boot-time reservation
 * @has_phys: @phys was given
 * @max_phys: the pool must lie below this physical address (0: anywhere)
 * @source: %KHEAP_SOURCE_AUTO or one of &enum kheap_pool_source
 */
struct kheap_pool_params {
	u64 size;
	u64 phys;
	bool has_phys;
	u64 max_phys;
	int source;
};

/**
 * struct kheap_pool - the physically contiguous range behind the heap
 * @source: where the range came from, one of &enum kheap_pool_source
 * @phys: physical address of the first byte
 * @size: size in bytes, a multiple of PAGE_SIZE
 * @pgmap: the struct pages given to a reserved range (unused for the
 *	other sources, whose pages the page allocator gave us)
 * @pm_nb: refuses hibernation while a reserved range is the pool
 *
 * Every pool is made of struct pages in the kernel's direct map, which
 * the pool holds one reference on each for as long as the module is
 * loaded: the pages of a contig or buddy pool come from the page
 * allocator; a reserved range gets ZONE_DEVICE pages from
 * memremap_pages() (kheap_pool.c).  So the rest of the module treats all
 * pools alike: user mappings hold pages, get_user_pages() works on them,
 * and kheap_phys_to_page() is valid for every byte of every pool.
 */
struct kheap_pool {
	enum kheap_pool_source source;
	phys_addr_t phys;
	size_t size;
	struct dev_pagemap pgmap;
	struct notifier_block pm_nb;
};

/**
 * struct kheap_dev - the device and its heap
 * @misc: the /dev/kheap misc device
 * @pool: the contiguous range handed out
 * @restrict_phys: report physical addresses only to CAP_SYS_RAWIO openers
 * @gp: genalloc allocator over @pool; addresses are physical addresses
 * @lock: see below
 * @free_bytes: bytes of @pool not held by any chunk
 * @chunks_in_use: chunks whose pages have not gone back to @gp yet
 * @next_token: token of the next chunk to be allocated
 * @quarantine: released chunks whose pages are still referenced by someone
 *	else (a get_user_pages() pin, for instance)
 * @quarantined_chunks: chunks in @quarantine
 * @quarantined_bytes: bytes of the chunks in @quarantine
 * @retired_pages: pages taken out of service for good because the
 *	hardware poisoned them (PG_hwpoison); genalloc keeps them allocated
 * @reap_work: re-checks @quarantine while it is not empty, with a
 *	backoff (kheap_retire.c)
 * @reap_delay: the delay before the next run of @reap_work
 * @max_phys: the max_phys= parameter (0: none)
 * @dma_lock: see below
 * @attachments: every file's device attachments (kheap_dma.c)
 * @dma_nb: PCI bus notifier: attached devices changing hands or leaving
 * @dma_pnb: the same for the platform bus
 * @fork_lock: see below
 * @dmabuf_lock: see below
 * @dmabufs: every &struct kheap_dmabuf that still exists (kheap_dmabuf.c)
 * @nr_dmabufs: entries in @dmabufs
 */
struct kheap_dev {
	struct miscdevice misc;
	struct kheap_pool pool;
	bool restrict_phys;
	struct gen_pool *gp;
	/*
	 * Protects @free_bytes, @chunks_in_use, @next_token, @quarantine,
	 * its counters, @retired_pages and @reap_delay, and serialises every
	 * allocation from and every free to @gp so that the statistics
	 * (including the largest free extent, read from the genalloc bitmap)
	 * are exact snapshots.  Statistics are read from the counters: no
	 * reader rescans quarantined pages.  Innermost kheap lock.
	 */
	struct mutex lock;
	u64 free_bytes;
	u64 chunks_in_use;
	u64 next_token;
	struct list_head quarantine;
	u64 quarantined_chunks;
	u64 quarantined_bytes;
	u64 retired_pages;
	struct delayed_work reap_work;
	unsigned long reap_delay;
	u64 max_phys;
	/*
	 * Protects @attachments, every file's &kheap_file.attachments,
	 * nr_attach and last_handle, and every attachment's mappings.
	 */
	struct mutex dma_lock;
	struct list_head attachments;
	struct notifier_block dma_nb;
	struct notifier_block dma_pnb;
	/*
	 * Protects every chunk's &kheap_chunk.copies and the state of every
	 * fork copy (kheap_fork.c).  Taken in page faults, under mmap_lock.
	 */
	struct mutex fork_lock;
	/*
	 * Protects @dmabufs and @nr_dmabufs.  Taken by EXPORT and by a
	 * dma-buf's release, outside every other kheap lock.
	 */
	struct mutex dmabuf_lock;
	struct list_head dmabufs;
	u64 nr_dmabufs;
};

/**
 * struct kheap_chunk - one allocation from the pool
 * @ref: one reference for the owning file while it owns the chunk, plus
 *	one per VMA mapping it
 * @kd: the device the chunk belongs to
 * @phys: physical address of the first byte
 * @size: size in bytes, a multiple of PAGE_SIZE; changed only by
 *	kheap_resize.c, with the owner's &kheap_file.lock held (see there for
 *	the fault path, which reads it without a lock)
 * @span: bytes of token space the chunk owns from @token, at least any
 *	@size it can reach: @size, or the pool's size for a growable chunk
 * @token: mmap() offset of the first byte
 * @qnode: entry in &kheap_dev.quarantine, under &kheap_dev.lock
 * @shared: allocated KHEAP_ALLOC_SHARED: fork() children map it too
 * @copies: fork copies of this chunk that still miss pages, under
 *	&kheap_dev.fork_lock (kheap_fork.c)
 * @idle_pages: while quarantined, the first @idle_pages pages were found
 *	idle by an earlier check and need no new look, under &kheap_dev.lock
 *
 * All fields but @ref, @size, @qnode, @copies and @idle_pages are
 * immutable once the chunk is visible to anyone but its creator.
 */
struct kheap_chunk {
	struct kref ref;
	struct kheap_dev *kd;
	phys_addr_t phys;
	size_t size;
	u64 span;
	u64 token;
	struct list_head qnode;
	bool shared;
	struct list_head copies;
	unsigned long idle_pages;
};

/**
 * struct kheap_file - per open file state
 * @kd: the device
 * @show_phys: physical addresses may be reported to this file (decided
 *	once, at open time)
 * @mapfile: the file every VMA mapped through this file carries instead
 *	of it (an anonymous inode, "anon_inode:[kheap]" in /proc/PID/maps):
 *	a VMA must not keep the kheap file, and so every chunk it owns,
 *	alive; it names the mappings this file created for QUERY
 * @lock: see below
 * @chunks: owned chunks, indexed by the page offsets their tokens cover
 * @nr_chunks: number of chunks in @chunks
 * @nr_bytes: bytes in @chunks
 * @attachments: devices attached by this file, under &kheap_dev.dma_lock
 * @nr_attach: entries in @attachments, under &kheap_dev.dma_lock
 * @last_handle: the handle last given to an attachment, likewise
 */
struct kheap_file {
	struct kheap_dev *kd;
	bool show_phys;
	struct file *mapfile;
	/*
	 * Protects @chunks, @nr_chunks and @nr_bytes: a chunk is owned by
	 * this file exactly while it is in @chunks.  Taken under mmap_lock
	 * by kheap_mmap().
	 */
	struct mutex lock;
	struct maple_tree chunks;
	u64 nr_chunks;
	u64 nr_bytes;
	struct list_head attachments;
	unsigned int nr_attach;
	u64 last_handle;
};

/**
 * struct kheap_stats - a consistent snapshot of the heap's accounting
 * @free_bytes: see &kheap_dev.free_bytes
 * @largest_free: largest physically contiguous free extent in bytes
 * @chunks_in_use: see &kheap_dev.chunks_in_use
 * @quarantined_chunks: see &kheap_dev.quarantined_chunks
 * @quarantined_bytes: see &kheap_dev.quarantined_bytes
 * @retired_bytes: &kheap_dev.retired_pages in bytes
 */
struct kheap_stats {
	u64 free_bytes;
	u64 largest_free;
	u64 chunks_in_use;
	u64 quarantined_chunks;
	u64 quarantined_bytes;
	u64 retired_bytes;
};

/**
 * struct kheap_extent - a run of free pages in the pool
 * @offset: bytes from the pool's first byte (not a physical address)
 * @length: bytes, a non-zero multiple of PAGE_SIZE
 */
struct kheap_extent {
	u64 offset;
	u64 length;
};

/**
 * struct kheap_addr_info - where a user address of a kheap mapping points
 * @token: token of the chunk behind the address
 * @offset: offset of the address within that chunk
 * @chunk_size: size of that chunk in bytes
 * @phys: physical address of the byte at the address
 */
struct kheap_addr_info {
	u64 token;
	u64 offset;
	u64 chunk_size;
	phys_addr_t phys;
};

/* The page of any byte of the pool: every pool has struct pages. */
static inline struct page *kheap_phys_to_page(phys_addr_t phys)
{
	return pfn_to_page(PHYS_PFN(phys));
}

static inline pgoff_t kheap_chunk_pgoff(const struct kheap_chunk *chunk)
{
	return chunk->token >> PAGE_SHIFT;
}

static inline unsigned long kheap_chunk_pages(const struct kheap_chunk *chunk)
{
	return READ_ONCE(chunk->size) >> PAGE_SHIFT;
}

/* kheap_pool.c */
int kheap_pool_create(struct kheap_pool *pool,
		      const struct kheap_pool_params *params);
void kheap_pool_destroy(struct kheap_pool *pool);
int kheap_pool_zero(phys_addr_t phys, size_t size);
void kheap_pool_copy_page(phys_addr_t dst, phys_addr_t src);
const char *kheap_pool_source_name(int source);
int kheap_pool_parse_source(const char *str);

/* kheap_chunk.c */
int kheap_heap_init(struct kheap_dev *kd);
int kheap_heap_fini(struct kheap_dev *kd);
void kheap_heap_stats(struct kheap_dev *kd, struct kheap_stats *stats);
unsigned int kheap_heap_free_extents(struct kheap_dev *kd,
				     struct kheap_extent *ext,
				     unsigned int max, bool *more);
void kheap_file_init(struct kheap_file *kf, struct kheap_dev *kd,
		     bool show_phys);
void kheap_file_release(struct kheap_file *kf);
struct kheap_chunk *kheap_chunk_new(struct kheap_dev *kd, u64 size, u64 align,
				    u64 limit, u64 token, u64 span);
int kheap_file_insert(struct kheap_file *kf, struct kheap_chunk *chunk);
int kheap_chunk_alloc(struct kheap_file *kf, u64 size, u64 align, u64 limit,
		      u64 flags, u64 *token, phys_addr_t *phys,
		      size_t *chunk_size);
int kheap_chunk_free(struct kheap_file *kf, u64 token);
struct kheap_chunk *kheap_chunk_find(struct kheap_file *kf, u64 token);
struct kheap_chunk *kheap_chunk_find_range_locked(struct kheap_file *kf,
						  pgoff_t pgoff,
						  unsigned long nr_pages);
struct kheap_chunk *kheap_chunk_lookup(struct kheap_file *kf, u64 token);
void kheap_chunk_get(struct kheap_chunk *chunk);
void kheap_chunk_put(struct kheap_chunk *chunk);

/* kheap_retire.c */
void kheap_retire_init(struct kheap_dev *kd);
int kheap_retire_fini(struct kheap_dev *kd);
unsigned long kheap_pool_take(struct kheap_dev *kd, size_t size,
			      genpool_algo_t algo, void *data);
void kheap_chunk_dispose_locked(struct kheap_dev *kd,
				struct kheap_chunk *chunk);
bool kheap_page_poisoned(unsigned long pfn);
void kheap_pool_give_back(struct kheap_dev *kd, phys_addr_t phys,
			  size_t size);

/* kheap_dma.c */
int kheap_dma_init(struct kheap_dev *kd);
void kheap_dma_fini(struct kheap_dev *kd);
int kheap_dma_attach(struct kheap_file *kf, const char *name, u64 dma_bits,
		     struct kheap_attach *out);
int kheap_dma_detach(struct kheap_file *kf, u64 handle);
void kheap_dma_file_release(struct kheap_file *kf);
int kheap_dma_map_new(struct kheap_file *kf, struct kheap_chunk *chunk);
void kheap_dma_unmap_chunk(struct kheap_file *kf, unsigned long pgoff);
u64 kheap_dma_limit(struct kheap_file *kf);
int kheap_dma_addr(struct kheap_file *kf, struct kheap_chunk *chunk,
		   u64 handle, u64 *addr);
void kheap_dma_sync(struct kheap_file *kf, struct kheap_chunk *chunk,
		    u64 offset, u64 len, enum dma_data_direction dir, bool end);
u64 kheap_dma_nr_attached(struct kheap_file *kf);

/* kheap_dmabuf.c */

/**
 * struct kheap_dmabuf_new - an exported dma-buf user space does not see yet
 * @dmabuf: the dma-buf, with the reference the descriptor will own
 * @fd: the descriptor reserved for it, not installed
 */
struct kheap_dmabuf_new {
	struct dma_buf *dmabuf;
	int fd;
};

void kheap_dmabuf_init(struct kheap_dev *kd);
void kheap_dmabuf_fini(struct kheap_dev *kd);
int kheap_dmabuf_export(struct kheap_file *kf, u64 token, u64 offset,
			u64 length, u64 flags, struct kheap_dmabuf_new *out);
void kheap_dmabuf_install(const struct kheap_dmabuf_new *nb);
void kheap_dmabuf_abort(const struct kheap_dmabuf_new *nb);
u64 kheap_dmabuf_count(struct kheap_dev *kd);
unsigned int kheap_dmabuf_extents(struct kheap_dev *kd,
				  struct kheap_extent *ext, unsigned int max,
				  bool *more);
bool kheap_dmabuf_covers(struct kheap_dev *kd, struct kheap_chunk *chunk,
			 u64 offset);

/* kheap_fork.c */
extern const struct vm_operations_struct kheap_copy_vm_ops;
void kheap_fork_vma(struct vm_area_struct *vma, struct vm_area_struct *parent,
		    struct kheap_chunk *src);
void kheap_fork_preserve(struct kheap_chunk *chunk, pgoff_t index);
int kheap_fork_adopt(struct kheap_file *kf, unsigned long addr,
		     struct kheap_adopt *out);

/* kheap_ioctl.c */
long kheap_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* kheap_mmap.c */
struct file *kheap_mapfile_create(struct kheap_file *kf);
void kheap_mapfile_release(struct kheap_file *kf);
int kheap_mmap(struct file *file, struct vm_area_struct *vma);
int kheap_mmap_translate(struct file *file, unsigned long addr,
			 struct kheap_addr_info *info);
vm_fault_t kheap_mmap_insert(struct vm_fault *vmf, struct kheap_chunk *chunk,
			     pgoff_t index);
void kheap_mmap_adopt_vma(struct vm_area_struct *vma, struct kheap_file *kf,
			  struct kheap_chunk *chunk);

/* kheap_resize.c */
int kheap_resize_shrink(struct kheap_file *kf, u64 token, u64 size,
			size_t *size_out, phys_addr_t *phys);
int kheap_resize_extend(struct kheap_file *kf, u64 token, u64 size,
			size_t *size_out, phys_addr_t *phys);

/* kheap_sysfs.c */
extern const struct attribute_group *kheap_attr_groups[];

#endif /* _KHEAP_H */
