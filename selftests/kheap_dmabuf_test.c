// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_dmabuf_test: KHEAP_IOC_EXPORT, chunks as dma-bufs, proven with the
 * kernel's own importers: DRM's vgem (PRIME import, mmap, re-export) and
 * V4L2's vivid (capture into V4L2_MEMORY_DMABUF buffers, in both of its
 * allocators= modes).
 *
 * Needs the module loaded (kheap.sh does that for each pool source) and
 * root.  Every pool source exports, a reserved one too (its range has
 * struct pages, as ZONE_DEVICE memory).  vgem and vivid are loaded from
 * $KHEAP_DMABUF_MODULES (a directory of .ko files with an "order" file,
 * dependencies first, as scripts/mkinitramfs.sh stages it), or with
 * modprobe's database when that is not set; they are unloaded again.
 * Without them, the importer tests fail unless $KHEAP_DMABUF_OPTIONAL=1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libkmod.h>
#include <limits.h>
#include <linux/dma-buf.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <drm/drm.h>
#include <drm/drm_mode.h>

/* See kheap_test.c: the harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "kheap_lib.h"
#include "kheap_kmsg_test.h"

_Static_assert(sizeof(struct kheap_export) == KHEAP_EXPORT_SIZE_VER0,
	       "struct kheap_export grew: add a new SIZE_VER");
_Static_assert(sizeof(struct kheap_info) == KHEAP_INFO_SIZE_VER0,
	       "INFO's dmabufs field must come from a reserved slot");

static int kmsg_fd = -1;

static void __attribute__((constructor)) kheap_dmabuf_test_init(void)
{
	int fd = kheap_open();

	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
		ksft_print_header();
		ksft_exit_skip("%s: %s (is kheap.ko loaded?)\n", KHEAP_DEV,
			       strerror(-fd));
	}
	if (geteuid() || fd == -EACCES || fd == -EPERM) {
		ksft_print_header();
		ksft_exit_skip("the dma-buf tests need root\n");
	}
	if (fd >= 0)
		close(fd);
	kmsg_fd = kheap_kmsg_open();
}

/* EXPORT: the new descriptor, or -errno. */
static int export(int fd, uint64_t token, uint64_t offset, uint64_t length,
		  uint64_t flags)
{
	struct kheap_export ex = {
		.token = token,
		.offset = offset,
		.length = length,
		.flags = flags,
	};
	int ret = kheap_ioctl(fd, KHEAP_IOC_EXPORT, &ex);

	return ret ? ret : (int)ex.fd;
}

/* The exported dma-bufs that still exist, from INFO and from sysfs. */
static int dmabufs_now(int fd, uint64_t *info_nr, uint64_t *sysfs_nr)
{
	struct kheap_info info;
	int ret = kheap_info(fd, &info);

	if (ret)
		return ret;
	*info_nr = info.dmabufs;
	return kheap_sysfs_u64("dmabufs", sysfs_nr);
}

/* Open descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own */
}

/* /sys/module/kheap/refcnt */
static long module_refcnt(void)
{
	char buf[32];
	long n = -1;
	FILE *f = fopen("/sys/module/" KHEAP_MODNAME "/refcnt", "re");

	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f))
		n = strtol(buf, NULL, 10);
	fclose(f);
	return n;
}

/*
 * Are the @npages pages at @a and @b the same physical pages?  Reads a
 * byte of each page first, so that every page is present.
 */
static int same_pages(const void *a, const void *b, size_t npages)
{
	const size_t pg = getpagesize();
	uint64_t pa[64], pb[64];
	size_t i;
	int ret;

	if (npages > 64)
		npages = 64;
	for (i = 0; i < npages; i++) {
		(void)*(const volatile char *)((const char *)a + i * pg);
		(void)*(const volatile char *)((const char *)b + i * pg);
	}
	ret = kheap_pagemap_pfns(a, npages, pa);
	if (!ret)
		ret = kheap_pagemap_pfns(b, npages, pb);
	if (ret)
		return ret;
	for (i = 0; i < npages; i++)
		if (!pa[i] || pa[i] != pb[i])
			return 0;
	return 1;
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) ? -errno : 0;
}

/* ---- importer modules ------------------------------------------------ */

/* "vivid.ko" -> "vivid", "videobuf2-common.ko" -> "videobuf2_common" */
static void ko_modname(const char *file, char *name, size_t len)
{
	size_t i;

	snprintf(name, len, "%s", file);
	for (i = 0; name[i]; i++) {
		if (name[i] == '-')
			name[i] = '_';
		if (!strcmp(name + i, ".ko")) {
			name[i] = '\0';
			break;
		}
	}
}

