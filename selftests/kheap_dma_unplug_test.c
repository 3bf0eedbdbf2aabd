// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_dma_unplug_test: an attached device is hot-unplugged (sysfs
 * "remove") and comes back (bus rescan).
 *
 * The attachment outlives the device: DMA_ADDR then says ENODEV, DETACH
 * and close() still work, and the device, once back, attaches afresh.
 * This changes the machine's PCI devices, so kheap_dma.sh runs it last,
 * in a process of its own.  Needs the module loaded, root and an edu
 * device without a driver (the last one of $KHEAP_EDU, see
 * kheap_dma_lib.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_dma_lib.h"
#include "kheap_kmsg_test.h"

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_dma_unplug_init(void)
{
	int fd = kheap_open();

	if (fd < 0) {
		ksft_print_header();
		ksft_exit_skip("%s: %s\n", KHEAP_DEV, strerror(-fd));
	}
	close(fd);
	if (geteuid()) {
		ksft_print_header();
		ksft_exit_skip("device tests need root\n");
	}
	kmsg_fd = kheap_kmsg_open();
}

FIXTURE(unplug) {
	int fd;
	uint64_t pg;
	struct kheap_edu_dev edu[KHEAP_EDU_MAX];
	const struct kheap_edu_dev *dev;
};

FIXTURE_SETUP(unplug)
{
	int n;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
	n = kheap_edu_list(self->edu, KHEAP_EDU_MAX);
	ASSERT_LE(0, n) TH_LOG("$KHEAP_EDU: %s", kheap_errname(n));
	self->dev = n ? &self->edu[n - 1] : NULL;
}

FIXTURE_TEARDOWN(unplug)
{
	if (self->fd >= 0)
		close(self->fd);
	/* Whatever happened, bring the device back for whoever is next. */
	if (self->dev && !kheap_pci_present(self->dev->bdf))
		kheap_pci_rescan(self->dev->bdf);
}

static uint64_t attachments(int fd)
{
	struct kheap_info info;

	memset(&info, 0, sizeof(info));
	kheap_info(fd, &info);
	return info.attachments;
}

TEST_F_TIMEOUT(unplug, remove_and_rescan, 120)
{
	const struct kheap_edu_dev *d = self->dev;
	struct kheap_attach att, other, again;
	struct kheap_alloc a, b;
	uint64_t addr, da, db;
	struct kheap_info info;
	uint8_t *pa, *pb;
	char drv[64];
	struct edu e;
	int ret, fd2;

	if (!d)
		SKIP(return, "no edu device");
	ASSERT_EQ(0, kheap_alloc(self->fd, 2 * self->pg, 0, &a));
	pa = kheap_map(self->fd, a.token, a.size_out);
	ASSERT_NE(MAP_FAILED, (void *)pa);
	ret = kheap_attach(self->fd, d->bdf, d->bits, &att);
	ASSERT_EQ(0, ret) TH_LOG("ATTACH %s: %s", d->bdf, kheap_errname(ret));
	ASSERT_EQ(0, kheap_dma_addr(self->fd, a.token, att.handle, &addr));
	/* A second file keeps its attachment across the removal. */
	fd2 = kheap_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, kheap_attach(fd2, d->bdf, d->bits, &other));

	ret = kheap_pci_remove(d->bdf);
	ASSERT_EQ(0, ret) TH_LOG("removing %s: %s", d->bdf, kheap_errname(ret));
	ret = kheap_dma_addr(self->fd, a.token, att.handle, &addr);
	EXPECT_EQ(-ENODEV, ret) TH_LOG("DMA_ADDR after removal: %s",
				       kheap_errname(ret));
	EXPECT_EQ(1ULL, attachments(self->fd));
	ret = kheap_attach(self->fd, d->bdf, d->bits, &again);
	EXPECT_EQ(-ENODEV, ret) TH_LOG("ATTACH of a removed device: %s",
				       kheap_errname(ret));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_EQ(-EINVAL, kheap_detach(self->fd, att.handle));
	EXPECT_EQ(0ULL, attachments(self->fd));
	/* The other file just goes away, attachment and all. */
	EXPECT_EQ(1ULL, attachments(fd2));
	close(fd2);

	ret = kheap_pci_rescan(d->bdf);
	ASSERT_EQ(0, ret) TH_LOG("rescan for %s: %s", d->bdf, kheap_errname(ret));
	ASSERT_TRUE(edu_is_edu(d->bdf));
	ASSERT_EQ(0, kheap_pci_driver(d->bdf, drv, sizeof(drv)));
	ASSERT_STREQ("", drv);

	/* Back: a fresh attachment moves data again. */
	ret = kheap_attach(self->fd, d->bdf, d->bits, &again);
	ASSERT_EQ(0, ret) TH_LOG("ATTACH after rescan: %s", kheap_errname(ret));
	EXPECT_NE(att.handle, again.handle);
	ASSERT_EQ(0, kheap_alloc(self->fd, 2 * self->pg, 0, &b));
	pb = kheap_map(self->fd, b.token, b.size_out);
	ASSERT_NE(MAP_FAILED, (void *)pb);
	ASSERT_EQ(0, kheap_dma_addr(self->fd, a.token, again.handle, &da));
	ASSERT_EQ(0, kheap_dma_addr(self->fd, b.token, again.handle, &db));
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	ret = edu_open(&e, d->bdf);
	ASSERT_EQ(0, ret) TH_LOG("edu %s: %s", d->bdf, kheap_errname(ret));
	edu_set_mask(&e, kheap_bits_mask(d->bits));
	kheap_fill(pa, a.size_out, getpid());
	memset(pb, 0, b.size_out);
	ASSERT_EQ(0, edu_dma_to_dev(&e, da + self->pg - 300, 0, 1000));
	ASSERT_EQ(0, edu_dma_from_dev(&e, 0, db + self->pg - 700, 1000));
	EXPECT_EQ(0, memcmp(pa + self->pg - 300, pb + self->pg - 700, 1000))
		TH_LOG("no data through %s after rescan", d->bdf);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, again.handle));
	munmap(pa, a.size_out);
	munmap(pb, b.size_out);
}

/* Must stay last: what the tests above made the kernel say. */
KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
