// SPDX-License-Identifier: GPL-2.0-only
/*
 * Chunks across fork(): private by default, copied page by page.
 *
 * A fork() child must not write into its parent's heap, and the parent's
 * chunk must stay where it is: its physical address is known to the
 * parent and to its devices.  So the child gets a *fork copy*: a chunk of
 * its own, as large as the parent's and physically contiguous too, that
 * is allocated from the pool and filled one page at a time, when that
 * page is first touched by either side:
 *
 *  - fork() duplicates each VMA: kheap_vm_open() sees a VMA of another
 *    process and calls kheap_fork_vma().  The child's VMA is switched to
 *    &kheap_copy_vm_ops and maps a &struct kheap_copy instead of the
 *    chunk; VM_WIPEONFORK keeps the core from copying the parent's page
 *    tables into it (dup_mmap() tests the flag after ->open).  The
 *    parent's page tables for the VMA are zapped instead.
 *  - The parent's next access to a page faults into kheap_vm_fault(),
 *    which calls kheap_fork_preserve() first: the page is copied into
 *    every copy of the chunk that lacks it, then mapped again.
 *  - The child's access to a page faults into kheap_copy_fault(), which
 *    copies the page from the parent's chunk if not done yet and maps the
 *    copy's page.
 *
 * A copy is allocated when the first page is needed: a fork() followed by
 * exec() allocates and copies nothing unless the parent touches its heap
 * before the child's exec().  When the pool cannot hold a copy, the
 * parent goes on unharmed and the copy is lost: its pages give SIGBUS in
 * the child.  A copy belongs to no file until the child adopts it
 * (KHEAP_IOC_ADOPT), which fills it and makes it an ordinary chunk of the
 * child's file.
 *
 * A child that forks again before adopting its copy fills it first, and
 * the grandchild copies that, like any chunk.
 *
 * Chunks allocated KHEAP_ALLOC_SHARED are not copied: both processes map
 * the same pages, as before ABI 3.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "kheap.h"
#include "kheap_compat.h"

/**
 * struct kheap_copy - a fork() child's copy of a chunk
 * @ref: one per VMA of the child that maps the copy
 * @kd: the device
 * @mm: the child's mm, the key under which the VMAs duplicated by one
 *	fork() share one copy of a chunk; compared, never dereferenced
 * @token: the copied chunk's token: the VMAs' page offsets count from it
 * @size: bytes
 * @align: physical alignment of @dst: the copied chunk's, up to its size,
 *	so that blocks aligned inside it stay physically aligned
 * @src: the chunk copied, with a reference, while pages are missing
 * @node: entry in @src's &kheap_chunk.copies while @src is set
 * @dst: the copy, with a reference, once allocated; only its pages set in
 *	@copied are ever mapped, so it needs no clearing
 * @copied: pages of @dst filled, while @src is set
 * @nr_copied: bits set in @copied
 * @lost: the pool could not hold @dst when the parent was about to change
 *	a page
 *
 * @ref and the immutable @kd, @mm, @token, @size and @align aside, every
 * field is under &kheap_dev.fork_lock.
 */
struct kheap_copy {
	struct kref ref;
	struct kheap_dev *kd;
	const struct mm_struct *mm;
	u64 token;
	size_t size;
	u64 align;
	struct kheap_chunk *src;
	struct list_head node;
	struct kheap_chunk *dst;
	unsigned long *copied;
	unsigned long nr_copied;
	bool lost;
};

/* Stop copying from the source: done, or lost.  Returns the source. */
static struct kheap_chunk *kheap_copy_detach(struct kheap_copy *copy)
{
	struct kheap_chunk *src = copy->src;

	lockdep_assert_held(&copy->kd->fork_lock);

	list_del_init(&copy->node);
	copy->src = NULL;
	kvfree(copy->copied);
	copy->copied = NULL;
	return src;
}

