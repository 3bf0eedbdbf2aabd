// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_dma_test: device addresses (ATTACH, DETACH, DMA_ADDR, FREE flags),
 * checked with real DMA from QEMU's edu devices.
 *
 * Needs the module loaded and root.  The edu devices come from $KHEAP_EDU
 * (see kheap_dma_lib.h) or sysfs and must have no kernel driver.  Which
 * tests apply depends on the machine: without an IOMMU a device sees
 * physical addresses, below its mask; behind one it sees exactly the
 * chunks its attachments mapped.  Tests for the other kind of machine,
 * or for a pool their point needs (below or above 2^28), skip - unless
 * $KHEAP_DMA_REQUIRE names them, then they fail.  $KHEAP_DMA_IOMMU (0 or
 * 1) says which kind of machine the test bed meant to boot.
 *
 * Every DMA check can fail: data is compared byte for byte against the
 * source, and chunks that must stay untouched are compared against their
 * whole fill pattern, with fresh seeds so stale data never matches.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
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

#define SZ_256M		(1ULL << 28)
#define NO_SUCH_PCI	"0000:ff:1f.7"
#define VFIO_PCI	"vfio-pci"

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_dma_test_init(void)
{
	int fd = kheap_open();

	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (is kheap.ko loaded?)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	if (geteuid() || fd == -EACCES || fd == -EPERM) {
		ksft_print_header();
		ksft_exit_skip("device tests need root\n");
	}
	if (fd >= 0)
		close(fd);
	kmsg_fd = kheap_kmsg_open();
}

FIXTURE(dma) {
	int fd;
	uint64_t pg;
	struct kheap_info info;		/* at setup, pool idle */
	struct kheap_edu_dev edu[KHEAP_EDU_MAX];
	int nedu;
	bool iommu;
	const struct kheap_edu_dev *dev;	/* the widest, or NULL */
};

/* The widest device of the test bed. */
static const struct kheap_edu_dev *widest(FIXTURE_DATA(dma) *self)
{
	const struct kheap_edu_dev *best = NULL;
	int i;

	for (i = 0; i < self->nedu; i++)
		if (!best || self->edu[i].bits > best->bits)
			best = &self->edu[i];
	return best;
}

FIXTURE_SETUP(dma)
{
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open: %s", kheap_errname(self->fd));
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle before the test: %s (%s)",
				 kheap_state_str(&self->info, buf, sizeof(buf)),
				 kheap_errname(ret));
	ASSERT_EQ(0ULL, self->info.attachments);
	self->nedu = kheap_edu_list(self->edu, KHEAP_EDU_MAX);
	ASSERT_GE(self->nedu, 0) TH_LOG("$KHEAP_EDU: %s",
					kheap_errname(self->nedu));
	/* Widest: wherever the pool is, the ABI tests' ATTACH can work. */
	self->dev = widest(self);
	self->iommu = kheap_iommu_present();
}

FIXTURE_TEARDOWN(dma)
{
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * A test whose precondition is missing skips, unless the test bed
 * promised the precondition ($KHEAP_DMA_REQUIRE): then it fails.
 */
#define SKIP_UNLESS_REQUIRED(_fmt, ...) do {				\
	if (kheap_dma_required(_metadata->name)) {			\
		TH_LOG("required by $KHEAP_DMA_REQUIRE, but: " _fmt,	\
		       ##__VA_ARGS__);					\
		ASSERT_TRUE(false);					\
	}								\
	SKIP(return, _fmt, ##__VA_ARGS__);				\
} while (0)

#define NEED_DEVICE() do {						\
	if (!self->dev)							\
		SKIP_UNLESS_REQUIRED("no edu device");			\
} while (0)

#define NEED_IOMMU(_want) do {						\
	if (self->iommu != (_want))					\
		SKIP_UNLESS_REQUIRED("%s", self->iommu ?		\
				     "behind an IOMMU" : "no IOMMU");	\
} while (0)

/*
 * @call must fail with -@err, with the pool, the file's counters and
 * its attachments as they were.
 */
#define EXPECT_REFUSED(_fd, _err, _call) do {				\
	struct kheap_info __before, __after;				\
	char __b1[192], __b2[192];					\
	int __ret;							\
									\
	ASSERT_EQ(0, kheap_info(_fd, &__before));			\
	__ret = (_call);						\
	EXPECT_EQ(-(_err), __ret)					\
		TH_LOG("%s: got %s, want %s", #_call,			\
		       kheap_errname(__ret), kheap_errname(-(_err)));	\
	ASSERT_EQ(0, kheap_info(_fd, &__after));			\
	EXPECT_TRUE(kheap_same_state(&__before, &__after))		\
		TH_LOG("%s changed the pool: %s -> %s", #_call,		\
		       kheap_state_str(&__before, __b1, sizeof(__b1)),	\
		       kheap_state_str(&__after, __b2, sizeof(__b2)));	\
	EXPECT_EQ(__before.attachments, __after.attachments)		\
		TH_LOG("%s changed the attachments", #_call);		\
} while (0)

static uint64_t fresh_seed(void)
{
	static uint64_t s;

	/* Each test runs in its own child: seed from the pid and clock. */
	if (!s)
		s = kheap_now_ms() * 1000003 ^ ((uint64_t)getpid() << 40);
	return ++s * 0x9e3779b97f4a7c15ULL;
}

static uint64_t attachments(struct __test_metadata *_metadata, int fd)
{
	struct kheap_info info;

	EXPECT_EQ(0, kheap_info(fd, &info));
	return info.attachments;
}

/* A mapped chunk, filled with its own pattern. */
struct chunk {
	struct kheap_alloc a;
	uint8_t *p;
	uint64_t size;
	uint64_t seed;
};

static void chunk_fill(struct chunk *c)
{
	c->seed = fresh_seed();
	kheap_fill(c->p, c->size, c->seed);
}

static void chunk_new(struct __test_metadata *_metadata, int fd,
		      uint64_t size, struct chunk *c)
{
	int ret = kheap_alloc(fd, size, 0, &c->a);

	ASSERT_EQ(0, ret) TH_LOG("ALLOC %llu bytes: %s",
				 (unsigned long long)size, kheap_errname(ret));
	c->size = c->a.size_out;
	c->p = kheap_map(fd, c->a.token, c->size);
	ASSERT_NE(MAP_FAILED, (void *)c->p) TH_LOG("mmap: %s", strerror(errno));
	chunk_fill(c);
}

static void chunk_unmap(struct chunk *c)
{
	if (c->p && c->p != MAP_FAILED)
		munmap(c->p, c->size);
	c->p = NULL;
}

/*
 * The chunk holds its fill pattern, except possibly in [@skip,
 * @skip + @len): offset of the first wrong byte, or -1.
 */
static int64_t chunk_damage(const struct chunk *c, uint64_t skip, uint64_t len)
{
	uint8_t *want = malloc(c->size);
	int64_t bad = -1;
	uint64_t i;

	if (!want)
		return 0;
	kheap_fill(want, c->size, c->seed);
	for (i = 0; i < c->size; i++) {
		if (i >= skip && i < skip + len)
			continue;
		if (c->p[i] != want[i]) {
			bad = i;
			break;
		}
	}
	free(want);
	return bad;
}

static uint64_t dma_addr_of(struct __test_metadata *_metadata, int fd,
			    const struct chunk *c, uint64_t handle)
{
	uint64_t addr = 0;
	int ret = kheap_dma_addr(fd, c->a.token, handle, &addr);

	EXPECT_EQ(0, ret) TH_LOG("DMA_ADDR token %#llx handle %llu: %s",
				 (unsigned long long)c->a.token,
				 (unsigned long long)handle, kheap_errname(ret));
	return addr;
}

