/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the kheap device address tests: the ABI 2 ioctls as -errno
 * wrappers, the edu devices a test bed offers and what the test bed
 * promised, and a kernel log reader.  No kselftest harness in here.
 *
 * The test bed describes its edu devices in $KHEAP_EDU, a list of
 * "BDF@BITS" words ("0000:00:10.0@28 0000:00:11.0@32"): BITS is the
 * width of the address the device drives (QEMU's edu dma_mask), which
 * the guest has no way to read.  Without $KHEAP_EDU every edu found in
 * sysfs is taken, at QEMU's default of 28 bits.
 */
#ifndef KHEAP_DMA_LIB_H
#define KHEAP_DMA_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kheap_edu.h"
#include "kheap_lib.h"
#include "kheap_pci.h"

#define KHEAP_EDU_MAX	8

struct kheap_edu_dev {
	char bdf[EDU_BDF_LEN];
	unsigned int bits;	/* address bits the device drives */
};

/* The test bed's edu devices: how many (at most @max), or -errno. */
int kheap_edu_list(struct kheap_edu_dev *devs, int max);

/* Highest address of a @bits-bit device. */
static inline uint64_t kheap_bits_mask(unsigned int bits)
{
	return bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1;
}

/*
 * ABI 2 wrappers: zero the struct, fill the inputs, return -errno.
 * kheap_attach() takes the device by name.
 */
int kheap_attach(int fd, const char *name, uint64_t dma_bits,
		 struct kheap_attach *out);
int kheap_detach(int fd, uint64_t handle);
int kheap_dma_addr(int fd, uint64_t token, uint64_t handle, uint64_t *addr);
int kheap_free_flags(int fd, uint64_t token, uint64_t flags);

/* Read a small text file whole, without the trailing newline. */
int kheap_read_text(const char *path, char *buf, size_t len);

/* A translating IOMMU is registered (/sys/class/iommu is not empty). */
bool kheap_iommu_present(void);

/* $KHEAP_DMA_IOMMU: 1 or 0 when the test bed says, -1 when it does not. */
int kheap_iommu_expected(void);

/*
 * $KHEAP_DMA_REQUIRE lists tests that the test bed set up to run: for
 * them a missing precondition is a failure, not a skip.
 */
bool kheap_dma_required(const char *test);

/*
 * Read every kernel log record logged since @fd's position (a reader from
 * kheap_kmsg_open()): returns how many contain @needle, or -errno, and
 * stores in @bad how many carry a warning, BUG, oops or stack trace and
 * in @first (may be NULL) the first record that contained @needle.
 */
int kheap_kmsg_grep(int fd, const char *needle, int *bad, char *first,
		    size_t len);

#endif /* KHEAP_DMA_LIB_H */