static bool module_loaded(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

static int kmod_insert_path(struct kmod_ctx *ctx, const char *path,
			    const char *params)
{
	struct kmod_module *mod;
	int ret = kmod_module_new_from_path(ctx, path, &mod);

	if (ret)
		return ret > 0 ? -ret : ret;
	ret = kmod_module_insert_module(mod, 0, params);
	kmod_module_unref(mod);
	return ret > 0 ? -ret : ret;
}

/*
 * Load importer @name (vgem or vivid) with @params, and what it needs.
 * From $KHEAP_DMABUF_MODULES: every module listed before @name's file
 * that is not loaded yet, except the other importers.
 */
static int importer_load(const char *name, const char *params)
{
	const char *dir = getenv("KHEAP_DMABUF_MODULES");
	struct kmod_ctx *ctx;
	char path[PATH_MAX], line[256], mod[256];
	int ret = -ENOENT;
	FILE *order;

	if (module_loaded(name))
		return -EEXIST;
	ctx = kmod_new(NULL, NULL);
	if (!ctx)
		return -ENOMEM;
	if (!dir || !*dir) {
		struct kmod_module *m;

		ret = kmod_module_new_from_name(ctx, name, &m);
		if (!ret) {
			ret = kmod_module_probe_insert_module(m, 0, params,
							      NULL, NULL, NULL);
			kmod_module_unref(m);
		}
		kmod_unref(ctx);
		return ret > 0 ? -ret : ret;
	}

	snprintf(path, sizeof(path), "%s/order", dir);
	order = fopen(path, "re");
	if (!order) {
		kmod_unref(ctx);
		return -errno;
	}
	while (fgets(line, sizeof(line), order)) {
		line[strcspn(line, "\n")] = '\0';
		ko_modname(line, mod, sizeof(mod));
		snprintf(path, sizeof(path), "%s/%s", dir, line);
		if (!strcmp(mod, name)) {
			ret = kmod_insert_path(ctx, path, params);
			break;
		}
		if (!strcmp(mod, "vgem") || !strcmp(mod, "vivid") ||
		    module_loaded(mod))
			continue;
		ret = kmod_insert_path(ctx, path, "");
		if (ret && ret != -EEXIST)
			break;
		ret = -ENOENT;
	}
	fclose(order);
	kmod_unref(ctx);
	return ret;
}

/* Unload importer @name, waiting while it is still busy. */
static int importer_unload(const char *name)
{
	uint64_t deadline = kheap_now_ms() + KHEAP_SETTLE_MS;
	struct kmod_module *mod;
	struct kmod_ctx *ctx;
	int ret;

	ctx = kmod_new(NULL, NULL);
	if (!ctx)
		return -ENOMEM;
	ret = kmod_module_new_from_name(ctx, name, &mod);
	while (!ret) {
		ret = kmod_module_remove_module(mod, 0);
		ret = ret > 0 ? -ret : ret;
		if ((ret != -EAGAIN && ret != -EBUSY) ||
		    kheap_now_ms() >= deadline)
			break;
		kheap_sleep_ms(20);
		ret = 0;
	}
	kmod_module_unref(mod);
	kmod_unref(ctx);
	return ret;
}

/* An importer that cannot be loaded fails the test, unless optional. */
#define LOAD_IMPORTER(_name, _params) do {				\
	int _ret = importer_load(_name, _params);			\
	if (_ret && getenv("KHEAP_DMABUF_OPTIONAL") &&			\
	    !strcmp(getenv("KHEAP_DMABUF_OPTIONAL"), "1"))		\
		SKIP(return, "%s: %s", _name, kheap_errname(_ret));	\
	ASSERT_EQ(0, _ret) TH_LOG("loading %s (%s): %s", _name,	\
				  _params, kheap_errname(_ret));	\
} while (0)

/* ---- the fixture ------------------------------------------------------ */

FIXTURE(dmabuf) {
	int fd;
	size_t pg;
	struct kheap_info info;		/* at setup, pool idle */
	long refcnt;			/* module references at setup */
	int nfds;			/* descriptors at setup */
};

FIXTURE_SETUP(dmabuf)
{
	uint64_t a, b;
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open: %s", kheap_errname(self->fd));
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle before the test: %s (%s)",
				 kheap_state_str(&self->info, buf, sizeof(buf)),
				 kheap_errname(ret));
	ASSERT_LE(4ULL, self->info.abi_version);
	ASSERT_EQ(0, dmabufs_now(self->fd, &a, &b));
	ASSERT_EQ(0ULL, a);
	ASSERT_EQ(0ULL, b);
	self->refcnt = module_refcnt();
	ASSERT_GE(self->refcnt, 1L);	/* our open file */
	self->nfds = count_fds();
}

FIXTURE_TEARDOWN(dmabuf)
{
	if (self->fd >= 0)
		close(self->fd);
}


/*
 * After a test: everything went back, exactly, and no dma-buf, descriptor
 * or module reference is left.
 */
static void expect_all_back(struct __test_metadata *_metadata,
			    FIXTURE_DATA(dmabuf) *self)
{
	struct kheap_info now;
	uint64_t a = 1, b = 1;
	char buf[192];
	int ret;

	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &now);
	EXPECT_EQ(0, ret) TH_LOG("pool not back: %s",
				 kheap_state_str(&now, buf, sizeof(buf)));
	EXPECT_TRUE(kheap_same_state(&self->info, &now));
	EXPECT_EQ(0, dmabufs_now(self->fd, &a, &b));
	EXPECT_EQ(0ULL, a);
	EXPECT_EQ(0ULL, b);
	EXPECT_EQ(self->nfds, count_fds());
	EXPECT_EQ(self->refcnt, module_refcnt());
}