static void attach_ok(struct __test_metadata *_metadata, int fd,
		      const struct kheap_edu_dev *d, unsigned int bits,
		      struct kheap_attach *att)
{
	int ret = kheap_attach(fd, d->bdf, bits, att);

	ASSERT_EQ(0, ret) TH_LOG("ATTACH %s dma_bits %u: %s", d->bdf, bits,
				 kheap_errname(ret));
	ASSERT_NE(0ULL, att->handle);
}

static void edu_up(struct __test_metadata *_metadata,
		   const struct kheap_edu_dev *d, struct edu *e)
{
	int ret = edu_open(e, d->bdf);

	ASSERT_EQ(0, ret) TH_LOG("edu %s: %s", d->bdf, kheap_errname(ret));
	edu_set_mask(e, kheap_bits_mask(d->bits));
}

/*
 * Device address @src -> edu buffer -> device address @dst, @len bytes.
 * The engine runs either way; whether the bytes arrived is for the
 * caller to look at.
 */
static void edu_copy(struct __test_metadata *_metadata, struct edu *e,
		     uint64_t src, uint64_t dst, uint32_t len)
{
	int ret;

	ret = edu_dma_to_dev(e, src, 0, len);
	ASSERT_EQ(0, ret) TH_LOG("edu %s: %#llx -> buffer: %s", e->bdf,
				 (unsigned long long)src, kheap_errname(ret));
	ret = edu_dma_from_dev(e, 0, dst, len);
	ASSERT_EQ(0, ret) TH_LOG("edu %s: buffer -> %#llx: %s", e->bdf,
				 (unsigned long long)dst, kheap_errname(ret));
}

/* Let the device write @len bytes of its buffer at @dst. */
static void edu_poke(struct __test_metadata *_metadata, struct edu *e,
		     uint64_t dst, uint32_t len)
{
	int ret = edu_dma_from_dev(e, 0, dst, len);

	ASSERT_EQ(0, ret) TH_LOG("edu %s: buffer -> %#llx: %s", e->bdf,
				 (unsigned long long)dst, kheap_errname(ret));
}

/* Fill the edu buffer's first @len bytes from device address @src. */
static void edu_load(struct __test_metadata *_metadata, struct edu *e,
		     uint64_t src, uint32_t len)
{
	int ret = edu_dma_to_dev(e, src, 0, len);

	ASSERT_EQ(0, ret) TH_LOG("edu %s: %#llx -> buffer: %s", e->bdf,
				 (unsigned long long)src, kheap_errname(ret));
}

static void sync_chunk(struct __test_metadata *_metadata, int fd,
		       const struct chunk *c, uint64_t flags)
{
	int ret = kheap_sync(fd, c->a.token, 0, c->size, flags);

	EXPECT_EQ(0, ret) TH_LOG("SYNC %#llx: %s", (unsigned long long)flags,
				 kheap_errname(ret));
}

/*
 * The round trip every data test uses: @len bytes at @soff of @src go
 * through the device's buffer to @doff of @dst, both given by device
 * address; then the bytes must be there and nothing else of @dst may
 * have changed.  Offsets near page ends make the copies straddle pages.
 */
static void expect_copy(struct __test_metadata *_metadata, int fd,
			struct edu *e, struct chunk *src, uint64_t src_dma,
			uint64_t soff, struct chunk *dst, uint64_t dst_dma,
			uint64_t doff, uint32_t len)
{
	int64_t bad;

	chunk_fill(src);
	chunk_fill(dst);
	sync_chunk(_metadata, fd, src, KHEAP_SYNC_END | KHEAP_SYNC_WRITE);
	sync_chunk(_metadata, fd, dst, KHEAP_SYNC_END | KHEAP_SYNC_READ);
	edu_copy(_metadata, e, src_dma + soff, dst_dma + doff, len);
	sync_chunk(_metadata, fd, dst, KHEAP_SYNC_START | KHEAP_SYNC_READ);
	EXPECT_EQ(0, memcmp(src->p + soff, dst->p + doff, len))
		TH_LOG("edu %s: %u bytes from %#llx did not arrive at %#llx",
		       e->bdf, len, (unsigned long long)(src_dma + soff),
		       (unsigned long long)(dst_dma + doff));
	bad = chunk_damage(dst, doff, len);
	EXPECT_EQ(-1, bad) TH_LOG("edu %s: byte %lld of the destination changed outside the copy",
				  e->bdf, (long long)bad);
}

/*
 * The device writes at @base + @off, where chunk @c would be if the
 * device could reach it that way; @c must not change.  The write stays
 * within the chunk's length, so that where the address does reach
 * memory it can only be @c's.
 */
static void expect_unreached(struct __test_metadata *_metadata, struct edu *e,
			     struct chunk *c, uint64_t base, uint64_t off,
			     const char *what)
{
	uint32_t len = c->size - off < EDU_XFER_MAX ? c->size - off :
						      EDU_XFER_MAX;
	int64_t bad;

	chunk_fill(c);
	edu_poke(_metadata, e, base + off, len);
	bad = chunk_damage(c, 0, 0);
	EXPECT_EQ(-1, bad) TH_LOG("edu %s wrote byte %lld of a chunk through %s %#llx",
				  e->bdf, (long long)bad, what,
				  (unsigned long long)(base + off));
}

/* ---- the machine the test bed promised ------------------------------ */

TEST_F(dma, environment)
{
	int want = kheap_iommu_expected();
	char drv[64], path[96], type[32];
	int i, group, ret;
	FILE *f;

	if (want >= 0)
		EXPECT_EQ(want, (int)self->iommu)
			TH_LOG("$KHEAP_DMA_IOMMU=%d, but an IOMMU is %s", want,
			       self->iommu ? "there" : "missing");
	if (getenv("KHEAP_EDU"))
		EXPECT_LT(0, self->nedu) TH_LOG("$KHEAP_EDU lists no device");
	EXPECT_EQ((uint64_t)KHEAP_ABI_VERSION, self->info.abi_version);

	for (i = 0; i < self->nedu; i++) {
		const struct kheap_edu_dev *d = &self->edu[i];

		TH_LOG("edu %s: %u address bits", d->bdf, d->bits);
		EXPECT_TRUE(edu_is_edu(d->bdf)) TH_LOG("%s is no edu", d->bdf);
		ret = kheap_pci_driver(d->bdf, drv, sizeof(drv));
		EXPECT_EQ(0, ret);
		EXPECT_STREQ("", drv) TH_LOG("%s has driver %s", d->bdf, drv);
		group = kheap_pci_iommu_group(d->bdf);
		if (!self->iommu) {
			EXPECT_EQ(-ENOENT, group);
			continue;
		}
		ASSERT_LE(0, group) TH_LOG("%s: IOMMU group: %s", d->bdf,
					   kheap_errname(group));
		/* A translating default domain; strict or lazy flushing. */
		snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/type",
			 group);
		f = fopen(path, "re");
		ASSERT_NE(NULL, f) TH_LOG("%s: %s", path, strerror(errno));
		ASSERT_NE(NULL, fgets(type, sizeof(type), f));
		fclose(f);
		type[strcspn(type, "\n")] = '\0';
		EXPECT_TRUE(!strcmp(type, "DMA") || !strcmp(type, "DMA-FQ"))
			TH_LOG("%s: IOMMU group %d is of type %s", d->bdf,
			       group, type);
	}
}

/* ---- ABI: ATTACH ---------------------------------------------------- */

