// SPDX-License-Identifier: MIT
/*
 * export.c - kheap memory as a dma-buf (KHEAP_IOC_EXPORT, ABI 4).
 *
 * A dma-buf is a whole number of pages of one kernel chunk.  Every block
 * lies inside one chunk, and chunks start on a page boundary of the
 * window, so a page-aligned range of a block is a page range of its chunk
 * at offset (address - chunk start): that is all the kernel needs.  In a
 * fork child an inherited chunk is adopted first, as for kheap_phys().
 */
#include <errno.h>
#include <fcntl.h>

#include "internal.h"

API int kheap_export(void *ptr, size_t len, int flags)
{
	uintptr_t v = (uintptr_t)ptr;
	int mode = flags & O_ACCMODE;
	struct chunk *ch;
	size_t pg, off;
	int ret;

	if (flags & ~(O_ACCMODE | O_CLOEXEC) ||
	    (mode != O_RDONLY && mode != O_RDWR)) {
		errno = EINVAL;
		return -1;
	}
	fork_sync();
	if (v - khm.lo >= khm.span || khm.kind[gran_of(v)] == K_NONE) {
		errno = EINVAL;
		return -1;
	}

	heap_lock();
	pg = kh.pool.page_size;
	ch = kh.owner[gran_of(v)];
	off = v - ch->start;
	if (!len || (v | len) & (pg - 1) || v < ch->start ||
	    off >= ch->c.size || len > ch->c.size - off)
		ret = -EINVAL;
	else if (!kh.prov->export)
		ret = -EOPNOTSUPP;	/* a provider without dma-bufs */
	else
		ret = heap_chunk_own(ch);
	if (!ret)
		ret = kh.prov->export(&ch->c, off, len, flags);
	heap_unlock();

	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}
