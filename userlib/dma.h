/* SPDX-License-Identifier: MIT */
/*
 * dma.h - hooks by which the allocator tells dma.c about its chunks.
 * Both run under kh.lock.
 */
#ifndef KHEAP_DMA_H
#define KHEAP_DMA_H

struct chunk;

/* A chunk arrived: learn its device addresses and map it into every VFIO
 * container.  0, or -errno with nothing left mapped. */
int dma_chunk_added(struct chunk *ch);
/* A chunk is about to go back to the provider. */
void dma_chunk_removed(const struct chunk *ch);
/* In a fork child (reset 0) or for a new heap (reset 1): no attachments,
 * no containers. */
void dma_forget(int reset);
/* Devices attached or VFIO containers registered: every chunk is mapped
 * for them at its size, so chunks must not change size. */
int dma_in_use(void);

#endif