TEST_F(dma, attach_bad_name_pointer)
{
	struct kheap_attach att;
	void *guard;

	NEED_DEVICE();
	guard = mmap(NULL, self->pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	ASSERT_NE(MAP_FAILED, guard);

	memset(&att, 0, sizeof(att));
	EXPECT_REFUSED(self->fd, EFAULT,
		       kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, &att));
	att.name = (uintptr_t)guard;
	EXPECT_REFUSED(self->fd, EFAULT,
		       kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, &att));
	att.name = -(uint64_t)self->pg;		/* kernel space */
	EXPECT_REFUSED(self->fd, EFAULT,
		       kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, &att));
	/* The argument itself unreadable. */
	EXPECT_REFUSED(self->fd, EFAULT,
		       kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, guard));
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
	munmap(guard, self->pg);
}

/*
 * Names are read up to KHEAP_DEVICE_NAME_MAX bytes: a full-length name
 * without its NUL is EINVAL, and the kernel must not read past it (the
 * next page is not mapped, so a longer read would be EFAULT).
 */
TEST_F(dma, attach_bad_name)
{
	struct kheap_attach att;
	char *area, *name;

	NEED_DEVICE();
	area = mmap(NULL, 2 * self->pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, mprotect(area + self->pg, self->pg, PROT_NONE));
	name = area + self->pg - KHEAP_DEVICE_NAME_MAX;

	EXPECT_REFUSED(self->fd, EINVAL, kheap_attach(self->fd, "", 0, &att));

	memset(name, 'a', KHEAP_DEVICE_NAME_MAX);
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_attach(self->fd, name, 0, &att));
	/* A real device's name, but unterminated: still refused. */
	memcpy(name, self->dev->bdf, strlen(self->dev->bdf));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_attach(self->fd, name, 0, &att));

	/* The longest name there can be: read whole, no such device. */
	memset(name, 'a', KHEAP_DEVICE_NAME_MAX);
	name[KHEAP_DEVICE_NAME_MAX - 1] = '\0';
	EXPECT_REFUSED(self->fd, ENODEV,
		       kheap_attach(self->fd, name, 0, &att));
	/* A short name right at the guard page is fine too. */
	name = area + self->pg - strlen(self->dev->bdf) - 1;
	strcpy(name, self->dev->bdf);
	EXPECT_EQ(0, kheap_attach(self->fd, name, self->dev->bits, &att));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	munmap(area, 2 * self->pg);
}

TEST_F(dma, attach_no_such_device)
{
	static const char * const names[] = {
		NO_SUCH_PCI,
		"pci:" NO_SUCH_PCI,
		"platform:kheap-no-such-device",
		"kheap-no-such-device",
		"pci:",
		"0000:00:00.0 ",	/* a real address with a blank */
	};
	struct kheap_attach att;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		int ret = kheap_attach(self->fd, names[i], 0, &att);

		EXPECT_EQ(-ENODEV, ret) TH_LOG("ATTACH \"%s\": %s", names[i],
					       kheap_errname(ret));
	}
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
	/* The bus-qualified spelling of a real device works. */
	if (self->dev) {
		char name[EDU_BDF_LEN + 8];

		snprintf(name, sizeof(name), "pci:%s", self->dev->bdf);
		EXPECT_EQ(0, kheap_attach(self->fd, name, self->dev->bits,
					  &att));
		EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
		EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	}
}

/* Inputs that must be zero, and dma_bits beyond 64. */
TEST_F(dma, attach_bad_fields)
{
	const uint64_t bits[] = { 65, 128, 1ULL << 32, UINT64_MAX };
	struct kheap_attach att;
	unsigned int i;

	NEED_DEVICE();
#define TRY_FIELD(_field, _val) do {					\
		memset(&att, 0, sizeof(att));				\
		att.name = (uintptr_t)self->dev->bdf;			\
		att.dma_bits = self->dev->bits;				\
		att._field = (_val);					\
		EXPECT_REFUSED(self->fd, EINVAL,			\
			       kheap_ioctl(self->fd, KHEAP_IOC_ATTACH, &att)); \
	} while (0)
	TRY_FIELD(flags, 1);
	TRY_FIELD(flags, 1ULL << 63);
	TRY_FIELD(handle, 1);
	TRY_FIELD(dma_mask, UINT32_MAX);
	TRY_FIELD(mode, KHEAP_DMA_DIRECT);
	TRY_FIELD(reserved[0], 1);
	TRY_FIELD(reserved[1], 1ULL << 63);
	for (i = 0; i < ARRAY_SIZE(bits); i++)
		TRY_FIELD(dma_bits, bits[i]);
#undef TRY_FIELD
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));

	/* The same device with clean fields is fine. */
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
}

TEST_F(dma, attach_twice)
{
	struct kheap_attach a1, a2, dup;
	char name[EDU_BDF_LEN + 8];

	NEED_DEVICE();
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &a1);
	EXPECT_REFUSED(self->fd, EEXIST,
		       kheap_attach(self->fd, self->dev->bdf, self->dev->bits,
				    &dup));
	/* Another spelling of the same device is the same device. */
	snprintf(name, sizeof(name), "pci:%s", self->dev->bdf);
	EXPECT_REFUSED(self->fd, EEXIST,
		       kheap_attach(self->fd, name, 0, &dup));
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));

	EXPECT_EQ(0, kheap_detach(self->fd, a1.handle));
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &a2);
	EXPECT_NE(a1.handle, a2.handle) TH_LOG("handle %llu reused",
					       (unsigned long long)a1.handle);
	EXPECT_EQ(0, kheap_detach(self->fd, a2.handle));
}

/* Handles are never 0 and never reused; INFO counts attachments. */
TEST_F(dma, handles_and_counts)
{
	uint64_t seen[16];
	struct kheap_attach att[2];
	unsigned int i, j, n = 0;
	int fd2, k;

	NEED_DEVICE();
	for (i = 0; i < 6; i++) {
		for (k = 0; k < self->nedu && k < 2; k++) {
			attach_ok(_metadata, self->fd, &self->edu[k],
				  self->edu[k].bits, &att[k]);
			EXPECT_EQ((uint64_t)k + 1,
				  attachments(_metadata, self->fd));
			seen[n++] = att[k].handle;
		}
		/* Detach in either order. */
		for (k = 0; k < self->nedu && k < 2; k++) {
			int which = i % 2 && self->nedu > 1 ? 1 - k : k;

			EXPECT_EQ(0, kheap_detach(self->fd, att[which].handle));
		}
		EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
	}
	for (i = 0; i < n; i++) {
		EXPECT_NE(0ULL, seen[i]);
		for (j = 0; j < i; j++)
			EXPECT_NE(seen[j], seen[i])
				TH_LOG("handle %llu given twice",
				       (unsigned long long)seen[i]);
	}

	/* Counts are per file. */
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att[0]);
	fd2 = kheap_open();
	ASSERT_LE(0, fd2);
	EXPECT_EQ(0ULL, attachments(_metadata, fd2));
	/* Another file may attach the same device. */
	attach_ok(_metadata, fd2, self->dev, self->dev->bits, &att[1]);
	EXPECT_EQ(1ULL, attachments(_metadata, fd2));
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
	close(fd2);
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
	EXPECT_EQ(0, kheap_detach(self->fd, att[0].handle));
}

/* ---- ABI: DETACH, DMA_ADDR, FREE flags, sizes ----------------------- */