/*
 * Fill page @index of @copy unless it is already.  Returns false when the
 * copy has no chunk and the pool cannot give it one now, is lost, or the
 * source page is poisoned.
 */
static bool kheap_copy_fill(struct kheap_copy *copy, pgoff_t index)
{
	struct kheap_chunk *src = copy->src;
	phys_addr_t off = (phys_addr_t)index << PAGE_SHIFT;

	lockdep_assert_held(&copy->kd->fork_lock);

	if (!src)
		return !!copy->dst;	/* complete, or lost */
	/* A page the chunk gained after the fork (EXTEND): not the copy's. */
	if (off >= copy->size)
		return true;
	if (!copy->dst) {
		copy->dst = kheap_chunk_new(copy->kd, copy->size, copy->align,
					    U64_MAX, copy->token, copy->size);
		if (!copy->dst)
			return false;
	}
	if (test_bit(index, copy->copied))
		return true;
	/* Reading a page the hardware reported bad could crash: no copy. */
	if (PageHWPoison(kheap_phys_to_page(src->phys + off)))
		return false;
	__set_bit(index, copy->copied);
	kheap_pool_copy_page(copy->dst->phys + off, src->phys + off);
	/* The caller holds a reference on the source besides ours. */
	if (++copy->nr_copied == kheap_chunk_pages(copy->dst))
		kheap_chunk_put(kheap_copy_detach(copy));
	return true;
}

