// SPDX-License-Identifier: GPL-2.0-only
/*
 * Mapping chunks into user space.
 *
 * The mmap() offset of a mapping is the token of the chunk it maps (plus
 * an offset into the chunk).  Every pool's pages (a reserved pool's too,
 * see struct kheap_pool) are mapped as ordinary pages, not as raw PFNs:
 * get_user_pages() users (O_DIRECT, process_vm_readv(), ptrace,
 * vmsplice(), io_uring fixed buffers, VFIO, RDMA registration) work on
 * them, and /proc/PID/pagemap reports the real frame numbers.
 *
 * Each VMA holds a reference on its chunk, taken by mmap() and by the
 * .open callback for every copy the core makes of the VMA (split by a
 * partial munmap() or mprotect(), mremap() move), and dropped by .close.
 * A chunk therefore stays allocated while any part of it is mapped, even
 * after FREE or close() of its file.  fork() is the exception: the
 * child's copy of the VMA maps a fork copy of the chunk instead, unless
 * the chunk is shared (kheap_fork.c).
 *
 * A VMA does not hold the kheap file itself: mmap() swaps its vm_file for
 * the file's mapping file (kheap_mapfile_create()), so that close() of
 * the last descriptor releases the file, and with it every chunk that is
 * not mapped, at once rather than at the last munmap().  The mapping file
 * holds a module reference, as the kheap file did.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/sched.h>

#include "kheap.h"
#include "kheap_compat.h"

/* Pages inserted per vm_insert_pages() call when prefaulting. */
#define KHEAP_PREFAULT_BATCH	16

static void kheap_vm_open(struct vm_area_struct *vma)
{
	struct kheap_chunk *chunk = vma->vm_private_data;

	/*
	 * fork() duplicates the VMAs from the parent: the only caller that
	 * hands us a VMA of another process than the current one.
	 */
	if (vma->vm_mm != current->mm)
		kheap_fork_vma(vma, vma_lookup(current->mm, vma->vm_start),
			       chunk);
	else
		kheap_chunk_get(chunk);
}

static void kheap_vm_close(struct vm_area_struct *vma)
{
	kheap_chunk_put(vma->vm_private_data);
}

/* Offset within @chunk of user address @addr of @vma. */
static u64 kheap_vma_offset(struct vm_area_struct *vma,
			    const struct kheap_chunk *chunk, unsigned long addr)
{
	return ((u64)(vma->vm_pgoff - kheap_chunk_pgoff(chunk)) << PAGE_SHIFT) +
	       (addr - vma->vm_start);
}

/**
 * kheap_mmap_insert() - map one page of a chunk for a fault
 * @vmf: the fault
 * @chunk: the chunk the faulting VMA maps
 * @index: the page's index in @chunk
 *
 * Return: what the fault handler returns.
 */
vm_fault_t kheap_mmap_insert(struct vm_fault *vmf, struct kheap_chunk *chunk,
			     pgoff_t index)
{
	struct page *page = kheap_phys_to_page(chunk->phys +
					       ((phys_addr_t)index << PAGE_SHIFT));

	/*
	 * The core locks the page, maps it and keeps the reference taken
	 * here as the mapping's own.
	 */
	/* A page the hardware reported bad is never mapped again. */
	if (PageHWPoison(page))
		return VM_FAULT_HWPOISON;
	get_page(page);
	vmf->page = page;
	return 0;
}

/*
 * Map the chunk's page for a fault at vmf->pgoff.  mmap() prefaults
 * everything, so this runs after the pages were zapped: by MADV_DONTNEED,
 * or by a fork() that left copies of the chunk to fill (kheap_fork.c).
 */
static vm_fault_t kheap_vm_fault(struct vm_fault *vmf)
{
	struct kheap_chunk *chunk = vmf->vma->vm_private_data;
	pgoff_t first = kheap_chunk_pgoff(chunk);
	pgoff_t index = vmf->pgoff - first;
	vm_fault_t ret;

	/* Past the end: SHRINK cut the chunk below this mapping. */
	if (vmf->pgoff < first || index >= kheap_chunk_pages(chunk))
		return VM_FAULT_SIGBUS;

	/* Before this process can write the page again. */
	if (!list_empty(&chunk->copies))
		kheap_fork_preserve(chunk, index);
	ret = kheap_mmap_insert(vmf, chunk, index);
	if (ret)
		return ret;

	/*
	 * A SHRINK may have cut the page off since the check above.  It
	 * lowers the size before it looks at the pages' reference counts
	 * (kheap_resize.c), and we took our page reference before looking
	 * at the size again: either it sees our reference and refuses, or
	 * we see the new size and let the page go.
	 */
	smp_mb();
	if (index >= kheap_chunk_pages(chunk)) {
		put_page(vmf->page);
		vmf->page = NULL;
		return VM_FAULT_SIGBUS;
	}
	return 0;
}