/* One bad field per case, each with its errno, and nothing changes. */
TEST_F(dmabuf, bad_input)
{
	struct kheap_alloc al, other_al;
	struct kheap_export ex;
	uint64_t top = UINT64_MAX & ~(uint64_t)(self->pg - 1);
	size_t pg = self->pg, size = 4 * pg;
	const uint64_t bad_flags[] = {
		O_WRONLY, O_ACCMODE, O_RDWR | O_NONBLOCK, O_RDWR | O_APPEND,
		O_RDWR | O_TRUNC, 1ULL << 40, 1ULL << 63,
	};
	unsigned char big[sizeof(ex) + 16];
	struct kheap_export *ro;
	unsigned int i;
	int other;

	ASSERT_EQ(0, kheap_alloc(self->fd, size, 0, &al));

	/* Tokens: never allocated, another file's, freed, unaligned. */
	EXPECT_EQ(-EINVAL, export(self->fd, al.token + size + 64 * pg, 0, pg,
				  O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, 0, 0, pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token + 1, 0, pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token + pg, 0, pg, O_RDWR));
	other = kheap_open();
	ASSERT_GE(other, 0);
	ASSERT_EQ(0, kheap_alloc(other, pg, 0, &other_al));
	EXPECT_EQ(-EINVAL, export(self->fd, other_al.token, 0, pg, O_RDWR));
	ASSERT_EQ(0, kheap_free(other, other_al.token));
	EXPECT_EQ(-EINVAL, export(other, other_al.token, 0, pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(other, al.token, 0, pg, O_RDWR));
	close(other);

	/* Ranges: empty, unaligned, outside, wrapping, huge. */
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, 0, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 1, pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, pg + 1, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, pg - 1, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, size + pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, size, pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, pg, size, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, top, 2 * pg, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, pg, top, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, top, top, O_RDWR));
	EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, top, O_RDWR));

	/* Flags. */
	for (i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		EXPECT_EQ(-EINVAL, export(self->fd, al.token, 0, pg,
					  bad_flags[i]))
			TH_LOG("flags %#llx",
			       (unsigned long long)bad_flags[i]);
	}

	/* Output and reserved fields. */
	memset(&ex, 0, sizeof(ex));
	ex.token = al.token;
	ex.length = pg;
	ex.fd = 3;
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd, KHEAP_IOC_EXPORT, &ex));
	for (i = 0; i < 3; i++) {
		memset(&ex, 0, sizeof(ex));
		ex.token = al.token;
		ex.length = pg;
		ex.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd, KHEAP_IOC_EXPORT,
					       &ex)) TH_LOG("reserved[%u]", i);
	}

	/* Struct sizes: too small, larger with a non-zero tail. */
	memset(&ex, 0, sizeof(ex));
	ex.token = al.token;
	ex.length = pg;
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd,
				       kheap_cmd_sized(KHEAP_IOC_EXPORT,
						       KHEAP_EXPORT_SIZE_VER0 - 8),
				       &ex));
	EXPECT_EQ(-EINVAL, kheap_ioctl(self->fd,
				       kheap_cmd_sized(KHEAP_IOC_EXPORT, 8),
				       &ex));
	memset(big, 0, sizeof(big));
	memcpy(big, &ex, sizeof(ex));
	big[sizeof(ex) + 3] = 1;
	EXPECT_EQ(-E2BIG, kheap_ioctl(self->fd,
				      kheap_cmd_sized(KHEAP_IOC_EXPORT,
						      sizeof(big)), big));

	/* Bad pointers: unreadable, and readable but not writable. */
	EXPECT_EQ(-EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_EXPORT, NULL));
	ro = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ro->token = al.token;
	ro->length = pg;
	ro->flags = O_RDWR;
	ASSERT_EQ(0, mprotect(ro, pg, PROT_READ));
	/* Made, then dropped when the number cannot be written back. */
	EXPECT_EQ(-EFAULT, kheap_ioctl(self->fd, KHEAP_IOC_EXPORT, ro));
	munmap(ro, pg);

	/* Nothing was exported, no descriptor appeared. */
	EXPECT_EQ(self->nfds, count_fds());
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	expect_all_back(_metadata, self);
}

/* The ABI's forward compatibility: a larger struct with a zero tail works. */
TEST_F(dmabuf, larger_struct_zero_tail)
{
	unsigned char big[sizeof(struct kheap_export) + 16];
	struct kheap_export *ex = (struct kheap_export *)big;
	struct kheap_alloc al;

	ASSERT_EQ(0, kheap_alloc(self->fd, self->pg, 0, &al));
	memset(big, 0, sizeof(big));
	ex->token = al.token;
	ex->length = self->pg;
	ex->flags = O_RDWR | O_CLOEXEC;
	ASSERT_EQ(0, kheap_ioctl(self->fd,
				 kheap_cmd_sized(KHEAP_IOC_EXPORT, sizeof(big)),
				 big));
	EXPECT_GE(ex->fd, 3ULL);
	close((int)ex->fd);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	expect_all_back(_metadata, self);
}

/*
 * An exported range: the same physical pages through the dma-buf's
 * mmap(), its size, its flags, and the accounting (INFO, sysfs).
 */
TEST_F(dmabuf, export_maps_same_pages)
{
	size_t pg = self->pg, size = 4 * pg, len = 2 * pg;
	struct kheap_alloc al;
	char line[128], want[128];
	unsigned char *k, *d;
	uint64_t a, b;
	int dfd, flags;

	ASSERT_EQ(0, kheap_alloc(self->fd, size, 0, &al));
	k = kheap_map(self->fd, al.token, size);
	ASSERT_NE(MAP_FAILED, k);
	kheap_fill(k, size, 11);

	dfd = export(self->fd, al.token, pg, len, O_RDWR | O_CLOEXEC);
	ASSERT_GE(dfd, 0) TH_LOG("EXPORT: %s", kheap_errname(dfd));
	flags = fcntl(dfd, F_GETFD);
	EXPECT_TRUE(flags & FD_CLOEXEC);
	EXPECT_EQ(O_RDWR, fcntl(dfd, F_GETFL) & O_ACCMODE);
	EXPECT_EQ((off_t)len, lseek(dfd, 0, SEEK_END));
	ASSERT_EQ(0, dmabufs_now(self->fd, &a, &b));
	EXPECT_EQ(1ULL, a);
	EXPECT_EQ(1ULL, b);
	/* dmabuf_extents: where it lies in the pool. */
	ASSERT_EQ(0, kheap_sysfs_str("dmabuf_extents", line, sizeof(line)));
	snprintf(want, sizeof(want), "0x%llx 0x%zx",
		 (unsigned long long)(al.phys - self->info.pool_phys + pg),
		 len);
	EXPECT_STREQ(want, line);

	d = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	ASSERT_NE(MAP_FAILED, d) TH_LOG("mmap: %s", strerror(errno));
	/* The pattern depends on the offset: compare with the kheap view. */
	EXPECT_EQ(0, memcmp(d, k + pg, len));
	EXPECT_EQ(1, same_pages(d, k + pg, len / pg));
	/* Writes cross both ways. */
	memset(d, 0x5a, pg);
	EXPECT_EQ(0x5a, k[pg]);
	EXPECT_EQ(0x5a, k[2 * pg - 1]);
	k[2 * pg] = 0xa5;
	EXPECT_EQ(0xa5, d[pg]);
	/* After MADV_DONTNEED the fault handler maps the same pages again. */
	ASSERT_EQ(0, madvise(d, len, MADV_DONTNEED));
	EXPECT_EQ(0xa5, d[pg]);
	EXPECT_EQ(1, same_pages(d, k + pg, len / pg));
	munmap(d, len);

	/* Mappings the dma-buf refuses, beyond it, private or executable. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, len + pg, PROT_READ, MAP_SHARED,
				   dfd, 0));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, pg, PROT_READ, MAP_SHARED, dfd,
				   len));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, len, PROT_READ, MAP_PRIVATE, dfd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, len, PROT_READ | PROT_EXEC,
				   MAP_SHARED, dfd, 0));
	EXPECT_EQ(EPERM, errno);
	/* An offset inside the dma-buf. */
	d = mmap(NULL, pg, PROT_READ, MAP_SHARED, dfd, pg);
	ASSERT_NE(MAP_FAILED, d);
	EXPECT_EQ(1, same_pages(d, k + 2 * pg, 1));
	munmap(d, pg);

	close(dfd);
	munmap(k, size);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	expect_all_back(_metadata, self);
}

