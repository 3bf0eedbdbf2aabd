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

#ifdef KHEAP_NEED_VM_FLAGS_MOD
/* Before 6.3, vma->vm_flags is written directly. */
static inline void vm_flags_mod(struct vm_area_struct *vma,
				vm_flags_t set, vm_flags_t clear)
{
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
}
#endif

#endif /* _KHEAP_COMPAT_H */