TEST_F(dma, detach_unknown)
{
	struct kheap_detach arg;
	struct kheap_attach att;

	EXPECT_REFUSED(self->fd, EINVAL, kheap_detach(self->fd, 0));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_detach(self->fd, 1));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_detach(self->fd, UINT64_MAX));
	NEED_DEVICE();
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	EXPECT_REFUSED(self->fd, EINVAL, kheap_detach(self->fd, att.handle + 1));
	memset(&arg, 0, sizeof(arg));
	arg.handle = att.handle;
	arg.reserved[2] = 1;
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_ioctl(self->fd, KHEAP_IOC_DETACH, &arg));
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_REFUSED(self->fd, EINVAL, kheap_detach(self->fd, att.handle));
}

TEST_F(dma, dma_addr_errors)
{
	struct kheap_dma_addr arg;
	struct kheap_attach att;
	struct chunk c, gone;
	uint64_t addr;

	NEED_DEVICE();
	chunk_new(_metadata, self->fd, self->pg, &c);
	chunk_new(_metadata, self->fd, self->pg, &gone);
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	ASSERT_EQ(0, kheap_dma_addr(self->fd, c.a.token, att.handle, &addr));

	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, c.a.token + 64 * self->info.pool_size,
				      att.handle, &addr));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, c.a.token + 1, att.handle, &addr));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, c.a.token, 0, &addr));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, c.a.token, att.handle + 1, &addr));
	chunk_unmap(&gone);
	ASSERT_EQ(0, kheap_free(self->fd, gone.a.token));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, gone.a.token, att.handle, &addr));

#define TRY_FIELD(_field, _val) do {					\
		memset(&arg, 0, sizeof(arg));				\
		arg.token = c.a.token;					\
		arg.handle = att.handle;				\
		arg._field = (_val);					\
		EXPECT_REFUSED(self->fd, EINVAL,			\
			       kheap_ioctl(self->fd, KHEAP_IOC_DMA_ADDR, &arg)); \
	} while (0)
	TRY_FIELD(flags, 1);
	TRY_FIELD(dma_addr, addr);
	TRY_FIELD(reserved[0], 1);
	TRY_FIELD(reserved[3], 1ULL << 63);
#undef TRY_FIELD

	/* After DETACH the handle is unknown. */
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, c.a.token, att.handle, &addr));
	chunk_unmap(&c);
}

/* A file sees only its own handles, and only its own chunks. */
TEST_F(dma, foreign_handles)
{
	struct kheap_attach att;
	struct chunk mine, theirs;
	uint64_t addr;
	int fd2;

	NEED_DEVICE();
	fd2 = kheap_open();
	ASSERT_LE(0, fd2);
	chunk_new(_metadata, self->fd, self->pg, &mine);
	chunk_new(_metadata, fd2, self->pg, &theirs);
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);

	EXPECT_REFUSED(fd2, EINVAL,
		       kheap_dma_addr(fd2, theirs.a.token, att.handle, &addr));
	EXPECT_REFUSED(fd2, EINVAL,
		       kheap_dma_addr(fd2, mine.a.token, att.handle, &addr));
	EXPECT_REFUSED(fd2, EINVAL, kheap_detach(fd2, att.handle));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, theirs.a.token, att.handle, &addr));
	/* Still attached, still answering in the file that attached. */
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
	EXPECT_EQ(0, kheap_dma_addr(self->fd, mine.a.token, att.handle, &addr));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&mine);
	chunk_unmap(&theirs);
	close(fd2);
}

TEST_F(dma, free_flags)
{
	const uint64_t bad[] = { 2, 1ULL << 63, ~KHEAP_FREE_FLAGS_VALID };
	struct kheap_free arg;
	struct kheap_alloc a;
	unsigned int i;

	ASSERT_EQ(0, kheap_alloc(self->fd, self->pg, 0, &a));
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		EXPECT_REFUSED(self->fd, EINVAL,
			       kheap_free_flags(self->fd, a.token, bad[i]));
	memset(&arg, 0, sizeof(arg));
	arg.token = a.token;
	arg.reserved[1] = 1;
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_ioctl(self->fd, KHEAP_IOC_FREE, &arg));
	/* KHEAP_FREE_DEVICES is valid with no device attached too. */
	EXPECT_EQ(0, kheap_free_flags(self->fd, a.token, KHEAP_FREE_DEVICES));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_free_flags(self->fd, a.token, KHEAP_FREE_DEVICES));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, NULL));
}

/*
 * Larger structs from newer callers: a zero tail works, a non-zero byte
 * in it is E2BIG.  Smaller ones than first published are EINVAL.
 */
TEST_F(dma, struct_sizes)
{
	uint8_t buf[sizeof(struct kheap_attach) + 64];
	struct kheap_dma_addr *da = (void *)buf;
	struct kheap_attach *at = (void *)buf;
	struct kheap_detach *de = (void *)buf;
	struct kheap_attach att;
	struct chunk c;
	int pos;

	NEED_DEVICE();
	chunk_new(_metadata, self->fd, self->pg, &c);
	for (pos = 0; pos < 3; pos++) {
		/* pos 0: zero tail; 1: first tail byte set; 2: last. */
		size_t tail = sizeof(buf) - sizeof(struct kheap_attach);
		int err = pos ? E2BIG : 0;

#define SET_TAIL(_type) do {						\
		memset(buf, 0, sizeof(buf));				\
		if (pos == 1)						\
			buf[sizeof(_type)] = 1;				\
		if (pos == 2)						\
			buf[sizeof(_type) + tail - 1] = 0x80;		\
	} while (0)
#define SIZED(_cmd, _type) kheap_cmd_sized(_cmd, sizeof(_type) + tail)

		SET_TAIL(struct kheap_attach);
		at->name = (uintptr_t)self->dev->bdf;
		at->dma_bits = self->dev->bits;
		if (pos) {
			EXPECT_REFUSED(self->fd, E2BIG,
				       kheap_ioctl(self->fd,
						   SIZED(KHEAP_IOC_ATTACH, struct kheap_attach), at));
			attach_ok(_metadata, self->fd, self->dev,
				  self->dev->bits, &att);
		} else {
			ASSERT_EQ(0, kheap_ioctl(self->fd,
						 SIZED(KHEAP_IOC_ATTACH, struct kheap_attach), at));
			att = *at;
			ASSERT_NE(0ULL, att.handle);
		}
		EXPECT_EQ(1ULL, attachments(_metadata, self->fd));

		SET_TAIL(struct kheap_dma_addr);
		da->token = c.a.token;
		da->handle = att.handle;
		EXPECT_REFUSED(self->fd, err,
			       kheap_ioctl(self->fd,
					   SIZED(KHEAP_IOC_DMA_ADDR, struct kheap_dma_addr), da));
		if (!pos)
			EXPECT_NE(0ULL, da->dma_addr);

		SET_TAIL(struct kheap_detach);
		de->handle = att.handle;
		if (pos) {
			EXPECT_REFUSED(self->fd, E2BIG,
				       kheap_ioctl(self->fd,
						   SIZED(KHEAP_IOC_DETACH, struct kheap_detach), de));
			EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
		} else {
			EXPECT_EQ(0, kheap_ioctl(self->fd,
						 SIZED(KHEAP_IOC_DETACH, struct kheap_detach), de));
		}
		EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
#undef SIZED
#undef SET_TAIL
	}

	/* Smaller than the first published size: EINVAL. */
	memset(buf, 0, sizeof(buf));
	at->name = (uintptr_t)self->dev->bdf;
	at->dma_bits = self->dev->bits;
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_ioctl(self->fd,
				   kheap_cmd_sized(KHEAP_IOC_ATTACH,
						   KHEAP_ATTACH_SIZE_VER0 - 8), at));
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	memset(buf, 0, sizeof(buf));
	da->token = c.a.token;
	da->handle = att.handle;
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_ioctl(self->fd,
				   kheap_cmd_sized(KHEAP_IOC_DMA_ADDR,
						   KHEAP_DMA_ADDR_SIZE_VER0 - 8), da));
	memset(buf, 0, sizeof(buf));
	de->handle = att.handle;
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_ioctl(self->fd,
				   kheap_cmd_sized(KHEAP_IOC_DETACH,
						   KHEAP_DETACH_SIZE_VER0 - 8), de));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&c);
}