/* O_RDONLY: no writable mapping; no O_CLOEXEC: the flag is clear. */
TEST_F(dmabuf, read_only_export)
{
	struct kheap_alloc al;
	void *d;
	int dfd;

	ASSERT_EQ(0, kheap_alloc(self->fd, self->pg, 0, &al));
	dfd = export(self->fd, al.token, 0, self->pg, O_RDONLY);
	ASSERT_GE(dfd, 0) TH_LOG("EXPORT: %s", kheap_errname(dfd));
	EXPECT_FALSE(fcntl(dfd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(O_RDONLY, fcntl(dfd, F_GETFL) & O_ACCMODE);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, self->pg, PROT_READ | PROT_WRITE,
				   MAP_SHARED, dfd, 0));
	EXPECT_EQ(EACCES, errno);
	d = mmap(NULL, self->pg, PROT_READ, MAP_SHARED, dfd, 0);
	ASSERT_NE(MAP_FAILED, d);
	EXPECT_EQ(-1, kheap_check_zero(d, self->pg));
	munmap(d, self->pg);
	close(dfd);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	expect_all_back(_metadata, self);
}

/* DMA_BUF_IOCTL_SYNC brackets: every valid combination, and a bad one. */
TEST_F(dmabuf, sync_ioctl)
{
	const uint64_t dirs[] = { DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE,
				  DMA_BUF_SYNC_RW };
	struct kheap_alloc al;
	unsigned int i;
	int dfd;

	ASSERT_EQ(0, kheap_alloc(self->fd, 2 * self->pg, 0, &al));
	dfd = export(self->fd, al.token, 0, 2 * self->pg, O_RDWR);
	ASSERT_GE(dfd, 0);
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(0, dmabuf_sync(dfd, DMA_BUF_SYNC_START | dirs[i]));
		EXPECT_EQ(0, dmabuf_sync(dfd, DMA_BUF_SYNC_END | dirs[i]));
	}
	EXPECT_EQ(-EINVAL, dmabuf_sync(dfd, DMA_BUF_SYNC_START));
	EXPECT_EQ(-EINVAL, dmabuf_sync(dfd, 1ULL << 20 | DMA_BUF_SYNC_READ));
	close(dfd);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	expect_all_back(_metadata, self);
}

/*
 * Lifetime: FREE, close() of the kheap file and munmap() leave the range
 * to the dma-buf, which keeps the module loaded; when the last holder
 * goes, the accounting returns exactly.
 */
TEST_F(dmabuf, outlives_free_close_munmap)
{
	size_t pg = self->pg, size = 8 * pg;
	struct kheap_info mid;
	struct kheap_alloc al;
	unsigned char *k, *d;
	int fd2, dfd, ret;

	fd2 = kheap_open();
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(0, kheap_alloc(fd2, size, 0, &al));
	k = kheap_map(fd2, al.token, size);
	ASSERT_NE(MAP_FAILED, k);
	kheap_fill(k, size, 21);
	dfd = export(fd2, al.token, 0, size, O_RDWR);
	ASSERT_GE(dfd, 0);
	d = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	ASSERT_NE(MAP_FAILED, d);

	ASSERT_EQ(0, kheap_free(fd2, al.token));
	close(fd2);
	munmap(k, size);
	/* Only the dma-buf (its fd and its mapping) holds the chunk. */
	ASSERT_EQ(0, kheap_info(self->fd, &mid));
	EXPECT_EQ(self->info.chunks_in_use + 1, mid.chunks_in_use);
	EXPECT_EQ(self->info.free_bytes - size, mid.free_bytes);
	EXPECT_EQ(-1, kheap_check(d, size, 21));
	/*
	 * The module cannot go: the dma-buf holds it.  (Checked before
	 * trying, so that a module that would go does not go under it.)
	 */
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(1L, module_refcnt());
	ret = kheap_module_unload();
	EXPECT_TRUE(ret == -EAGAIN || ret == -EBUSY || ret == -EWOULDBLOCK)
		TH_LOG("rmmod with a dma-buf alive: %s", kheap_errname(ret));
	EXPECT_TRUE(kheap_module_listed());
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);

	/* The descriptor goes, the mapping still holds the dma-buf. */
	close(dfd);
	kheap_sleep_ms(50);
	ASSERT_EQ(0, kheap_info(self->fd, &mid));
	EXPECT_EQ(self->info.chunks_in_use + 1, mid.chunks_in_use);
	EXPECT_EQ(-1, kheap_check(d, size, 21));
	munmap(d, size);
	expect_all_back(_metadata, self);
}

