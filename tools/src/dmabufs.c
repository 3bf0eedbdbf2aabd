// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exported dma-bufs (ABI 4), as the module reports them in sysfs: dmabufs,
 * the number that still exist, and dmabuf_extents, one "0x<offset>
 * 0x<length>" line per dma-buf (bytes from the pool's base, in the order
 * they were exported; a last line "..." when the list did not fit into a
 * sysfs page).  dmabuf_extents is root's alone with restrict_phys=1, like
 * free_extents.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kheapctl.h"

int read_dmabufs(struct dmabufs *d)
{
	char text[8192], *line, *save = NULL;

	memset(d, 0, sizeof(*d));
	if (read_u64(KHEAP_SYSFS "/dmabufs", &d->count))
		return -ENOENT;	/* a module older than ABI 4 */
	d->have_count = true;
	if (read_text(KHEAP_SYSFS "/dmabuf_extents", text, sizeof(text)))
		return 0;	/* root only with restrict_phys=1 */
	d->have_extents = true;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		uint64_t off, len;

		if (!strcmp(line, "...") || d->n == DMABUFS_SHOWN) {
			d->truncated = true;
			break;
		}
		if (sscanf(line, "0x%" SCNx64 " 0x%" SCNx64, &off, &len) != 2)
			return -EINVAL;
		d->ext[d->n].offset = off;
		d->ext[d->n].length = len;
		d->n++;
	}
	return 0;
}