static const struct vm_operations_struct kheap_vm_ops = {
	.open	= kheap_vm_open,
	.close	= kheap_vm_close,
	.fault	= kheap_vm_fault,
};

/*
 * Map as much of the chunk as possible right away, so that touching a
 * fresh mapping does not fault once per page.  This is only an
 * optimisation: whatever is not mapped here is mapped by
 * kheap_vm_fault() on first access.
 */
static void kheap_mmap_prefault(struct vm_area_struct *vma,
				struct kheap_chunk *chunk)
{
	struct page *pages[KHEAP_PREFAULT_BATCH];
	unsigned long pfn = PHYS_PFN(chunk->phys) +
			    (vma->vm_pgoff - kheap_chunk_pgoff(chunk));
	unsigned long addr = vma->vm_start;

	while (addr < vma->vm_end) {
		unsigned long nr = min_t(unsigned long, KHEAP_PREFAULT_BATCH,
					 (vma->vm_end - addr) >> PAGE_SHIFT);
		unsigned long left = nr;
		unsigned long i;

		for (i = 0; i < nr; i++)
			pages[i] = pfn_to_page(pfn + i);
		if (vm_insert_pages(vma, addr, pages, &left))
			return;
		addr += nr << PAGE_SHIFT;
		pfn += nr;
		cond_resched();
	}
}

/*
 * Map (part of) a chunk: @vma's vm_pgoff is a token plus a page offset.
 * The range must be shared and lie inside one chunk that @kf owns.
 * Executable mappings are refused, now and through a later mprotect().
 * Returns 0, -EINVAL for a private mapping or a range that is not inside
 * one chunk of @kf, -EPERM for an executable mapping.
 */
static int kheap_mmap_file(struct kheap_file *kf, struct vm_area_struct *vma)
{
	struct kheap_chunk *chunk;

	/*
	 * VM_MAYSHARE rather than VM_SHARED: the core clears VM_SHARED from
	 * MAP_SHARED mappings of files opened read-only, which are fine.
	 * Private mappings are not, as a COW copy would not be pool memory.
	 */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;

	/*
	 * The file's lock is held until the prefault is done: SHRINK holds
	 * it while it looks at which pages are mapped, so it never cuts a
	 * page that this mmap() has found in the chunk and is mapping.
	 */
	mutex_lock(&kf->lock);
	chunk = kheap_chunk_find_range_locked(kf, vma->vm_pgoff,
					      vma_pages(vma));
	if (!chunk) {
		mutex_unlock(&kf->lock);
		return -EINVAL;
	}

	/*
	 * VM_MIXEDMAP: the pages are inserted by the driver, not found in a
	 * page cache.  VM_DONTEXPAND: mremap() must not grow the mapping
	 * beyond the chunk.  VM_DONTDUMP: a pool can be large and its
	 * contents belong to a device more than to the process, as for
	 * other driver-mapped DMA buffers.
	 *
	 * Both VM_MIXEDMAP and VM_DONTEXPAND are also load-bearing for
	 * safety: they are VM_SPECIAL, which the core never merges.  Chunks
	 * of one file have consecutive tokens and share a vm_file, so
	 * without them a new mapping of the next chunk, placed right after
	 * a mapping of the previous one, could be merged into that VMA
	 * without ->mmap() ever checking it, and one VMA (holding one chunk
	 * reference) would span two chunks.
	 */
	vm_flags_mod(vma, VM_MIXEDMAP | VM_DONTEXPAND | VM_DONTDUMP,
		     VM_MAYEXEC);
	vma->vm_ops = &kheap_vm_ops;
	vma->vm_private_data = chunk;
	/* The core drops our reference on the old file for us. */
	vma_set_file(vma, kf->mapfile);

	/*
	 * A chunk with fork copies still to fill is mapped page by page, so
	 * that each page is copied before this mapping can change it.
	 */
	if (list_empty(&chunk->copies))
		kheap_mmap_prefault(vma, chunk);
	mutex_unlock(&kf->lock);
	return 0;
}

