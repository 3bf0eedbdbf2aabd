/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A user-space driver for QEMU's "edu" PCI device, the DMA engine of
 * kheap's device address tests.
 *
 * edu has one 1 MiB MMIO BAR and a 4 KiB buffer that its DMA engine
 * copies to or from memory, at the address the driver programs: a
 * physical address without an IOMMU, an IOVA behind one.  The device
 * reports nothing about a failed transfer (an IOMMU fault, say), so a
 * caller learns whether the bytes arrived only by looking at them.
 *
 * Two ways in: edu_open() drives a device that has no kernel driver
 * through sysfs (config space for bus mastering, resource0 for the BAR);
 * edu_attach_bar() drives a BAR that someone else mapped, e.g. from a
 * VFIO device file.  Nothing here uses the kselftest harness, so any
 * test program can link it.
 */
#ifndef KHEAP_EDU_H
#define KHEAP_EDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EDU_VENDOR	0x1234
#define EDU_DEVICE	0x11e8
#define EDU_ID		0x010000ed	/* register 0x00: version 1.0, "ed" */

/* The device's buffer, in its own DMA address space. */
#define EDU_BUF_ADDR	0x40000ULL
#define EDU_BUF_SIZE	4096
/*
 * QEMU refuses a transfer that reaches the buffer's last byte, so at
 * most this many bytes move at a time, from offset 0.
 */
#define EDU_XFER_MAX	(EDU_BUF_SIZE - 1)

/* "0000:00:10.0" and its NUL */
#define EDU_BDF_LEN	16

/* A transfer that has not finished after this long is an error. */
#define EDU_TIMEOUT_MS	5000

struct edu {
	char bdf[EDU_BDF_LEN];	/* empty for edu_attach_bar() */
	volatile uint8_t *bar;	/* BAR0 */
	size_t bar_len;
	bool own_bar;		/* edu_open() mapped it: unmap on close */
	int cfg_fd;		/* sysfs config, or -1 */
	uint16_t cmd_saved;	/* PCI command word before edu_open() */
	uint64_t mask;		/* highest address we let the engine use */
	unsigned int timeout_ms;
};

/*
 * Fill @bdfs with the PCI addresses of up to @max edu devices, sorted.
 * Returns how many there are (may exceed @max), or -errno.
 */
int edu_find(char (*bdfs)[EDU_BDF_LEN], int max);

/* Whether /sys/bus/pci/devices/@bdf is an edu device. */
bool edu_is_edu(const char *bdf);

/*
 * Set the memory space and bus master bits of the PCI command word in
 * config space read and written through @fd at @base (sysfs "config" at
 * 0, or a VFIO config region at its offset).  @old (may be NULL) gets
 * the previous word.  0 or -errno.
 */
int edu_cfg_enable(int fd, off_t base, uint16_t *old);

/*
 * Drive the edu at @bdf, which must have no kernel driver: enable memory
 * decoding and bus mastering, map resource0 and check the ID and the
 * liveness register.  0 or -errno (-ENODEV: not an edu, or no response).
 */
int edu_open(struct edu *e, const char *bdf);

/* Drive an edu whose BAR0 is already mapped at @bar (@len bytes). */
int edu_attach_bar(struct edu *e, volatile void *bar, size_t len);

/* Undo edu_open() (restoring the command word) or edu_attach_bar(). */
void edu_close(struct edu *e);

/*
 * Refuse DMA addresses above @mask from now on (-ERANGE): edu itself
 * would silently cut the address to its own mask and write elsewhere.
 */
void edu_set_mask(struct edu *e, uint64_t mask);

/*
 * Copy @len bytes (1 to EDU_XFER_MAX, the buffer's last byte out of
 * reach) between memory at device address @addr and the device buffer
 * at offset @off, and wait until the engine is done.  0, -EINVAL (bad
 * range), -ERANGE (beyond the mask), -EBUSY (a transfer is running) or
 * -ETIMEDOUT.
 */
int edu_dma_to_dev(struct edu *e, uint64_t addr, uint32_t off, uint32_t len);
int edu_dma_from_dev(struct edu *e, uint32_t off, uint64_t addr, uint32_t len);

#endif /* KHEAP_EDU_H */