/*
 * restrict_phys=1, opened without CAP_SYS_RAWIO: without an IOMMU a
 * device address is a physical address, so ATTACH is EPERM; behind one
 * the IOVAs reveal nothing, and ATTACH and DMA work.
 */
TEST_F(dma, restricted_physical_addresses)
{
	struct kheap_attach att;
	struct kheap_info info;
	struct chunk a, b;
	char flag[8] = "";
	struct edu e;
	int fd2, ret;

	NEED_DEVICE();
	kheap_cap_set_effective(CAP_SYS_RAWIO, true);
	if (kheap_read_text("/sys/module/" KHEAP_MODNAME "/parameters/restrict_phys",
			    flag, sizeof(flag)) || flag[0] != 'Y')
		SKIP_UNLESS_REQUIRED("kheap was loaded without restrict_phys=1");
	ASSERT_EQ(0, kheap_cap_set_effective(CAP_SYS_RAWIO, false));
	fd2 = kheap_open();
	/* Only the open decides; the tools below need the capability. */
	ASSERT_EQ(0, kheap_cap_set_effective(CAP_SYS_RAWIO, true));
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, kheap_info(fd2, &info));
	EXPECT_EQ(0ULL, info.pool_phys) TH_LOG("physical addresses not withheld");
	chunk_new(_metadata, fd2, 2 * self->pg, &a);
	EXPECT_EQ(0ULL, a.a.phys);

	ret = kheap_attach(fd2, self->dev->bdf, self->dev->bits, &att);
	if (!self->iommu) {
		EXPECT_EQ(-EPERM, ret) TH_LOG("direct ATTACH, physical addresses withheld: %s",
					      kheap_errname(ret));
		EXPECT_EQ(0ULL, attachments(_metadata, fd2));
		goto out;
	}
	ASSERT_EQ(0, ret) TH_LOG("ATTACH behind an IOMMU: %s",
				 kheap_errname(ret));
	EXPECT_EQ((uint64_t)KHEAP_DMA_IOMMU, att.mode);
	chunk_new(_metadata, fd2, 2 * self->pg, &b);
	edu_up(_metadata, self->dev, &e);
	expect_copy(_metadata, fd2, &e, &a,
		    dma_addr_of(_metadata, fd2, &a, att.handle), self->pg - 50,
		    &b, dma_addr_of(_metadata, fd2, &b, att.handle),
		    self->pg - 1000, 2000);
	edu_close(&e);
	chunk_unmap(&b);
out:
	chunk_unmap(&a);
	close(fd2);
}

/* ---- no IOMMU: device address = physical address --------------------- */

/* Does the whole pool lie within reach of a @bits-bit device? */
static bool pool_below(FIXTURE_DATA(dma) *self, unsigned int bits)
{
	return self->info.pool_phys + self->info.pool_size - 1 <=
	       kheap_bits_mask(bits);
}

TEST_F(dma, direct_addresses_are_physical)
{
	const struct kheap_edu_dev *d = widest(self);
	struct chunk before, after;
	struct kheap_attach att;

	NEED_IOMMU(false);
	NEED_DEVICE();
	if (!pool_below(self, d->bits))
		SKIP_UNLESS_REQUIRED("the pool is beyond %u bits", d->bits);
	chunk_new(_metadata, self->fd, 3 * self->pg, &before);
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	EXPECT_EQ((uint64_t)KHEAP_DMA_DIRECT, att.mode);
	EXPECT_EQ(kheap_bits_mask(d->bits), att.dma_mask);
	chunk_new(_metadata, self->fd, 5 * self->pg, &after);
	EXPECT_EQ(before.a.phys, dma_addr_of(_metadata, self->fd, &before,
					     att.handle));
	EXPECT_EQ(after.a.phys, dma_addr_of(_metadata, self->fd, &after,
					    att.handle));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&before);
	chunk_unmap(&after);
}

/*
 * Device reads a chunk, writes another, at the DMA_ADDR addresses;
 * copies straddle page boundaries of multi-page chunks.  A chunk taken
 * before ATTACH and one after.
 */
TEST_F(dma, direct_dma_round_trip)
{
	const struct kheap_edu_dev *d = widest(self);
	struct kheap_attach att;
	struct chunk a, b;
	uint64_t da, db;
	struct edu e;

	NEED_IOMMU(false);
	NEED_DEVICE();
	if (!pool_below(self, d->bits))
		SKIP_UNLESS_REQUIRED("the pool is beyond %u bits", d->bits);
	chunk_new(_metadata, self->fd, 3 * self->pg, &a);
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	chunk_new(_metadata, self->fd, 4 * self->pg, &b);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	db = dma_addr_of(_metadata, self->fd, &b, att.handle);
	edu_up(_metadata, d, &e);

	expect_copy(_metadata, self->fd, &e, &a, da, self->pg - 1000,
		    &b, db, 3 * self->pg - 2000, 3000);
	/* And the other way round, whole pages apart. */
	expect_copy(_metadata, self->fd, &e, &b, db, 2 * self->pg - 8,
		    &a, da, self->pg - 4000, EDU_XFER_MAX);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
}

/*
 * The control: the same copy from a wrong address (one page into a
 * third chunk) must not pass the comparison.  Proves the comparisons
 * above can fail.
 */
TEST_F(dma, direct_wrong_address_control)
{
	const struct kheap_edu_dev *d = widest(self);
	struct chunk a, b, other;
	struct kheap_attach att;
	struct edu e;

	NEED_IOMMU(false);
	NEED_DEVICE();
	if (!pool_below(self, d->bits))
		SKIP_UNLESS_REQUIRED("the pool is beyond %u bits", d->bits);
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	chunk_new(_metadata, self->fd, 2 * self->pg, &b);
	chunk_new(_metadata, self->fd, 2 * self->pg, &other);
	edu_up(_metadata, d, &e);

	chunk_fill(&a);
	chunk_fill(&b);
	chunk_fill(&other);
	edu_copy(_metadata, &e, other.a.phys + self->pg, b.a.phys, 2048);
	EXPECT_NE(0, memcmp(a.p, b.p, 2048))
		TH_LOG("the comparison passed for bytes from the wrong chunk");
	/* They are the other chunk's bytes, so the engine did run. */
	EXPECT_EQ(0, memcmp(other.p + self->pg, b.p, 2048));
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
	chunk_unmap(&other);
}

/* ---- a 28-bit device (QEMU's default edu) ---------------------------- */

/* The narrowest device, if it drives fewer than 32 bits. */
static const struct kheap_edu_dev *narrow(FIXTURE_DATA(dma) *self)
{
	const struct kheap_edu_dev *best = NULL;
	int i;

	for (i = 0; i < self->nedu; i++)
		if (self->edu[i].bits < 32 &&
		    (!best || self->edu[i].bits < best->bits))
			best = &self->edu[i];
	return best;
}

/*
 * A pool within 28 bits (max_phys=256M, or the reserved range at 128 MiB)
 * serves a 28-bit device directly.
 */