/* A chunk exported several times, in overlapping ranges. */
TEST_F(dmabuf, overlapping_exports)
{
	size_t pg = self->pg;
	struct kheap_alloc al;
	int dfd[3];
	uint64_t a, b;

	ASSERT_EQ(0, kheap_alloc(self->fd, 3 * pg, 0, &al));
	dfd[0] = export(self->fd, al.token, 0, 3 * pg, O_RDWR);
	dfd[1] = export(self->fd, al.token, pg, 2 * pg, O_RDONLY);
	dfd[2] = export(self->fd, al.token, 2 * pg, pg, O_RDWR);
	ASSERT_GE(dfd[0], 0);
	ASSERT_GE(dfd[1], 0);
	ASSERT_GE(dfd[2], 0);
	ASSERT_EQ(0, dmabufs_now(self->fd, &a, &b));
	EXPECT_EQ(3ULL, a);
	EXPECT_EQ(3ULL, b);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	close(dfd[1]);
	close(dfd[0]);
	ASSERT_EQ(0, dmabufs_now(self->fd, &a, &b));
	EXPECT_EQ(1ULL, a);
	close(dfd[2]);
	expect_all_back(_metadata, self);
}

/* Send @fd over the socket @sock. */
static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

/* Another process: a forked child and one that got the fd by SCM_RIGHTS. */
TEST_F(dmabuf, other_processes)
{
	size_t pg = self->pg, size = 2 * pg;
	struct kheap_alloc al;
	unsigned char *k;
	int sv[2], dfd, status;
	pid_t pid;

	ASSERT_EQ(0, kheap_alloc(self->fd, size, 0, &al));
	k = kheap_map(self->fd, al.token, size);
	ASSERT_NE(MAP_FAILED, k);
	kheap_fill(k, size, 31);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));

	/* The receiver exists before the dma-buf does. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char cbuf[CMSG_SPACE(sizeof(int))], c;
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		unsigned char *d;
		int fd;

		close(sv[0]);
		close(self->fd);
		munmap(k, size);
		if (recvmsg(sv[1], &msg, 0) != 1 || !CMSG_FIRSTHDR(&msg))
			_exit(2);
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(fd));
		d = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (d == MAP_FAILED)
			_exit(3);
		if (kheap_check(d, size, 31) != -1)
			_exit(4);
		d[0] = 0x77;
		_exit(0);
	}
	close(sv[1]);
	dfd = export(self->fd, al.token, 0, size, O_RDWR);
	ASSERT_GE(dfd, 0);
	ASSERT_EQ(0, send_fd(sv[0], dfd));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("SCM_RIGHTS receiver: status %#x", status);
	EXPECT_EQ(0x77, k[0]);
	close(sv[0]);

	/* fork(): the child inherits the descriptor, the parent closes it. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		unsigned char *d, *want = malloc(size);

		if (!want)
			_exit(2);
		kheap_fill(want, size, 31);
		want[0] = 0x77;		/* the other child's write */
		kheap_sleep_ms(100);	/* the parent has closed everything */
		d = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
		if (d == MAP_FAILED)
			_exit(3);
		if (memcmp(d, want, size))
			_exit(4);
		d[1] = 0x66;
		_exit(0);
	}
	close(dfd);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("fork child: status %#x", status);
	EXPECT_EQ(0x66, k[1]);
	munmap(k, size);
	expect_all_back(_metadata, self);
}

/* ---- vgem: DRM PRIME --------------------------------------------------- */

/* Open the vgem card: 0 and its descriptor in @fd, or -errno. */
static int vgem_open(int *fd)
{
	char path[64], name[16];
	int i, f;

	for (i = 0; i < 16; i++) {
		struct drm_version v = { .name = name,
					 .name_len = sizeof(name) - 1 };

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		f = open(path, O_RDWR | O_CLOEXEC);
		if (f < 0)
			continue;
		memset(name, 0, sizeof(name));
		if (!ioctl(f, DRM_IOCTL_VERSION, &v) && !strcmp(name, "vgem")) {
			*fd = f;
			return 0;
		}
		close(f);
	}
	return -ENODEV;
}

static int prime_import(int drm, int dfd, uint32_t *handle)
{
	struct drm_prime_handle p = { .fd = dfd };

	if (ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
		return -errno;
	*handle = p.handle;
	return 0;
}

static int gem_close(int drm, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	return ioctl(drm, DRM_IOCTL_GEM_CLOSE, &c) ? -errno : 0;
}

/*
 * mmap() an imported object through vgem.  DRM hands out the fake mmap
 * offset of dumb buffers only (MAP_DUMB refuses imported objects), but an
 * imported object gets one too, from the same range allocator.  So make a
 * dumb buffer of the same size, learn its offset, close it, import: the
 * import takes the hole the dumb buffer left.  DRM only maps objects this
 * file holds a handle of, and the pagemap comparison by the caller proves
 * what got mapped.
 */
static void *vgem_map_import(int drm, int dfd, size_t size, uint32_t *handle)
{
	struct drm_mode_create_dumb cd = {
		.width = size / 4, .height = 1, .bpp = 32,
	};
	struct drm_mode_map_dumb md = { 0 };
	void *p;

	if (ioctl(drm, DRM_IOCTL_MODE_CREATE_DUMB, &cd))
		return MAP_FAILED;
	md.handle = cd.handle;
	if (ioctl(drm, DRM_IOCTL_MODE_MAP_DUMB, &md) || cd.size != size) {
		gem_close(drm, cd.handle);
		return MAP_FAILED;
	}
	gem_close(drm, cd.handle);
	if (prime_import(drm, dfd, handle))
		return MAP_FAILED;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, drm,
		 (off_t)md.offset);
	return p;
}

FIXTURE(vgem) {
	int fd;
	size_t pg;
	struct kheap_info info;
	long refcnt;
	int nfds;
	bool loaded;
};

FIXTURE_SETUP(vgem)
{
	/* The dmabuf fixture's setup, for the shared helpers. */
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle: %s",
				 kheap_state_str(&self->info, buf, sizeof(buf)));
	self->refcnt = module_refcnt();
	self->nfds = count_fds();
	LOAD_IMPORTER("vgem", "");
	self->loaded = true;
}

FIXTURE_TEARDOWN(vgem)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->loaded)
		EXPECT_EQ(0, importer_unload("vgem"));
}

