// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_vfio_libkheap_test: libkheap's kheap_vfio_map() with a real
 * device behind VFIO.  kheap_vfio_test does the same by hand over raw
 * /dev/kheap chunks; here libkheap maps its memory into the container
 * itself, at IOVA = physical address, so kheap_phys() is the address to
 * give the device, for memory allocated before the call and after it.
 *
 * Built only against a libkheap (make KHEAP_USERLIB=<dir with libkheap.a
 * and kheap.h>), so it links no helper that shares libkheap's names:
 * kheap_edu for the device and kheap_pci for sysfs and VFIO.  Needs an
 * IOMMU, vfio-pci loaded, the module loaded and root; uses the last edu
 * device of $KHEAP_EDU (or of sysfs) and leaves it without a driver.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap.h"		/* libkheap's, not the uapi one */
#include "kheap_edu.h"
#include "kheap_pci.h"

#define PG	4096u

FIXTURE(libkheap) {
	char bdf[EDU_BDF_LEN];
	uint64_t mask;
	bool bound;
	struct vfio_dev v;
	struct edu e;
	bool edu_up;
	const char *why;	/* set up for nothing, and why */
};

static bool iommu_present(void)
{
	struct dirent *de;
	bool any = false;
	DIR *dir = opendir("/sys/class/iommu");

	while (dir && (de = readdir(dir)))
		any |= de->d_name[0] != '.';
	if (dir)
		closedir(dir);
	return any;
}

/* The last word of $KHEAP_EDU ("BDF@BITS"), or the last edu in sysfs. */
static int pick_edu(char *bdf, unsigned int *bits)
{
	char found[8][EDU_BDF_LEN], word[64];
	const char *env = getenv("KHEAP_EDU");
	int n = 0, len;

	*bits = 28;
	if (!env || !*env) {
		n = edu_find(found, 8);
		if (n <= 0)
			return -ENODEV;
		strcpy(bdf, found[n > 8 ? 7 : n - 1]);
		return 0;
	}
	while (sscanf(env, " %63s%n", word, &len) == 1) {
		char *at = strchr(word, '@');

		env += len;
		if (at) {
			*at = '\0';
			*bits = atoi(at + 1);
		}
		if (strlen(word) >= EDU_BDF_LEN)
			return -EINVAL;
		strcpy(bdf, word);
		n++;
	}
	return n ? 0 : -ENODEV;
}

FIXTURE_SETUP(libkheap)
{
	const char *step = "";
	unsigned int bits;
	int ret;

	self->v.container = self->v.group = self->v.device = -1;
	self->why = "no IOMMU: VFIO type1 needs one";
	if (!iommu_present())
		return;
	self->why = "no edu device";
	if (pick_edu(self->bdf, &bits))
		return;
	self->why = "vfio-pci is not loaded";
	if (access("/sys/bus/pci/drivers/vfio-pci", F_OK))
		return;
	self->why = NULL;
	self->mask = bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1;

	kheap_pci_unbind(self->bdf);
	ret = kheap_pci_bind(self->bdf, "vfio-pci");
	ASSERT_EQ(0, ret) TH_LOG("binding %s to vfio-pci: %s", self->bdf,
				 strerror(-ret));
	self->bound = true;
	ret = vfio_dev_open(&self->v, self->bdf, &step);
	ASSERT_EQ(0, ret) TH_LOG("VFIO %s: %s: %s", self->bdf, step,
				 strerror(-ret));
	ASSERT_EQ(0, edu_cfg_enable(self->v.device, self->v.cfg_off, NULL));
	ret = edu_attach_bar(&self->e, self->v.bar0, self->v.bar0_len);
	ASSERT_EQ(0, ret) TH_LOG("edu through VFIO: %s", strerror(-ret));
	edu_set_mask(&self->e, self->mask);
	self->edu_up = true;
}

FIXTURE_TEARDOWN(libkheap)
{
	if (self->edu_up)
		edu_close(&self->e);
	vfio_dev_close(&self->v);
	if (self->bound)
		kheap_pci_unbind(self->bdf);
}

#define NEED_SETUP() do {						\
	if (self->why)							\
		SKIP(return, "%s", self->why);				\
} while (0)

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 8)) ^ (seed >> 3));
}

/*
 * Before kheap_vfio_map() and after it, kheap_malloc() memory is reached
 * at kheap_phys(), in both directions and across page boundaries; after
 * kheap_vfio_unmap() it is not.
 */
TEST_F(libkheap, map_malloc_memory)
{
	uint8_t *before, *after, *small, *ref;
	unsigned int seed = getpid();
	int ret;

	NEED_SETUP();
	before = kheap_malloc(3 * PG);
	ASSERT_NE(NULL, before) TH_LOG("kheap_malloc: %s", strerror(errno));
	ASSERT_NE(0ULL, kheap_phys(before)) TH_LOG("no physical addresses");
	ret = kheap_vfio_map(self->v.container);
	ASSERT_EQ(0, ret) TH_LOG("kheap_vfio_map: %s", strerror(errno));
	after = kheap_malloc(5 * PG);
	small = kheap_malloc(200);
	ASSERT_NE(NULL, after);
	ASSERT_NE(NULL, small);

	/* before -> device -> after, straddling pages on both sides. */
	fill(before, 3 * PG, seed);
	memset(after, 0, 5 * PG);
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, kheap_phys(before + PG - 100),
				    0, 3000));
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0,
				      kheap_phys(after + 3 * PG - 1000), 3000));
	EXPECT_EQ(0, memcmp(before + PG - 100, after + 3 * PG - 1000, 3000))
		TH_LOG("no data at kheap_phys() through the container");

	/* A small (slab) block, the other way round. */
	fill(after, 5 * PG, seed + 1);
	memset(small, 0, 200);
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, kheap_phys(after + 77), 0, 200));
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, kheap_phys(small), 200));
	EXPECT_EQ(0, memcmp(after + 77, small, 200));

	/* Unmapped, the device writes nothing of ours. */
	ASSERT_EQ(0, kheap_vfio_unmap(self->v.container));
	ref = malloc(5 * PG);
	ASSERT_NE(NULL, ref);
	fill(after, 5 * PG, seed + 2);
	memcpy(ref, after, 5 * PG);
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, kheap_phys(after + PG),
				      EDU_XFER_MAX));
	EXPECT_EQ(0, memcmp(ref, after, 5 * PG))
		TH_LOG("the device wrote memory after kheap_vfio_unmap()");
	free(ref);
	kheap_free(before);
	kheap_free(after);
	kheap_free(small);
}

/* Without kheap_vfio_map() the container reaches none of it. */
TEST_F(libkheap, unmapped_memory_unreachable)
{
	uint8_t *p, *ref;

	NEED_SETUP();
	p = kheap_malloc(2 * PG);
	ref = malloc(2 * PG);
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, ref);
	fill(p, 2 * PG, getpid());
	memcpy(ref, p, 2 * PG);
	ASSERT_EQ(0, edu_dma_from_dev(&self->e, 0, kheap_phys(p), EDU_XFER_MAX));
	EXPECT_EQ(0, memcmp(ref, p, 2 * PG))
		TH_LOG("the device wrote memory that no one mapped for it");
	free(ref);
	kheap_free(p);
}

TEST_HARNESS_MAIN