TEST_F(dma, narrow_device_within_reach)
{
	const struct kheap_edu_dev *d = narrow(self);
	struct kheap_attach att;
	struct chunk a, b;
	uint64_t mask;
	struct edu e;

	NEED_IOMMU(false);
	if (!d)
		SKIP_UNLESS_REQUIRED("no edu of fewer than 32 bits");
	mask = kheap_bits_mask(d->bits);
	if (self->info.max_phys)
		EXPECT_LE(self->info.pool_phys + self->info.pool_size,
			  self->info.max_phys)
			TH_LOG("the pool ends beyond max_phys %#llx",
			       (unsigned long long)self->info.max_phys);
	if (!pool_below(self, d->bits))
		SKIP_UNLESS_REQUIRED("the pool ends beyond %u bits (max_phys %#llx)",
				     d->bits,
				     (unsigned long long)self->info.max_phys);

	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	EXPECT_EQ((uint64_t)KHEAP_DMA_DIRECT, att.mode);
	EXPECT_EQ(mask, att.dma_mask);
	chunk_new(_metadata, self->fd, 2 * self->pg, &b);
	EXPECT_EQ(a.a.phys, dma_addr_of(_metadata, self->fd, &a, att.handle));
	EXPECT_EQ(b.a.phys, dma_addr_of(_metadata, self->fd, &b, att.handle));
	edu_up(_metadata, d, &e);
	expect_copy(_metadata, self->fd, &e, &a, a.a.phys, self->pg - 512,
		    &b, b.a.phys, self->pg - 1536, 2048);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
}

/*
 * A chunk above 2^28 cannot be given to a 28-bit device without bouncing:
 * ATTACH is ERANGE, with one kernel log line naming the device.  Without
 * such chunks ATTACH works, and new chunks land within reach or not at
 * all.
 */
TEST_F_TIMEOUT(dma, narrow_device_out_of_reach, 120)
{
	const struct kheap_edu_dev *d = narrow(self);
	const uint64_t step = 4ULL << 20;
	struct kheap_attach att;
	struct chunk *chunks, low;
	unsigned int n = 0, cap, i;
	int ret, bad, lines, kfd, far = 0;
	int64_t near = -1;
	char line[512];
	uint64_t mask, sz, straddled = 0;
	struct edu e;

	NEED_IOMMU(false);
	if (!d)
		SKIP_UNLESS_REQUIRED("no edu of fewer than 32 bits");
	mask = kheap_bits_mask(d->bits);
	if (self->info.max_phys || pool_below(self, d->bits))
		SKIP_UNLESS_REQUIRED("the pool (%#llx, %llu MiB, max_phys %#llx) lies within %u bits",
				     (unsigned long long)self->info.pool_phys,
				     (unsigned long long)(self->info.pool_size >> 20),
				     (unsigned long long)self->info.max_phys,
				     d->bits);

	/*
	 * Take the whole pool, in chunks of 4 MiB and then of halving sizes
	 * down to a page, so that no free page is left below the mask
	 * whatever the pool's alignment (a 4 MiB chunk may straddle the
	 * mask, and earlier tests may leave smaller holes).  The chunks
	 * beyond it go back below, once the device has refused them.
	 */
	cap = self->info.pool_size / step + 2 * 64 * 11;
	chunks = calloc(cap, sizeof(*chunks));
	ASSERT_NE(NULL, chunks);
	for (sz = step; sz >= self->pg; sz /= 2) {
		while (n < cap && !kheap_alloc(self->fd, sz, 0, &chunks[n].a))
			far |= chunks[n++].a.phys + sz - 1 > mask;
	}
	ASSERT_LT(n, cap) TH_LOG("the pool took more than %u chunks", cap);
	ASSERT_TRUE(far) TH_LOG("no chunk beyond the mask");

	/* Our own reader: the harness's is for the last test. */
	kfd = kheap_kmsg_open();
	ASSERT_LE(0, kfd) TH_LOG("/dev/kmsg: %s", kheap_errname(kfd));
	EXPECT_REFUSED(self->fd, ERANGE,
		       kheap_attach(self->fd, d->bdf, d->bits, &att));
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));
	lines = kheap_kmsg_grep(kfd, d->bdf, &bad, line, sizeof(line));
	close(kfd);
	EXPECT_EQ(1, lines) TH_LOG("kernel log lines naming %s", d->bdf);
	EXPECT_EQ(0, bad);
	if (lines > 0)
		TH_LOG("kernel: %s", line);

	/* Without the far chunks the device can be attached... */
	for (i = 0; i < n; i++) {
		if (chunks[i].a.phys + chunks[i].a.size_out - 1 <= mask) {
			if (chunks[i].a.size_out >= 2 * self->pg)
				near = i;
			continue;
		}
		ASSERT_EQ(0, kheap_free(self->fd, chunks[i].a.token));
	}
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	EXPECT_EQ((uint64_t)KHEAP_DMA_DIRECT, att.mode);
	EXPECT_EQ(mask, att.dma_mask);
	/*
	 * ...and while it is, new chunks land within its mask or not at all.
	 * A far chunk that straddled the mask left its lower part free when
	 * it went: that part is taken first, then even a page is ENOMEM
	 * although the pool beyond the mask is free.
	 */
	for (sz = step; sz >= self->pg; sz /= 2) {
		while (n < cap && !kheap_alloc(self->fd, sz, 0, &chunks[n].a)) {
			EXPECT_LE(chunks[n].a.phys + sz - 1, mask)
				TH_LOG("chunk at %#llx beyond the attached device's mask",
				       (unsigned long long)chunks[n].a.phys);
			straddled += sz;
			n++;
		}
	}
	EXPECT_GT(step, straddled)
		TH_LOG("%llu KiB free below the mask after the far chunks went",
		       (unsigned long long)(straddled >> 10));
	ret = kheap_alloc(self->fd, self->pg, 0, &low.a);
	EXPECT_EQ(-ENOMEM, ret) TH_LOG("ALLOC with the near part full: %s at %#llx",
				       kheap_errname(ret),
				       (unsigned long long)low.a.phys);
	if (near < 0)
		SKIP(goto out, "the pool has nothing within %u bits", d->bits);
	/* The device holds what it maps: FREE must let go of that too. */
	ASSERT_EQ(0, kheap_free_flags(self->fd, chunks[near].a.token,
				      KHEAP_FREE_DEVICES));
	ret = kheap_alloc(self->fd, 2 * self->pg, 0, &low.a);
	ASSERT_EQ(0, ret) TH_LOG("ALLOC: %s", kheap_errname(ret));
	EXPECT_LE(low.a.phys + low.a.size_out - 1, mask)
		TH_LOG("chunk at %#llx beyond the attached device's mask",
		       (unsigned long long)low.a.phys);
	low.size = low.a.size_out;
	low.p = kheap_map(self->fd, low.a.token, low.size);
	ASSERT_NE(MAP_FAILED, (void *)low.p);
	EXPECT_EQ(low.a.phys, dma_addr_of(_metadata, self->fd, &low, att.handle));
	edu_up(_metadata, d, &e);
	expect_copy(_metadata, self->fd, &e, &low, low.a.phys, 100,
		    &low, low.a.phys, self->pg + 100, 1000);
	edu_close(&e);
	chunk_unmap(&low);
out:
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	free(chunks);
}

/* ---- behind an IOMMU ------------------------------------------------- */

