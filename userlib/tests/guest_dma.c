// SPDX-License-Identifier: MIT
/*
 * guest_dma.c - libkheap's device addresses driven by a real DMA engine:
 * QEMU's edu device, programmed from user space (../selftests/kheap_edu.c),
 * copies bytes between kheap_malloc() buffers and its own buffer at the
 * addresses libkheap gives.
 *
 *  - kheap_dma_addr(): the bytes arrive, in both directions, including
 *    ranges that straddle page boundaries (only true contiguity makes
 *    those work), after realloc moves a block, in slab-sized blocks;
 *  - kheap_phys(): arrives without an IOMMU; behind a translating IOMMU
 *    it must NOT arrive (the device faults instead);
 *  - a control: a deliberately wrong address gives wrong bytes, so the
 *    comparisons can fail.
 *
 * The test bed names its edu devices in $KHEAP_EDU ("BDF@BITS ...", the
 * address bits QEMU lets each drive) and says whether it booted with an
 * IOMMU in $KHEAP_DMA_IOMMU.  Needs root and the kheap module loaded;
 * skips without an edu device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kheap.h"
#include "kheap_edu.h"
#include "ktap.h"

#define PAGE	4096u

static struct edu edu;
static char bdf[EDU_BDF_LEN];
static unsigned int bits;
static int iommu;		/* a translating IOMMU sits in front of edu */
static int h;			/* libkheap handle of edu */

/* The first edu of $KHEAP_EDU driving at least 32 bits. */
static int pick_edu(void)
{
	const char *env = getenv("KHEAP_EDU");
	char word[64];
	int n = 0;

	while (env && sscanf(env, " %63s%n", word, &n) == 1) {
		char *at = strchr(word, '@');

		env += n;
		if (!at || strlen(word) - strlen(at) >= EDU_BDF_LEN)
			continue;
		if (atoi(at + 1) >= 32) {
			*at = 0;
			strcpy(bdf, word);
			bits = (unsigned int)atoi(at + 1);
			return 0;
		}
	}
	return -ENODEV;
}

/* Translating when the device's IOMMU group has a DMA domain. */
static int edu_translated(void)
{
	char path[128], type[32] = "";
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/bus/pci/devices/%s/iommu_group/type", bdf);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(type, sizeof(type), f))
		type[0] = 0;
	fclose(f);
	return !strncmp(type, "DMA", 3);
}

static void fill(unsigned char *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 7 + seed * 13 + (i >> 12)) ^ seed);
}

/* Copy len bytes from RAM at a into the edu buffer, then out to RAM at b. */
static int roundtrip(uint64_t a, uint64_t b, uint32_t len)
{
	int err = edu_dma_to_dev(&edu, a, 0, len);

	return err ? err : edu_dma_from_dev(&edu, 0, b, len);
}

static void test_straddling_pages(void)
{
	static const size_t sizes[] = { 3 * PAGE + 100, 20000, 200000,
					3 << 20 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		unsigned char *src = kheap_malloc(n), *dst = kheap_calloc(1, n);
		/* 1000 bytes below a page boundary of each buffer, wherever
		 * the block starts. */
		size_t so = (PAGE - ((uintptr_t)src & (PAGE - 1))) + PAGE - 1000;
		size_t dof = (PAGE - ((uintptr_t)dst & (PAGE - 1))) + PAGE - 333;
		uint32_t len = EDU_XFER_MAX;

		CHECK(src && dst);
		if (!src || !dst || so + len > n || dof + len > n) {
			CHECKF(0, "size %zu too small for the test", n);
			kheap_free(src);
			kheap_free(dst);
			continue;
		}
		fill(src, n, (unsigned int)k + 1);
		CHECKF(roundtrip(kheap_dma_addr(src + so, h),
				 kheap_dma_addr(dst + dof, h), len) == 0,
		       "DMA failed for size %zu", n);
		CHECKF(!memcmp(src + so, dst + dof, len),
		       "size %zu: bytes differ after DMA at kheap_dma_addr", n);
		/* Nothing outside the range was touched. */
		CHECK(dst[dof - 1] == 0 && dst[dof + len] == 0);
		kheap_free(src);
		kheap_free(dst);
	}
}

