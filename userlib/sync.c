// SPDX-License-Identifier: MIT
/*
 * sync.c - kheap_sync(): cache maintenance around a device's DMA.
 *
 * A range of a block is synced through the chunk that holds it, for every
 * device the process has attached (KHEAP_IOC_SYNC), so the range must lie
 * inside one chunk: every block does.  The chunk is looked up and used
 * under the heap lock, so a concurrent free cannot hand it back to the
 * kernel between the lookup and the system call.
 */
#include <errno.h>

#include "internal.h"

API int kheap_sync(const void *p, size_t len, int flags)
{
	uintptr_t v = (uintptr_t)p, off = v - khm.lo;
	struct chunk *ch;
	unsigned int k;
	int err = 0;

	if (flags != KHEAP_SYNC_FOR_DEVICE && flags != KHEAP_SYNC_FOR_CPU) {
		errno = EINVAL;
		return -1;
	}
	heap_lock();
	if (off >= khm.span || (k = khm.kind[off >> GRANULE_SHIFT]) == K_NONE) {
		err = -EINVAL;
		goto out;
	}
	ch = kh.owner[off >> GRANULE_SHIFT];
	/* Inside the chunk, end included, without wrapping. */
	if (len > ch->c.size || v - ch->start > ch->c.size - len) {
		err = -EINVAL;
		goto out;
	}
	/*
	 * A parent's chunk still shared with a fork child belongs to the
	 * parent's file, which the child's devices never see: nothing to do.
	 * A private inherited one becomes the child's own first, as for
	 * kheap_phys(), so that its token is the child's.
	 */
	if (!len || (k & K_FOREIGN) || (ch->c.inherited && ch->c.shared))
		goto out;
	err = heap_chunk_own(ch);
	if (!err && kh.prov->sync)
		err = kh.prov->sync(&ch->c, v - ch->start, len,
				    (unsigned int)flags);
out:
	heap_unlock();
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}
