/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Bridges between the kernel APIs kheap is built against (6.1 to 6.12).
 * This is the only file that differs by kernel; the rest of the module is
 * written against the newest API.  module/Kbuild detects what the kernel
 * being built against lacks and defines KHEAP_NEED_* accordingly.
 *
 * Differences that need nothing here:
 * - alloc_contig_range() and alloc_pages_exact() became macros around
 *   *_noprof() variants in 6.10, with the same arguments;
 * - MAX_ORDER changed meaning in 6.4 and became MAX_PAGE_ORDER in 6.8,
 *   but MAX_ORDER_NR_PAGES always counts the pages of the largest block.
 */
#ifndef _KHEAP_COMPAT_H
#define _KHEAP_COMPAT_H

#include <linux/mm.h>
#include <linux/mmap_lock.h>

#ifdef KHEAP_NEED_VM_FLAGS_MOD
/* Before 6.3, vma->vm_flags is written directly. */
static inline void vm_flags_mod(struct vm_area_struct *vma,
				vm_flags_t set, vm_flags_t clear)
{
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
}
#endif

#ifdef KHEAP_NEED_ZAP_PAGE_RANGE_SINGLE
/* Before 6.3, zap_page_range() is the exported one. */
static inline void kheap_zap_page_range_single(struct vm_area_struct *vma,
					       unsigned long address,
					       unsigned long size, void *details)
{
	zap_page_range(vma, address, size);
}

#define zap_page_range_single kheap_zap_page_range_single
#endif

#ifdef KHEAP_NEED_VMA_START_WRITE
/* Before 6.4, VMAs have no locks of their own: mmap_lock covers them. */
static inline void vma_start_write(struct vm_area_struct *vma)
{
	mmap_assert_write_locked(vma->vm_mm);
}
#endif

#endif /* _KHEAP_COMPAT_H */
