// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_vfio_test: kheap chunks in a VFIO type1 container, driven by a
 * user-space driver the DPDK way.
 *
 * An edu device (the last of $KHEAP_EDU, see kheap_dma_lib.h) is bound
 * to vfio-pci; its group goes into a container with VFIO_TYPE1v2_IOMMU;
 * BAR0 is mapped from the VFIO device file and bus mastering enabled
 * through its config region.  Chunks from /dev/kheap are mapped with
 * VFIO_IOMMU_MAP_DMA at IOVA = physical address, so the address ALLOC
 * reported is the device address.  Needs an IOMMU, vfio-pci loaded, the
 * module loaded and root; puts the device back without a driver.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
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

#define VFIO_PCI	"vfio-pci"

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_vfio_test_init(void)
{
	int fd = kheap_open();

	if (fd < 0) {
		ksft_print_header();
		ksft_exit_skip("%s: %s\n", KHEAP_DEV, strerror(-fd));
	}
	close(fd);
	if (geteuid()) {
		ksft_print_header();
		ksft_exit_skip("VFIO needs root\n");
	}
	kmsg_fd = kheap_kmsg_open();
}

FIXTURE(vfio) {
	int kfd;
	uint64_t pg;
	char bdf[EDU_BDF_LEN];
	bool bound;
	struct vfio_dev v;
	struct edu e;
	bool edu_up;
	const char *why;	/* set up for nothing, and why */
};

/*
 * The 6.1 harness runs the test even when its setup used SKIP(), so the
 * setup leaves a reason and every test skips on it - or fails, when the
 * test bed promised VFIO ("vfio" in $KHEAP_DMA_REQUIRE).
 */
#define NEED_SETUP() do {						\
	if (self->why && kheap_dma_required("vfio")) {			\
		TH_LOG("required by $KHEAP_DMA_REQUIRE, but: %s",	\
		       self->why);					\
		ASSERT_TRUE(false);					\
	}								\
	if (self->why)							\
		SKIP(return, "%s", self->why);				\
} while (0)

FIXTURE_SETUP(vfio)
{
	struct kheap_edu_dev edu[KHEAP_EDU_MAX];
	const char *step = "";
	int n, ret;

	self->v.container = self->v.group = self->v.device = self->kfd = -1;
	self->pg = getpagesize();
	self->why = "no IOMMU: VFIO type1 needs one";
	if (!kheap_iommu_present())
		return;
	n = kheap_edu_list(edu, KHEAP_EDU_MAX);
	ASSERT_LE(0, n);
	self->why = "no edu device";
	if (!n)
		return;
	self->why = "vfio-pci is not loaded";
	if (access("/sys/bus/pci/drivers/" VFIO_PCI, F_OK))
		return;
	self->why = NULL;
	strcpy(self->bdf, edu[n - 1].bdf);

	self->kfd = kheap_open();
	ASSERT_LE(0, self->kfd);
	ASSERT_EQ(0, kheap_wait_idle(self->kfd, KHEAP_SETTLE_MS, NULL));

	/* A test that died in its setup may have left it bound. */
	kheap_pci_unbind(self->bdf);
	ret = kheap_pci_bind(self->bdf, VFIO_PCI);
	ASSERT_EQ(0, ret) TH_LOG("binding %s to vfio-pci: %s", self->bdf,
				 kheap_errname(ret));
	self->bound = true;
	ret = vfio_dev_open(&self->v, self->bdf, &step);
	ASSERT_EQ(0, ret) TH_LOG("VFIO %s: %s: %s", self->bdf, step,
				 kheap_errname(ret));
	ret = edu_cfg_enable(self->v.device, self->v.cfg_off, NULL);
	ASSERT_EQ(0, ret) TH_LOG("bus mastering: %s", kheap_errname(ret));
	ret = edu_attach_bar(&self->e, self->v.bar0, self->v.bar0_len);
	ASSERT_EQ(0, ret) TH_LOG("edu through VFIO: %s", kheap_errname(ret));
	edu_set_mask(&self->e, kheap_bits_mask(edu[n - 1].bits));
	self->edu_up = true;
}

FIXTURE_TEARDOWN(vfio)
{
	if (self->edu_up)
		edu_close(&self->e);
	vfio_dev_close(&self->v);
	if (self->bound)
		kheap_pci_unbind(self->bdf);
	if (self->kfd >= 0)
		close(self->kfd);
}

struct chunk {
	struct kheap_alloc a;
	uint8_t *p;
};

static void chunk_new(struct __test_metadata *_metadata, int fd,
		      uint64_t size, struct chunk *c)
{
	int ret = kheap_alloc(fd, size, 0, &c->a);

	ASSERT_EQ(0, ret) TH_LOG("ALLOC: %s", kheap_errname(ret));
	ASSERT_NE(0ULL, c->a.phys) TH_LOG("physical addresses withheld");
	c->p = kheap_map(fd, c->a.token, c->a.size_out);
	ASSERT_NE(MAP_FAILED, (void *)c->p);
}

