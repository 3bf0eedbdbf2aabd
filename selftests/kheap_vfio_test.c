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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_dma_lib.h"

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
	int container, group, device;
	void *bar;
	size_t bar_len;
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

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

FIXTURE_SETUP(vfio)
{
	struct vfio_group_status gstatus = { .argsz = sizeof(gstatus) };
	struct vfio_region_info bar = { .argsz = sizeof(bar) };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg) };
	struct kheap_edu_dev edu[KHEAP_EDU_MAX];
	char path[64];
	int n, ret, group, type = VFIO_TYPE1v2_IOMMU;

	self->container = self->group = self->device = self->kfd = -1;
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
	group = kheap_pci_iommu_group(self->bdf);
	ASSERT_LE(0, group);

	self->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->container) TH_LOG("/dev/vfio/vfio: %s",
					     strerror(errno));
	ASSERT_EQ(VFIO_API_VERSION, ioctl(self->container, VFIO_GET_API_VERSION));
	ASSERT_LT(0, ioctl(self->container, VFIO_CHECK_EXTENSION, type));
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	self->group = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->group) TH_LOG("%s: %s", path, strerror(errno));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_GET_STATUS, &gstatus));
	ASSERT_TRUE(!!(gstatus.flags & VFIO_GROUP_FLAGS_VIABLE))
		TH_LOG("group %d has devices outside vfio-pci", group);
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER,
			    &self->container));
	ret = ioctl(self->container, VFIO_SET_IOMMU, type);
	ASSERT_EQ(0, ret) TH_LOG("VFIO_SET_IOMMU: %s", strerror(errno));
	self->device = ioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, self->bdf);
	ASSERT_LE(0, self->device) TH_LOG("device fd: %s", strerror(errno));

	bar.index = VFIO_PCI_BAR0_REGION_INDEX;
	ASSERT_EQ(0, xioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, &bar));
	ASSERT_TRUE(!!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP));
	self->bar = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->device, bar.offset);
	ASSERT_NE(MAP_FAILED, self->bar) TH_LOG("BAR0: %s", strerror(errno));
	self->bar_len = bar.size;

	cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	ASSERT_EQ(0, xioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, &cfg));
	ret = edu_cfg_enable(self->device, cfg.offset, NULL);
	ASSERT_EQ(0, ret) TH_LOG("bus mastering: %s", kheap_errname(ret));
	ret = edu_attach_bar(&self->e, self->bar, self->bar_len);
	ASSERT_EQ(0, ret) TH_LOG("edu through VFIO: %s", kheap_errname(ret));
	edu_set_mask(&self->e, kheap_bits_mask(edu[n - 1].bits));
	self->edu_up = true;
}

FIXTURE_TEARDOWN(vfio)
{
	if (self->edu_up)
		edu_close(&self->e);
	if (self->bar && self->bar != MAP_FAILED)
		munmap(self->bar, self->bar_len);
	if (self->device >= 0)
		close(self->device);
	if (self->group >= 0)
		close(self->group);
	if (self->container >= 0)
		close(self->container);
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
static int map_dma(int container, const struct chunk *c)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)c->p,
		.iova = c->a.phys,
		.size = c->a.size_out,
	};

	return xioctl(container, VFIO_IOMMU_MAP_DMA, &map);
}

static int unmap_dma(int container, const struct chunk *c)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = c->a.phys,
		.size = c->a.size_out,
	};

	return xioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
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
	ret = map_dma(self->container, &a);
	ASSERT_EQ(0, ret) TH_LOG("MAP_DMA: %s", kheap_errname(ret));
	ret = map_dma(self->container, &b);
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
	ASSERT_EQ(0, unmap_dma(self->container, &b));
	memset(b.p, 0, b.a.size_out);
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, b.a.phys, 3000));
	EXPECT_EQ(-1, kheap_check_zero(b.p, b.a.size_out))
		TH_LOG("the device wrote an unmapped chunk");
	ASSERT_EQ(0, unmap_dma(self->container, &a));
	munmap(a.p, a.a.size_out);
	munmap(b.p, b.a.size_out);
}

/* A chunk never mapped into the container is neither read nor written. */
TEST_F(vfio, unmapped_chunk_unreachable)
{
	struct chunk a, c;
	uint64_t pg = self->pg;

	NEED_SETUP();
	chunk_new(_metadata, self->kfd, 2 * pg, &a);
	chunk_new(_metadata, self->kfd, 2 * pg, &c);
	ASSERT_EQ(0, map_dma(self->container, &a));

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
	ASSERT_EQ(0, unmap_dma(self->container, &a));
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
 * LIBKHEAP VARIANT: once userlib implements kheap_vfio_map(container),
 * add a test here that maps this process's libkheap memory into
 * self->container with it and moves data through the edu at
 * kheap_phys(ptr), linking libkheap.a.  (It is declared in userlib's
 * kheap.h but not implemented yet, so nothing links against it here.)
 */

static void report_kmsg(const char *msg, void *arg)
{
	(void)arg;
	ksft_print_msg("kernel: %s\n", msg);
}

/* Must stay last: what the tests above made the kernel say. */
FIXTURE(kernel_log) {
	int unused;
};

FIXTURE_SETUP(kernel_log)
{
}

FIXTURE_TEARDOWN(kernel_log)
{
}

TEST_F(kernel_log, no_warnings)
{
	int n;

	if (kmsg_fd < 0)
		SKIP(return, "/dev/kmsg: %s", kheap_errname(kmsg_fd));
	n = kheap_kmsg_scan(kmsg_fd, report_kmsg, NULL);
	ASSERT_GE(n, 0) TH_LOG("reading /dev/kmsg: %s", kheap_errname(n));
	EXPECT_EQ(0, n) TH_LOG("the kernel logged %d warnings or oopses", n);
}

TEST_HARNESS_MAIN