/* FIXTURE_DATA(vgem) has the dmabuf fixture's leading fields. */
static void vgem_all_back(struct __test_metadata *_metadata,
			  FIXTURE_DATA(vgem) *self)
{
	FIXTURE_DATA(dmabuf) d = {
		.fd = self->fd, .pg = self->pg, .info = self->info,
		.refcnt = self->refcnt,
		.nfds = self->nfds,
	};

	expect_all_back(_metadata, &d);
}

/*
 * PRIME import, bytes both ways between the kheap mapping and vgem's,
 * the same physical pages, re-export (the same dma-buf) and re-import
 * into another DRM file; then vgem alone holds the chunk, until its last
 * handle goes.
 */
TEST_F(vgem, prime_import_mmap_reexport)
{
	size_t pg = self->pg, size = 16 * pg;
	uint32_t h1, h2;
	struct kheap_info mid;
	struct kheap_alloc al;
	struct stat s1, s2;
	struct drm_prime_handle re = { 0 };
	unsigned char *k, *v, *v2;
	int drm, drm2, dfd, ret;

	if (!self->loaded)
		SKIP(return, "no vgem");
	ASSERT_EQ(0, vgem_open(&drm));
	ASSERT_EQ(0, vgem_open(&drm2));
	ASSERT_EQ(0, kheap_alloc(self->fd, size, 0, &al));
	k = kheap_map(self->fd, al.token, size);
	ASSERT_NE(MAP_FAILED, k);
	kheap_fill(k, size, 41);
	dfd = export(self->fd, al.token, 0, size, O_RDWR | O_CLOEXEC);
	ASSERT_GE(dfd, 0);

	v = vgem_map_import(drm, dfd, size, &h1);
	ASSERT_NE(MAP_FAILED, v) TH_LOG("vgem import and mmap: %s",
					strerror(errno));
	EXPECT_EQ(-1, kheap_check(v, size, 41));
	EXPECT_EQ(1, same_pages(v, k, size / pg));
	ASSERT_EQ(0, dmabuf_sync(dfd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
	kheap_fill(v, size, 42);
	ASSERT_EQ(0, dmabuf_sync(dfd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
	EXPECT_EQ(-1, kheap_check(k, size, 42));
	kheap_fill(k, size, 43);
	EXPECT_EQ(-1, kheap_check(v, size, 43));

	/* Importing again in the same file gives the same handle. */
	ret = prime_import(drm, dfd, &h2);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(h1, h2);

	/* Re-export: DRM hands back the very dma-buf it imported. */
	re.handle = h1;
	re.flags = DRM_CLOEXEC | DRM_RDWR;
	ASSERT_EQ(0, ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, &re));
	ASSERT_EQ(0, fstat(dfd, &s1));
	ASSERT_EQ(0, fstat(re.fd, &s2));
	EXPECT_EQ(s1.st_ino, s2.st_ino);
	/* Re-import into another DRM file, map it there. */
	v2 = vgem_map_import(drm2, re.fd, size, &h2);
	ASSERT_NE(MAP_FAILED, v2);
	EXPECT_EQ(1, same_pages(v2, k, size / pg));
	EXPECT_EQ(-1, kheap_check(v2, size, 43));
	close(re.fd);

	/* Every kheap holder goes: vgem's handles and mappings remain. */
	munmap(k, size);
	close(dfd);
	ASSERT_EQ(0, kheap_free(self->fd, al.token));
	ASSERT_EQ(0, kheap_info(self->fd, &mid));
	EXPECT_EQ(self->info.chunks_in_use + 1, mid.chunks_in_use);
	EXPECT_EQ(self->info.free_bytes - size, mid.free_bytes);
	EXPECT_EQ(-1, kheap_check(v2, size, 43));
	munmap(v, size);
	munmap(v2, size);
	EXPECT_EQ(0, gem_close(drm, h1));
	ASSERT_EQ(0, kheap_info(self->fd, &mid));
	EXPECT_EQ(self->info.chunks_in_use + 1, mid.chunks_in_use);
	/* drm2's handle is the last holder. */
	close(drm);
	close(drm2);
	vgem_all_back(_metadata, self);
}

/* Only vgem's handle holds the dma-buf: the kheap module stays loaded. */
TEST_F(vgem, holds_module)
{
	struct kheap_alloc al;
	uint32_t h = 0;
	int drm, dfd, ret;

	if (!self->loaded)
		SKIP(return, "no vgem");
	ASSERT_EQ(0, vgem_open(&drm));
	ASSERT_EQ(0, kheap_alloc(self->fd, self->pg, 0, &al));
	dfd = export(self->fd, al.token, 0, self->pg, O_RDWR);
	ASSERT_GE(dfd, 0);
	ASSERT_EQ(0, prime_import(drm, dfd, &h));
	close(dfd);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(1L, module_refcnt());
	ret = kheap_module_unload();
	EXPECT_TRUE(ret == -EAGAIN || ret == -EBUSY || ret == -EWOULDBLOCK)
		TH_LOG("rmmod while vgem holds a dma-buf: %s",
		       kheap_errname(ret));
	EXPECT_EQ(0, gem_close(drm, h));
	close(drm);
	EXPECT_EQ(0L, module_refcnt());
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	vgem_all_back(_metadata, self);
}

/* ---- vivid: V4L2 capture into kheap dma-bufs ------------------------- */

FIXTURE(vivid) {
	int fd;
	size_t pg;
	struct kheap_info info;
	long refcnt;
	int nfds;
	bool loaded;
};

/* vivid's two allocators: vb2-vmalloc (0) and vb2-dma-contig (1). */
FIXTURE_VARIANT(vivid) {
	const char *params;
};

FIXTURE_VARIANT_ADD(vivid, vmalloc) {
	.params = "n_devs=1 node_types=0x1 allocators=0",
};

FIXTURE_VARIANT_ADD(vivid, dma_contig) {
	.params = "n_devs=1 node_types=0x1 allocators=1",
};

FIXTURE_SETUP(vivid)
{
	char buf[192];
	int ret;

	self->pg = getpagesize();
	self->fd = kheap_open();
	ASSERT_GE(self->fd, 0);
	ret = kheap_wait_idle(self->fd, KHEAP_SETTLE_MS, &self->info);
	ASSERT_EQ(0, ret) TH_LOG("pool not idle: %s",
				 kheap_state_str(&self->info, buf, sizeof(buf)));
	self->refcnt = module_refcnt();
	self->nfds = count_fds();
	LOAD_IMPORTER("vivid", variant->params);
	self->loaded = true;
}

FIXTURE_TEARDOWN(vivid)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->loaded)
		EXPECT_EQ(0, importer_unload("vivid"));
}

static void vivid_all_back(struct __test_metadata *_metadata,
			   FIXTURE_DATA(vivid) *self)
{
	FIXTURE_DATA(dmabuf) d = {
		.fd = self->fd, .pg = self->pg, .info = self->info,
		.refcnt = self->refcnt,
		.nfds = self->nfds,
	};

	expect_all_back(_metadata, &d);
}

/* Open vivid's capture node: its descriptor, or -errno. */
static int vivid_open(void)
{
	char path[64];
	int i, f;

	for (i = 0; i < 64; i++) {
		struct v4l2_capability cap = { 0 };

		snprintf(path, sizeof(path), "/dev/video%d", i);
		f = open(path, O_RDWR | O_CLOEXEC);
		if (f < 0)
			continue;
		if (!ioctl(f, VIDIOC_QUERYCAP, &cap) &&
		    !strcmp((char *)cap.driver, "vivid") &&
		    cap.device_caps & V4L2_CAP_VIDEO_CAPTURE)
			return f;
		close(f);
	}
	return -ENODEV;
}

#define VIVID_BUFS	2

/* One capture setup: kheap chunks exported, queued, streaming. */
struct capture {
	int video;
	size_t len;			/* each buffer, page multiple */
	uint32_t sizeimage;
	struct kheap_alloc al[VIVID_BUFS];
	unsigned char *k[VIVID_BUFS];
	int dfd[VIVID_BUFS];
};

static int xioctl(int fd, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret && errno == EINTR);
	return ret ? -errno : 0;
}