/**
 * kheap_mmap_adopt_vma() - turn a fork copy's VMA into a chunk's VMA
 * @vma: a VMA of the current process, mapping a fork copy, write-locked
 * @kf: the file that now owns @chunk
 * @chunk: the completed copy; the VMA takes over a reference the caller
 *	took for it
 *
 * From here on @vma is what mmap() of @chunk through @kf would have
 * made: QUERY through @kf finds it, and its pages are @chunk's.
 */
void kheap_mmap_adopt_vma(struct vm_area_struct *vma, struct kheap_file *kf,
			  struct kheap_chunk *chunk)
{
	struct file *old = vma->vm_file;

	vma->vm_ops = &kheap_vm_ops;
	vma->vm_private_data = chunk;
	/*
	 * Every mapping file is an anonymous inode's: changing the VMA's
	 * file keeps it in the same address_space, where the core filed it.
	 */
	if (file_inode(old) == file_inode(kf->mapfile)) {
		vma->vm_file = get_file(kf->mapfile);
		fput(old);
	}
}

/**
 * kheap_mmap() - mmap() of /dev/kheap: map (part of) a chunk of the file
 * @file: the kheap file
 * @vma: the new mapping; vm_pgoff is a token plus a page offset
 *
 * Return: 0, -EINVAL (not a range of one chunk of this file, or a private
 * mapping) or -EPERM (executable).
 */
int kheap_mmap(struct file *file, struct vm_area_struct *vma)
{
	return kheap_mmap_file(file->private_data, vma);
}

/*
 * Serialises mmap() through a mapping file with the release of the kheap
 * file it stands for (which clears its private_data).  Only that rare
 * path takes it: remap_file_pages() and mmap() of a /proc/PID/map_files
 * descriptor.  Taken under mmap_lock, outside kheap_file.lock.
 */
static DEFINE_MUTEX(kheap_mapfile_lock);

static int kheap_mapfile_mmap(struct file *file, struct vm_area_struct *vma)
{
	int ret = -ENODEV;	/* the kheap file is closed: its chunks too */

	mutex_lock(&kheap_mapfile_lock);
	if (file->private_data)
		ret = kheap_mmap_file(file->private_data, vma);
	mutex_unlock(&kheap_mapfile_lock);
	return ret;
}

/*
 * The mapping file maps what its kheap file would, while that is open
 * (remap_file_pages() re-mmaps a VMA's own file), and nothing else.  Its
 * owner keeps the module loaded while any mapping exists.
 */
static const struct file_operations kheap_mapfile_fops = {
	.owner	= THIS_MODULE,
	.mmap	= kheap_mapfile_mmap,
	.llseek	= noop_llseek,
};

/**
 * kheap_mapfile_create() - a mapping file for a newly opened kheap file
 * @kf: the kheap file
 *
 * Return: the file, or an ERR_PTR().
 */
struct file *kheap_mapfile_create(struct kheap_file *kf)
{
	return anon_inode_getfile("[kheap]", &kheap_mapfile_fops, kf, O_RDWR);
}

/**
 * kheap_mapfile_release() - cut a mapping file loose from its kheap file
 * @kf: the kheap file, being released
 *
 * The mapping file outlives @kf while mappings hold it.
 */
void kheap_mapfile_release(struct kheap_file *kf)
{
	mutex_lock(&kheap_mapfile_lock);
	kf->mapfile->private_data = NULL;
	mutex_unlock(&kheap_mapfile_lock);
	fput(kf->mapfile);
}

/**
 * kheap_mmap_translate() - find what a user address of a mapping maps
 * @file: the file the mapping must have been created through
 * @addr: a user virtual address in the current process
 * @info: filled in on success
 *
 * Works after the chunk was freed, as long as it is still mapped.
 *
 * Return: 0, -EINVAL if @addr is not inside a kheap mapping of @file, or
 * -EINTR if interrupted by a fatal signal.
 */
int kheap_mmap_translate(struct file *file, unsigned long addr,
			 struct kheap_addr_info *info)
{
	struct kheap_file *kf = file->private_data;
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	int ret = -EINVAL;

	if (!mm)
		return -EINVAL;
	if (mmap_read_lock_killable(mm))
		return -EINTR;

	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_ops == &kheap_vm_ops &&
	    vma->vm_file == kf->mapfile) {
		struct kheap_chunk *chunk = vma->vm_private_data;

		info->offset = kheap_vma_offset(vma, chunk, addr);
		info->token = chunk->token;
		info->chunk_size = READ_ONCE(chunk->size);
		info->phys = chunk->phys + info->offset;
		/* A mapping may outlast the part SHRINK cut off. */
		if (info->offset < info->chunk_size)
			ret = 0;
	}
	mmap_read_unlock(mm);
	return ret;
}