/* Fill every page @copy still lacks.  Returns 0, -ENOMEM, -EIO or -EINTR. */
static int kheap_copy_complete(struct kheap_copy *copy, bool killable)
{
	unsigned long pages = copy->size >> PAGE_SHIFT;

	lockdep_assert_held(&copy->kd->fork_lock);

	if (copy->lost)
		return -EIO;
	while (copy->src) {
		unsigned long index = find_first_zero_bit(copy->copied, pages);

		if (!kheap_copy_fill(copy, index))
			return -ENOMEM;
		if (killable && fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/* Called by kref_put_mutex() with &kheap_dev.fork_lock held; drops it. */
static void kheap_copy_release(struct kref *ref)
{
	struct kheap_copy *copy = container_of(ref, struct kheap_copy, ref);
	struct kheap_chunk *src = NULL;

	if (copy->src)
		src = kheap_copy_detach(copy);
	mutex_unlock(&copy->kd->fork_lock);

	if (src)
		kheap_chunk_put(src);
	if (copy->dst)
		kheap_chunk_put(copy->dst);
	kfree(copy);
}

static void kheap_copy_put(struct kheap_copy *copy)
{
	kref_put_mutex(&copy->ref, kheap_copy_release, &copy->kd->fork_lock);
}

/*
 * The copy of @src that the fork() creating @mm makes, with a new
 * reference; NULL when there is no memory for its bookkeeping.
 */
static struct kheap_copy *kheap_copy_get(struct kheap_chunk *src,
					 const struct mm_struct *mm)
{
	/* Read once: EXTEND may grow @src meanwhile (kheap_resize.c). */
	size_t size = READ_ONCE(src->size);
	unsigned long pages = size >> PAGE_SHIFT;
	struct kheap_copy *copy;

	lockdep_assert_held(&src->kd->fork_lock);

	list_for_each_entry(copy, &src->copies, node) {
		if (copy->mm == mm) {
			kref_get(&copy->ref);
			return copy;
		}
	}

	copy = kzalloc(sizeof(*copy), GFP_KERNEL);
	if (!copy)
		return NULL;
	copy->copied = kvcalloc(BITS_TO_LONGS(pages), sizeof(long),
				GFP_KERNEL);
	if (!copy->copied) {
		kfree(copy);
		return NULL;
	}
	kref_init(&copy->ref);
	copy->kd = src->kd;
	copy->mm = mm;
	copy->token = src->token;
	copy->size = size;
	copy->align = roundup_pow_of_two(size);
	while (src->phys & (copy->align - 1))
		copy->align >>= 1;
	kheap_chunk_get(src);
	copy->src = src;
	list_add_tail(&copy->node, &src->copies);
	return copy;
}

/**
 * kheap_fork_vma() - fork() duplicated a VMA mapping a chunk
 * @vma: the child's new VMA, a copy of @parent
 * @parent: the parent's VMA
 * @src: the chunk @parent maps
 *
 * Called from the ->open of @parent's operations, with both processes'
 * mmap_lock held for writing and before the core copies page tables.
 * Takes the references @vma needs.  Cannot fail: when no bookkeeping can
 * be allocated, the child's copy is lost from the start.
 */
void kheap_fork_vma(struct vm_area_struct *vma, struct vm_area_struct *parent,
		    struct kheap_chunk *src)
{
	struct kheap_dev *kd = src->kd;
	struct kheap_copy *copy = NULL;

	if (src->shared) {
		/* Both map the same pages: the core copies the page tables. */
		kheap_chunk_get(src);
		return;
	}

	if (parent) {
		mutex_lock(&kd->fork_lock);
		copy = kheap_copy_get(src, vma->vm_mm);
		mutex_unlock(&kd->fork_lock);
	}

	vm_flags_mod(vma, VM_WIPEONFORK, 0);
	vma->vm_ops = &kheap_copy_vm_ops;
	vma->vm_private_data = copy;

	/* From now on, the parent's accesses fault and copy pages first. */
	if (copy)
		zap_page_range_single(parent, parent->vm_start,
				      parent->vm_end - parent->vm_start, NULL);
}

/**
 * kheap_fork_preserve() - copy a page into the copies that lack it
 * @chunk: a chunk with copies still to fill, mapped by the caller
 * @index: the page about to be mapped (and so changed) again
 *
 * A copy that cannot get its chunk from the pool now is lost: the owner
 * of @chunk must never wait for, or fail because of, a child.
 */
void kheap_fork_preserve(struct kheap_chunk *chunk, pgoff_t index)
{
	struct kheap_dev *kd = chunk->kd;
	struct kheap_copy *copy, *next;

	mutex_lock(&kd->fork_lock);
	list_for_each_entry_safe(copy, next, &chunk->copies, node) {
		if (kheap_copy_fill(copy, index))
			continue;
		copy->lost = true;
		/* The caller's mapping holds @chunk: never the last put. */
		kheap_chunk_put(kheap_copy_detach(copy));
	}
	mutex_unlock(&kd->fork_lock);
}

/* The copy's chunk with page @index filled, or NULL (SIGBUS). */
static struct kheap_chunk *kheap_copy_page(struct kheap_copy *copy,
					   pgoff_t index)
{
	struct kheap_chunk *dst = NULL;

	mutex_lock(&copy->kd->fork_lock);
	if (kheap_copy_fill(copy, index))
		dst = copy->dst;
	mutex_unlock(&copy->kd->fork_lock);

	/* The copy may itself have been forked: its copies come first. */
	if (dst && !list_empty(&dst->copies))
		kheap_fork_preserve(dst, index);
	return dst;
}

static vm_fault_t kheap_copy_fault(struct vm_fault *vmf)
{
	struct kheap_copy *copy = vmf->vma->vm_private_data;
	struct kheap_chunk *dst;
	pgoff_t first, index;

	if (!copy)
		return VM_FAULT_SIGBUS;	/* lost at fork() */
	first = copy->token >> PAGE_SHIFT;
	/* Cannot happen: the range was checked at mmap() and cannot grow. */
	if (vmf->pgoff < first || vmf->pgoff - first >= copy->size >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;
	index = vmf->pgoff - first;

	dst = kheap_copy_page(copy, index);
	if (!dst)
		return VM_FAULT_SIGBUS;
	/* The VMA's reference on the copy keeps @dst. */
	return kheap_mmap_insert(vmf, dst, index);
}

static void kheap_copy_vm_open(struct vm_area_struct *vma)
{
	struct kheap_copy *copy = vma->vm_private_data;
	struct kheap_chunk *dst = NULL;

	if (vma->vm_mm == current->mm) {
		/* Split or moved. */
		if (copy)
			kref_get(&copy->ref);
		return;
	}

	/*
	 * fork() of a child that maps a copy: fill the copy, which the
	 * grandchild then copies like any chunk.  A copy that cannot be
	 * filled is lost to the grandchild.
	 */
	if (copy) {
		mutex_lock(&copy->kd->fork_lock);
		if (!kheap_copy_complete(copy, false)) {
			dst = copy->dst;
			kheap_chunk_get(dst);
		}
		mutex_unlock(&copy->kd->fork_lock);
	}
	if (dst) {
		kheap_fork_vma(vma, vma_lookup(current->mm, vma->vm_start),
			       dst);
		kheap_chunk_put(dst);
	} else {
		vm_flags_mod(vma, VM_WIPEONFORK, 0);
		vma->vm_private_data = NULL;
	}
}

static void kheap_copy_vm_close(struct vm_area_struct *vma)
{
	struct kheap_copy *copy = vma->vm_private_data;

	if (copy)
		kheap_copy_put(copy);
}

const struct vm_operations_struct kheap_copy_vm_ops = {
	.open	= kheap_copy_vm_open,
	.close	= kheap_copy_vm_close,
	.fault	= kheap_copy_fault,
};

/**
 * kheap_fork_adopt() - make the fork copy mapped at @addr a chunk of @kf
 * @kf: the adopting file
 * @addr: a user address in the current process
 * @out: token, phys and size filled in on success
 *
 * Return: 0, -EINVAL (@addr is not in a fork copy), -EEXIST (@kf has that
 * token already), -ENOMEM (no room in the pool for the copy now), -EIO
 * (the copy was lost) or -EINTR.
 */
int kheap_fork_adopt(struct kheap_file *kf, unsigned long addr,
		     struct kheap_adopt *out)
{
	struct mm_struct *mm = current->mm;
	struct kheap_dev *kd = kf->kd;
	struct kheap_chunk *dst = NULL;
	struct vm_area_struct *vma;
	struct kheap_copy *copy;
	int ret;

	if (!mm)
		return -EINVAL;
	if (mmap_write_lock_killable(mm))
		return -EINTR;

	ret = -EINVAL;
	vma = vma_lookup(mm, addr);
	if (!vma || vma->vm_ops != &kheap_copy_vm_ops)
		goto out_unlock;
	ret = -EIO;
	copy = vma->vm_private_data;
	if (!copy)
		goto out_unlock;

	mutex_lock(&kd->fork_lock);
	ret = kheap_copy_complete(copy, true);
	if (!ret) {
		dst = copy->dst;
		kheap_chunk_get(dst);
	}
	mutex_unlock(&kd->fork_lock);
	if (ret)
		goto out_unlock;

	ret = kheap_file_insert(kf, dst);
	if (ret)
		goto out_unlock;

	/* Every VMA of the copy (a split leaves several) maps the chunk. */
	{
		VMA_ITERATOR(vmi, mm, 0);

		for_each_vma(vmi, vma) {
			if (vma->vm_ops != &kheap_copy_vm_ops ||
			    vma->vm_private_data != copy)
				continue;
			vma_start_write(vma);
			vm_flags_mod(vma, 0, VM_WIPEONFORK);
			kheap_chunk_get(dst);
			kheap_mmap_adopt_vma(vma, kf, dst);
			kheap_copy_put(copy);
		}
	}
	out->token = dst->token;
	out->phys = kf->show_phys ? dst->phys : 0;
	out->size = dst->size;

out_unlock:
	mmap_write_unlock(mm);
	if (dst)
		kheap_chunk_put(dst);
	return ret;
}