/* Map a whole chunk for the container at IOVA = its physical address. */
static int map_dma(struct vfio_dev *v, const struct chunk *c)
{
	return vfio_dev_map(v, c->p, c->a.phys, c->a.size_out);
}

static int unmap_dma(struct vfio_dev *v, const struct chunk *c)
{
	return vfio_dev_unmap(v, c->a.phys, c->a.size_out);
}

/* Mapped at their physical addresses, chunks are reached there. */
TEST_F(vfio, chunk_at_physical_address)
{
	struct chunk a, b;
	uint64_t pg = self->pg;
	int ret;

	NEED_SETUP();
	chunk_new(_metadata, self->kfd, 3 * pg, &a);
	chunk_new(_metadata, self->kfd, 3 * pg, &b);
	ret = map_dma(&self->v, &a);
	ASSERT_EQ(0, ret) TH_LOG("MAP_DMA: %s", kheap_errname(ret));
	ret = map_dma(&self->v, &b);
	ASSERT_EQ(0, ret) TH_LOG("MAP_DMA: %s", kheap_errname(ret));

	/* a -> device -> b, straddling a page boundary of each. */
	kheap_fill(a.p, a.a.size_out, 0x5eed0001ULL ^ getpid());
	memset(b.p, 0, b.a.size_out);
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, a.a.phys + pg - 123, 0, 3000));
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, b.a.phys + 2 * pg - 1000,
				      3000));
	EXPECT_EQ(0, memcmp(a.p + pg - 123, b.p + 2 * pg - 1000, 3000))
		TH_LOG("no data at the physical addresses through VFIO");
	EXPECT_EQ(-1, kheap_check_zero(b.p, 2 * pg - 1000));
	EXPECT_EQ(-1, kheap_check_zero(b.p + 2 * pg + 2000, pg - 2000));

	/* Unmapped again, b is out of reach. */
	ASSERT_EQ(0, unmap_dma(&self->v, &b));
	memset(b.p, 0, b.a.size_out);
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, b.a.phys, 3000));
	EXPECT_EQ(-1, kheap_check_zero(b.p, b.a.size_out))
		TH_LOG("the device wrote an unmapped chunk");
	ASSERT_EQ(0, unmap_dma(&self->v, &a));
	munmap(a.p, a.a.size_out);
	munmap(b.p, b.a.size_out);

	/*
	 * VFIO unpinned every page it pinned: freed, both chunks come
	 * straight back.  (VFIO never unpins a PG_reserved page, which a
	 * reserved pool's ZONE_DEVICE pages start as.)
	 */
	EXPECT_EQ(0, kheap_free(self->kfd, a.a.token));
	EXPECT_EQ(0, kheap_free(self->kfd, b.a.token));
	EXPECT_EQ(0, kheap_wait_idle(self->kfd, KHEAP_SETTLE_MS, NULL))
		TH_LOG("pages still pinned after VFIO_IOMMU_UNMAP_DMA");
}

/* A chunk never mapped into the container is neither read nor written. */
TEST_F(vfio, unmapped_chunk_unreachable)
{
	struct chunk a, c;
	uint64_t pg = self->pg;

	NEED_SETUP();
	chunk_new(_metadata, self->kfd, 2 * pg, &a);
	chunk_new(_metadata, self->kfd, 2 * pg, &c);
	ASSERT_EQ(0, map_dma(&self->v, &a));

	/* Writes at c's physical address do not land... */
	kheap_fill(c.p, c.a.size_out, 0x5eed0002ULL ^ getpid());
	kheap_fill(a.p, a.a.size_out, 0x5eed0003ULL ^ getpid());
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, a.a.phys, 0, 4000));
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, c.a.phys + 10, 4000));
	EXPECT_EQ(-1, kheap_check(c.p, c.a.size_out, 0x5eed0002ULL ^ getpid()))
		TH_LOG("the device wrote a chunk not in its container");
	/* ...and reads from it bring nothing. */
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, c.a.phys, 0, 4000));
	memset(a.p, 0, a.a.size_out);
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, a.a.phys, 4000));
	EXPECT_NE(0, memcmp(a.p, c.p, 4000))
		TH_LOG("the device read a chunk not in its container");
	ASSERT_EQ(0, unmap_dma(&self->v, &a));
	munmap(a.p, a.a.size_out);
	munmap(c.p, c.a.size_out);
}

/* The device's DMA belongs to VFIO now: kheap's ATTACH stands aside. */
TEST_F(vfio, attach_refused)
{
	struct kheap_attach att;
	int ret;

	NEED_SETUP();
	ret = kheap_attach(self->kfd, self->bdf, 32, &att);
	EXPECT_EQ(-EBUSY, ret) TH_LOG("ATTACH of a device in a VFIO container: %s",
				      kheap_errname(ret));
	if (!ret)
		kheap_detach(self->kfd, att.handle);
}

/*
 * The same through libkheap's kheap_vfio_map() is kheap_vfio_libkheap_test,
 * built when the selftests are given a libkheap (KHEAP_USERLIB=).
 */

/* Must stay last: what the tests above made the kernel say. */
KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