static int capture_queue(struct capture *c, unsigned int i)
{
	struct v4l2_buffer b = {
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = V4L2_MEMORY_DMABUF,
		.index = i,
		.length = c->len,
	};

	b.m.fd = c->dfd[i];
	return xioctl(c->video, VIDIOC_QBUF, &b);
}

/* Dequeue one filled buffer: its index, or -errno. */
static int capture_dequeue(struct capture *c, uint32_t *bytesused)
{
	struct v4l2_buffer b = {
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = V4L2_MEMORY_DMABUF,
	};
	struct pollfd p = { .fd = c->video, .events = POLLIN };
	int ret;

	/* TCG is slow, vivid's frame thread too: allow ten seconds. */
	ret = poll(&p, 1, 10000);
	if (ret <= 0)
		return ret ? -errno : -ETIMEDOUT;
	ret = xioctl(c->video, VIDIOC_DQBUF, &b);
	if (ret)
		return ret;
	*bytesused = b.bytesused;
	return (int)b.index;
}

static int capture_setup(FIXTURE_DATA(vivid) *self, struct capture *c)
{
	struct v4l2_format fmt = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_streamparm parm = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_requestbuffers rb = {
		.count = VIVID_BUFS,
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = V4L2_MEMORY_DMABUF,
	};
	unsigned int i;
	int ret;

	memset(c, 0, sizeof(*c));
	c->video = vivid_open();
	if (c->video < 0)
		return c->video;
	ret = xioctl(c->video, VIDIOC_G_FMT, &fmt);
	if (ret)
		return ret;
	/* Small frames: the buddy pool has 2 MiB in all. */
	fmt.fmt.pix.width = 320;
	fmt.fmt.pix.height = 180;
	fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
	fmt.fmt.pix.field = V4L2_FIELD_NONE;
	/* The driver's choice, not G_FMT's line length for a wider frame. */
	fmt.fmt.pix.bytesperline = 0;
	fmt.fmt.pix.sizeimage = 0;
	ret = xioctl(c->video, VIDIOC_S_FMT, &fmt);
	if (ret)
		return ret;
	c->sizeimage = fmt.fmt.pix.sizeimage;
	/*
	 * 5 frames a second.  vivid's capture thread checks that its next
	 * frame is due in the future, then computes the wait again: a vCPU
	 * preempted between the two (TCG on a busy host) passes a negative
	 * timeout and the kernel logs a stack trace.  At a high frame rate
	 * the wait is a jiffy or two and that happens; at 200 ms it does not.
	 */
	parm.parm.capture.timeperframe.numerator = 1;
	parm.parm.capture.timeperframe.denominator = 5;
	ret = xioctl(c->video, VIDIOC_S_PARM, &parm);
	if (ret)
		return ret;
	c->len = (c->sizeimage + self->pg - 1) & ~(self->pg - 1);
	ret = xioctl(c->video, VIDIOC_REQBUFS, &rb);
	if (ret)
		return ret;
	if (rb.count != VIVID_BUFS)
		return -ENOBUFS;
	for (i = 0; i < VIVID_BUFS; i++) {
		c->dfd[i] = -1;
		ret = kheap_alloc(self->fd, c->len, 0, &c->al[i]);
		if (ret)
			return ret;
		c->k[i] = kheap_map(self->fd, c->al[i].token, c->len);
		if (c->k[i] == MAP_FAILED)
			return -errno;
		memset(c->k[i], 0xEE, c->len);
		c->dfd[i] = export(self->fd, c->al[i].token, 0, c->len,
				   O_RDWR | O_CLOEXEC);
		if (c->dfd[i] < 0)
			return c->dfd[i];
		ret = capture_queue(c, i);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * vivid wrote a frame into the chunk: (almost) every byte of the image
 * changed from our 0xEE fill, and the padding after it, up to the page,
 * did not.  (A test pattern may contain 0xEE bytes, but not many.)
 */
static bool frame_landed(const unsigned char *p, size_t n, size_t len)
{
	size_t i, ee = 0;

	for (i = 0; i < n; i++)
		ee += p[i] == 0xEE;
	for (i = n; i < len; i++)
		if (p[i] != 0xEE)
			return false;
	return ee < n / 16;
}

/* For failure messages: where the 0xEE fill survived. */
static const char *frame_str(const unsigned char *p, size_t n, size_t len)
{
	static char buf[128];
	size_t i, ee = 0, first = len, after = 0;

	for (i = 0; i < len; i++) {
		if (p[i] != 0xEE)
			continue;
		if (i < n)
			ee++;
		else
			after++;
		if (first == len)
			first = i;
	}
	snprintf(buf, sizeof(buf),
		 "%zu of %zu image bytes still 0xEE (first at %zu), %zu of %zu after",
		 ee, n, first, after, len - n);
	return buf;
}

/* Stream, check frames, stop: @cycles times. */
static void capture_cycles(struct __test_metadata *_metadata,
			   struct capture *c, int cycles)
{
	int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	uint32_t used;
	int n, i, idx;

	for (n = 0; n < cycles; n++) {
		ASSERT_EQ(0, xioctl(c->video, VIDIOC_STREAMON, &type));
		for (i = 0; i < 2; i++) {
			idx = capture_dequeue(c, &used);
			ASSERT_GE(idx, 0) TH_LOG("DQBUF: %s",
						 kheap_errname(idx));
			ASSERT_LT(idx, VIVID_BUFS);
			EXPECT_EQ(c->sizeimage, used);
			EXPECT_EQ(0, dmabuf_sync(c->dfd[idx], DMA_BUF_SYNC_START |
						 DMA_BUF_SYNC_READ));
			/* Through the kheap mapping: the chunk's own pages. */
			EXPECT_TRUE(frame_landed(c->k[idx], c->sizeimage, c->len))
				TH_LOG("buffer %d: %s", idx,
				       frame_str(c->k[idx], c->sizeimage, c->len));
			EXPECT_EQ(0, dmabuf_sync(c->dfd[idx], DMA_BUF_SYNC_END |
						 DMA_BUF_SYNC_READ));
			memset(c->k[idx], 0xEE, c->len);
			ASSERT_EQ(0, capture_queue(c, idx));
		}
		/* STREAMOFF dequeues everything; queue all again. */
		ASSERT_EQ(0, xioctl(c->video, VIDIOC_STREAMOFF, &type));
		for (i = 0; i < VIVID_BUFS; i++)
			ASSERT_EQ(0, capture_queue(c, i));
	}
}

TEST_F(vivid, capture_stream_cycles)
{
	struct capture c;
	unsigned int i;
	int ret;

	if (!self->loaded)
		SKIP(return, "no vivid");
	ret = capture_setup(self, &c);
	ASSERT_EQ(0, ret) TH_LOG("capture setup: %s", kheap_errname(ret));
	capture_cycles(_metadata, &c, 3);
	close(c.video);
	for (i = 0; i < VIVID_BUFS; i++) {
		close(c.dfd[i]);
		munmap(c.k[i], c.len);
		ASSERT_EQ(0, kheap_free(self->fd, c.al[i].token));
	}
	vivid_all_back(_metadata, self);
}

/* The @n-th (0..23) permutation of 0..3, in the factorial number system. */
static void nth_order(unsigned int n, int order[4])
{
	int left[4] = { 0, 1, 2, 3 };
	unsigned int i, k, fact = 6, nleft = 4;

	for (i = 0; i < 4; i++) {
		k = n / fact;
		n %= fact;
		order[i] = left[k];
		for (; k + 1 < nleft; k++)
			left[k] = left[k + 1];
		nleft--;
		if (nleft)
			fact /= nleft;
	}
}

/*
 * Close in every order: the video fd, the dma-buf fds, the kheap fd and
 * the mappings, all 24 of them, with the stream running; whatever goes
 * last releases the chunks.
 */
/*
 * 24 streams, each to its first frame: under KASAN and TCG beside another
 * guest, more than the harness's default 30 s.
 */
TEST_F_TIMEOUT(vivid, close_in_every_order, 120)
{
	/* 0: video fd, 1: dma-bufs, 2: kheap fd, 3: munmap */
	int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	unsigned int o, s, i;
	struct capture c;
	int order[4];
	uint32_t used;
	int ret;

	if (!self->loaded)
		SKIP(return, "no vivid");
	for (o = 0; o < 24; o++) {
		int kfd = kheap_open();

		ASSERT_GE(kfd, 0);
		/* capture_setup() allocates through self->fd. */
		close(self->fd);
		self->fd = kfd;
		ret = capture_setup(self, &c);
		ASSERT_EQ(0, ret) TH_LOG("order %u: setup: %s", o,
					 kheap_errname(ret));
		ASSERT_EQ(0, xioctl(c.video, VIDIOC_STREAMON, &type));
		ret = capture_dequeue(&c, &used);
		ASSERT_GE(ret, 0) TH_LOG("order %u: DQBUF: %s", o,
					 kheap_errname(ret));
		EXPECT_TRUE(frame_landed(c.k[ret], c.sizeimage, c.len));
		nth_order(o, order);
		for (s = 0; s < 4; s++) {
			switch (order[s]) {
			case 0:
				close(c.video);
				break;
			case 1:
				for (i = 0; i < VIVID_BUFS; i++)
					close(c.dfd[i]);
				break;
			case 2:
				close(self->fd);
				self->fd = -1;
				break;
			case 3:
				for (i = 0; i < VIVID_BUFS; i++)
					munmap(c.k[i], c.len);
				break;
			}
		}
		self->fd = kheap_open();
		ASSERT_GE(self->fd, 0);
		vivid_all_back(_metadata, self);
	}
}

KHEAP_KERNEL_LOG_TEST()

TEST_HARNESS_MAIN