TEST_F(dma, iommu_addresses)
{
	struct chunk a, b, c;
	struct kheap_attach att;
	uint64_t da, db, dc;

	NEED_IOMMU(true);
	NEED_DEVICE();
	chunk_new(_metadata, self->fd, 3 * self->pg, &a);
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	EXPECT_EQ((uint64_t)KHEAP_DMA_IOMMU, att.mode);
	EXPECT_EQ(kheap_bits_mask(self->dev->bits), att.dma_mask);
	chunk_new(_metadata, self->fd, self->pg, &b);
	chunk_new(_metadata, self->fd, 16 * self->pg, &c);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	db = dma_addr_of(_metadata, self->fd, &b, att.handle);
	dc = dma_addr_of(_metadata, self->fd, &c, att.handle);
	TH_LOG("phys %#llx %#llx %#llx -> IOVA %#llx %#llx %#llx",
	       (unsigned long long)a.a.phys, (unsigned long long)b.a.phys,
	       (unsigned long long)c.a.phys, (unsigned long long)da,
	       (unsigned long long)db, (unsigned long long)dc);
	/* Page aligned, within the mask, not overlapping. */
	EXPECT_EQ(0ULL, da % self->pg);
	EXPECT_EQ(0ULL, db % self->pg);
	EXPECT_EQ(0ULL, dc % self->pg);
	EXPECT_LE(da + a.size - 1, att.dma_mask);
	EXPECT_LE(db + b.size - 1, att.dma_mask);
	EXPECT_LE(dc + c.size - 1, att.dma_mask);
	EXPECT_TRUE(da + a.size <= db || db + b.size <= da);
	EXPECT_TRUE(da + a.size <= dc || dc + c.size <= da);
	EXPECT_TRUE(db + b.size <= dc || dc + c.size <= db);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
	chunk_unmap(&c);
}

/* Physical addresses mean nothing to a device behind an IOMMU. */
TEST_F(dma, iommu_physical_address_blocked)
{
	struct chunk a, b, src;
	struct kheap_attach att;
	uint64_t db, ds;
	struct edu e;

	NEED_IOMMU(true);
	NEED_DEVICE();
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	chunk_new(_metadata, self->fd, 2 * self->pg, &b);
	chunk_new(_metadata, self->fd, 2 * self->pg, &src);
	db = dma_addr_of(_metadata, self->fd, &b, att.handle);
	ds = dma_addr_of(_metadata, self->fd, &src, att.handle);
	edu_up(_metadata, self->dev, &e);

	/* Writes at the physical address do not land... */
	expect_unreached(_metadata, &e, &a, a.a.phys, self->pg - 100,
			 "physical address");
	/* ...reads from it bring nothing... */
	chunk_fill(&src);
	edu_load(_metadata, &e, src.a.phys + 10, 3000);
	chunk_fill(&b);
	edu_poke(_metadata, &e, db, 3000);
	EXPECT_NE(0, memcmp(src.p + 10, b.p, 3000))
		TH_LOG("the device read a chunk at its physical address");
	/* ...while the same at DMA_ADDR works both ways. */
	expect_copy(_metadata, self->fd, &e, &src, ds, 10, &b, db, 0, 3000);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
	chunk_unmap(&src);
}

TEST_F(dma, iommu_dma_round_trip)
{
	struct kheap_attach att;
	struct chunk a, b;
	uint64_t da, db;
	struct edu e;

	NEED_IOMMU(true);
	NEED_DEVICE();
	chunk_new(_metadata, self->fd, 3 * self->pg, &a);
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	chunk_new(_metadata, self->fd, 4 * self->pg, &b);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	db = dma_addr_of(_metadata, self->fd, &b, att.handle);
	edu_up(_metadata, self->dev, &e);
	expect_copy(_metadata, self->fd, &e, &a, da, self->pg - 1000,
		    &b, db, 3 * self->pg - 2000, 3000);
	expect_copy(_metadata, self->fd, &e, &b, db, 2 * self->pg - 8,
		    &a, da, self->pg - 4000, EDU_XFER_MAX);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
}

/*
 * A device this file did not attach reaches none of its chunks, neither
 * at the attached device's addresses nor at physical ones; attached by
 * another file, it reaches that file's chunks only.
 */
TEST_F(dma, iommu_other_device_isolated)
{
	const struct kheap_edu_dev *d0 = &self->edu[0], *d1 = &self->edu[1];
	struct kheap_attach att, att2;
	struct chunk a, mine;
	struct edu e0, e1;
	uint64_t da, dm;
	int fd2;

	NEED_IOMMU(true);
	if (self->nedu < 2)
		SKIP_UNLESS_REQUIRED("one edu device only");
	attach_ok(_metadata, self->fd, d0, d0->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	edu_up(_metadata, d0, &e0);
	edu_up(_metadata, d1, &e1);

	expect_unreached(_metadata, &e1, &a, da, 0, "the other device's address");
	expect_unreached(_metadata, &e1, &a, a.a.phys, 0, "physical address");
	/* The attached device does reach it: the writes above could land. */
	chunk_fill(&a);
	edu_poke(_metadata, &e0, da, 64);
	EXPECT_NE(-1, chunk_damage(&a, 0, 0));

	/* Attached by another file, the device reads that file's chunk... */
	fd2 = kheap_open();
	ASSERT_LE(0, fd2);
	attach_ok(_metadata, fd2, d1, d1->bits, &att2);
	chunk_new(_metadata, fd2, 2 * self->pg, &mine);
	dm = dma_addr_of(_metadata, fd2, &mine, att2.handle);
	expect_copy(_metadata, fd2, &e1, &mine, dm, 0, &mine, dm,
		    self->pg - 7, 2000);
	/* ...but still not ours, at either address. */
	chunk_fill(&a);
	edu_load(_metadata, &e1, da, 2000);
	edu_poke(_metadata, &e1, dm, 2000);
	EXPECT_NE(0, memcmp(a.p, mine.p, 2000))
		TH_LOG("%s read another file's chunk at %#llx", d1->bdf,
		       (unsigned long long)da);
	edu_load(_metadata, &e1, a.a.phys, 2000);
	edu_poke(_metadata, &e1, dm, 2000);
	EXPECT_NE(0, memcmp(a.p, mine.p, 2000))
		TH_LOG("%s read another file's chunk at %#llx", d1->bdf,
		       (unsigned long long)a.a.phys);
	expect_unreached(_metadata, &e1, &a, da, 0, "the other device's address");

	edu_close(&e0);
	edu_close(&e1);
	chunk_unmap(&mine);
	close(fd2);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
}

/*
 * After DETACH the device reaches nothing; after close() neither, even
 * once the pages belong to someone else.
 */
TEST_F(dma, iommu_detach_and_close_revoke)
{
	struct kheap_attach att;
	struct chunk a, b, c;
	uint64_t da, db, addr;
	struct kheap_info info;
	char buf[192];
	struct edu e;
	int fd2;

	NEED_IOMMU(true);
	NEED_DEVICE();
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	edu_up(_metadata, self->dev, &e);
	chunk_fill(&a);
	edu_poke(_metadata, &e, da + 8, 64);
	EXPECT_NE(-1, chunk_damage(&a, 0, 0)) TH_LOG("attached, yet no DMA");

	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	expect_unreached(_metadata, &e, &a, da, 0, "its address before DETACH");
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, a.a.token, att.handle, &addr));
	chunk_unmap(&a);
	ASSERT_EQ(0, kheap_free(self->fd, a.a.token));

	/*
	 * The same through close().  A mapping holds its file open, so b
	 * goes first; then its pages go back to the pool, and the next
	 * chunk of the same size, ours, most likely gets them.
	 */
	fd2 = kheap_open();
	ASSERT_LE(0, fd2);
	attach_ok(_metadata, fd2, self->dev, self->dev->bits, &att);
	chunk_new(_metadata, fd2, 2 * self->pg, &b);
	db = dma_addr_of(_metadata, fd2, &b, att.handle);
	chunk_fill(&b);
	edu_poke(_metadata, &e, db + 8, 64);
	EXPECT_NE(-1, chunk_damage(&b, 0, 0)) TH_LOG("attached, yet no DMA");
	chunk_unmap(&b);
	close(fd2);
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("after close(): %s", kheap_state_str(&info, buf, sizeof(buf)));
	chunk_new(_metadata, self->fd, 2 * self->pg, &c);
	TH_LOG("closed file's chunk at %#llx, the new one at %#llx",
	       (unsigned long long)b.a.phys, (unsigned long long)c.a.phys);
	expect_unreached(_metadata, &e, &c, db, 0, "a closed file's address");
	edu_close(&e);
	chunk_unmap(&c);
}