static void test_physical_addresses(void)
{
	size_t n = 4 * PAGE;
	unsigned char *src = kheap_malloc(n), *dst = kheap_calloc(1, n);
	unsigned char *ref = kheap_calloc(1, n);
	uint32_t len = 2500;
	size_t so = PAGE - 700;

	CHECK(src && dst && ref && kheap_phys(src) && kheap_phys(dst));
	if (!src || !dst || !ref)
		goto out;
	fill(src, n, 77);
	fill(ref, n, 5);
	/* Load the edu buffer with other bytes through working addresses. */
	CHECK(edu_dma_to_dev(&edu, kheap_dma_addr(ref, h), 0, len) == 0);
	/* Now at raw physical addresses. */
	CHECK(edu_dma_to_dev(&edu, kheap_phys(src + so), 0, len) == 0);
	CHECK(edu_dma_from_dev(&edu, 0, kheap_phys(dst + so), len) == 0);
	if (!iommu) {
		CHECKF(!memcmp(src + so, dst + so, len),
		       "without an IOMMU, DMA at kheap_phys must work");
	} else {
		/* Faulted both ways: dst untouched, and what the engine read
		 * (QEMU fills a faulted read with its own bytes) is not src. */
		static const unsigned char zero[4 * PAGE];

		CHECKF(!memcmp(dst, zero, n),
		       "behind an IOMMU, DMA at kheap_phys wrote memory");
		CHECK(edu_dma_from_dev(&edu, 0, kheap_dma_addr(dst, h),
				       len) == 0);
		CHECKF(memcmp(dst, src + so, len) != 0,
		       "behind an IOMMU, DMA read from kheap_phys arrived");
	}
out:
	kheap_free(src);
	kheap_free(dst);
	kheap_free(ref);
}

static void test_wrong_address_control(void)
{
	size_t n = 8 * PAGE;
	unsigned char *src = kheap_malloc(n), *dst = kheap_calloc(1, n);

	CHECK(src && dst);
	if (!src || !dst)
		goto out;
	fill(src, n, 9);
	/* Two pages further on: other bytes, so the comparison must fail. */
	CHECK(roundtrip(kheap_dma_addr(src, h) + 2 * PAGE,
			kheap_dma_addr(dst, h), 2000) == 0);
	CHECKF(memcmp(src, dst, 2000) != 0,
	       "a wrong address gave the right bytes: the test is blind");
	CHECK(!memcmp(src + 2 * PAGE, dst, 2000));
out:
	kheap_free(src);
	kheap_free(dst);
}

static void test_realloc_and_small_blocks(void)
{
	unsigned char *p = kheap_malloc(100), *q[64];
	unsigned char *dst = kheap_calloc(1, 8 * PAGE);
	int i;

	CHECK(p && dst);
	if (!p || !dst)
		goto out;
	fill(p, 100, 3);
	/* Grow past the chunk it sits in: realloc moves it. */
	p = kheap_realloc(p, 2 << 20);
	CHECK(p != NULL);
	if (!p)
		goto out;
	fill(p + 100, (2 << 20) - 100, 4);
	CHECK(roundtrip(kheap_dma_addr(p + (1 << 20) - 10, h),
			kheap_dma_addr(dst, h), 3000) == 0);
	CHECK(!memcmp(p + (1 << 20) - 10, dst, 3000));
	for (i = 0; i < 64; i++) {
		q[i] = kheap_malloc(48);
		CHECK(q[i] != NULL);
		if (q[i])
			fill(q[i], 48, (unsigned int)i);
	}
	for (i = 0; i < 64; i++) {
		if (!q[i])
			continue;
		CHECK(roundtrip(kheap_dma_addr(q[i], h),
				kheap_dma_addr(dst + 48 * i, h), 48) == 0);
		CHECK(!memcmp(q[i], dst + 48 * i, 48));
		kheap_free(q[i]);
	}
out:
	kheap_free(p);
	kheap_free(dst);
}

static void test_detach(void)
{
	unsigned char *p = kheap_malloc(64);

	CHECK(kheap_detach(h) == 0);
	errno = 0;
	CHECK(kheap_dma_addr(p, h) == 0 && errno == EBADF);
	h = kheap_attach_bits(bdf, bits);
	CHECK(h >= 1 && kheap_dma_addr(p, h) != 0);
	kheap_free(p);
}

int main(void)
{
	int err;

	if (pick_edu())
		ktap_skip_all("no edu device of 32 bits or more in $KHEAP_EDU");
	err = edu_open(&edu, bdf);
	if (err)
		ktap_skip_all("edu cannot be opened");
	edu_set_mask(&edu, bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1);
	iommu = edu_translated();
	h = kheap_attach_bits(bdf, bits);
	if (h < 1) {
		printf("# kheap_attach_bits(%s, %u): %s\n", bdf, bits,
		       strerror(errno));
		ktap_plan(1);
		printf("not ok 1 attach\n");
		printf("# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0\n");
		return KSFT_FAIL;
	}
	printf("# edu %s, %u bits, %s\n", bdf, bits,
	       iommu ? "behind a translating IOMMU" : "no IOMMU");
	ktap_plan(5);
	RUN(test_straddling_pages);
	RUN(test_physical_addresses);
	RUN(test_wrong_address_control);
	RUN(test_realloc_and_small_blocks);
	RUN(test_detach);
	edu_close(&edu);
	return ktap_finish();
}