/*
 * FREE keeps a chunk mapped for the devices (they may still be writing),
 * held by no one else; KHEAP_FREE_DEVICES drops the device mappings at
 * once.
 */
TEST_F(dma, iommu_free_and_devices)
{
	struct kheap_info info;
	struct kheap_attach att;
	struct chunk a, b;
	uint64_t da, db, addr;
	char buf[192];
	struct edu e;

	NEED_IOMMU(true);
	NEED_DEVICE();
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	chunk_new(_metadata, self->fd, 2 * self->pg, &b);
	da = dma_addr_of(_metadata, self->fd, &a, att.handle);
	db = dma_addr_of(_metadata, self->fd, &b, att.handle);
	edu_up(_metadata, self->dev, &e);

	/* Plain FREE: the device still writes into the chunk... */
	ASSERT_EQ(0, kheap_free(self->fd, a.a.token));
	EXPECT_REFUSED(self->fd, EINVAL,
		       kheap_dma_addr(self->fd, a.a.token, att.handle, &addr));
	chunk_fill(&a);
	edu_poke(_metadata, &e, da + self->pg - 32, 64);
	EXPECT_NE(-1, chunk_damage(&a, 0, 0))
		TH_LOG("a freed chunk lost its device mapping without KHEAP_FREE_DEVICES");
	/* ...which stays held with no CPU mapping left... */
	chunk_unmap(&a);
	ASSERT_EQ(0, kheap_info(self->fd, &info));
	EXPECT_EQ(2ULL, info.chunks_in_use)
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
	EXPECT_EQ(self->info.free_bytes - a.size - b.size, info.free_bytes);
	EXPECT_EQ(1ULL, info.file_chunks);

	/* KHEAP_FREE_DEVICES: unreachable at once, CPU mapping or not. */
	ASSERT_EQ(0, kheap_free_flags(self->fd, b.a.token, KHEAP_FREE_DEVICES));
	expect_unreached(_metadata, &e, &b, db, 0, "its address after FREE_DEVICES");
	chunk_unmap(&b);

	/* ...until DETACH gives the freed chunk back... */
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_EQ(0, kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &info))
		TH_LOG("%s", kheap_state_str(&info, buf, sizeof(buf)));
	/* ...out of the device's reach, whoever gets its pages next. */
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	expect_unreached(_metadata, &e, &a, da, 0, "a detached, freed chunk's address");
	chunk_unmap(&a);
	edu_close(&e);
}

/* SHRINK or EXTEND (ABI 5) of a chunk to @size: 0 or -errno. */
static int resize_chunk(int fd, unsigned long cmd, uint64_t token,
			uint64_t size)
{
	struct kheap_resize rs = { .token = token, .size = size };

	return kheap_ioctl(fd, cmd, &rs);
}

/*
 * SHRINK and EXTEND while devices are attached: each device maps every
 * chunk of the file whole, so resizing is refused (EBUSY) and nothing
 * changes; after DETACH both work.
 */
TEST_F(dma, resize_with_devices)
{
	uint64_t pg = self->pg;
	struct kheap_attach att;
	struct kheap_alloc a;

	NEED_DEVICE();
	memset(&a, 0, sizeof(a));
	a.size = 4 * pg;
	a.flags = KHEAP_ALLOC_GROWABLE;
	ASSERT_EQ(0, kheap_ioctl(self->fd, KHEAP_IOC_ALLOC, &a));
	attach_ok(_metadata, self->fd, self->dev, self->dev->bits, &att);
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize_chunk(self->fd, KHEAP_IOC_SHRINK, a.token,
				    2 * pg));
	EXPECT_REFUSED(self->fd, EBUSY,
		       resize_chunk(self->fd, KHEAP_IOC_EXTEND, a.token,
				    8 * pg));
	/* The unchanged size asks nothing of the devices. */
	EXPECT_EQ(0, resize_chunk(self->fd, KHEAP_IOC_SHRINK, a.token,
				  4 * pg));
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_EQ(0, resize_chunk(self->fd, KHEAP_IOC_SHRINK, a.token,
				  2 * pg));
	EXPECT_EQ(0, resize_chunk(self->fd, KHEAP_IOC_EXTEND, a.token,
				  8 * pg));
	EXPECT_EQ(0, kheap_free(self->fd, a.token));
}

/*
 * A device bound to vfio-pci belongs to its user-space driver: the
 * attachment loses its mappings (DMA_ADDR: ENODEV), a new ATTACH is
 * EBUSY, DETACH still works, and after unbinding all is as before.
 */
TEST_F_TIMEOUT(dma, iommu_vfio_bind, 120)
{
	const struct kheap_edu_dev *d;
	struct kheap_attach att, again;
	struct chunk a, b;
	uint64_t addr;
	struct edu e;
	int ret;

	NEED_IOMMU(true);
	NEED_DEVICE();
	d = &self->edu[self->nedu - 1];
	if (access("/sys/bus/pci/drivers/" VFIO_PCI, F_OK))
		SKIP_UNLESS_REQUIRED("vfio-pci is not loaded");
	chunk_new(_metadata, self->fd, 2 * self->pg, &a);
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	EXPECT_EQ(0, kheap_dma_addr(self->fd, a.a.token, att.handle, &addr));

	ret = kheap_pci_bind(d->bdf, VFIO_PCI);
	ASSERT_EQ(0, ret) TH_LOG("binding %s to vfio-pci: %s", d->bdf,
				 kheap_errname(ret));
	EXPECT_REFUSED(self->fd, ENODEV,
		       kheap_dma_addr(self->fd, a.a.token, att.handle, &addr));
	EXPECT_EQ(1ULL, attachments(_metadata, self->fd));
	ret = kheap_attach(self->fd, d->bdf, d->bits, &again);
	EXPECT_EQ(-EBUSY, ret) TH_LOG("ATTACH of a vfio-pci device: %s",
				      kheap_errname(ret));
	if (!ret)
		kheap_detach(self->fd, again.handle);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	EXPECT_EQ(0ULL, attachments(_metadata, self->fd));

	ret = kheap_pci_unbind(d->bdf);
	ASSERT_EQ(0, ret) TH_LOG("unbinding %s: %s", d->bdf, kheap_errname(ret));
	attach_ok(_metadata, self->fd, d, d->bits, &att);
	chunk_new(_metadata, self->fd, 2 * self->pg, &b);
	edu_up(_metadata, d, &e);
	expect_copy(_metadata, self->fd, &e, &a,
		    dma_addr_of(_metadata, self->fd, &a, att.handle), 0,
		    &b, dma_addr_of(_metadata, self->fd, &b, att.handle),
		    self->pg - 10, 100);
	edu_close(&e);
	EXPECT_EQ(0, kheap_detach(self->fd, att.handle));
	chunk_unmap(&a);
	chunk_unmap(&b);
}

/* ---- must stay last: what the tests above made the kernel say -------- */

KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
