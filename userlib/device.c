// SPDX-License-Identifier: MIT
/*
 * device.c - chunks from /dev/kheap.
 *
 * The device opens lazily (KHEAP_DEVICE overrides the path).  A missing
 * device or module is ENODEV, with one message on stderr per process.
 *
 * The window: a PROT_NONE reservation four times as large as the pool,
 * placed so that its base is congruent to the pool's physical address
 * modulo 1 GiB.  Each chunk is mapped with MAP_FIXED at base + (phys -
 * pool phys), so virtual alignment equals physical alignment up to 1 GiB.
 * Freeing a chunk maps the reservation back over it before
 * KHEAP_IOC_FREE.  A bitmap of the window's pages in use is kept all
 * along, for the two cases where chunks cannot sit at their pool offset:
 *  - the kernel withholds physical addresses (restrict_phys): chunks are
 *    placed first-fit, aligned as asked;
 *  - a fork child (ABI 3): its inherited mappings are copies elsewhere in
 *    the pool, so the pool offsets of its new chunks may be taken; they
 *    are placed first-fit at an address congruent to their physical one
 *    modulo their natural alignment (up to their size and 1 GiB).
 *
 * After fork the child closes the inherited file, which is the parent's
 * (its chunks stay alive in the parent's file), and opens its own on the
 * next call, so that chunks it allocates or adopts die with it.  An
 * inherited chunk is never freed through a file: unmapping it is enough.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kheap.h>

#include "device.h"
#include "extent.h"
#include "kheap.h"

static struct {
	int fd;			/* -1 when closed */
	int warned;
	struct kheap_pool pool;
	void *map;
	size_t map_len;
	int restricted;
	int placed;		/* chunks are placed, not at their offset */
	uint64_t abi;		/* the module's KHEAP_ABI_VERSION */
	struct extent_map va;	/* window pages in use */
} dev = { .fd = -1 };

static const char *dev_path(void)
{
	const char *p = getenv(KHEAP_DEVICE_ENV);

	return p && *p ? p : KHEAP_DEFAULT_DEVICE;
}

static int dev_fd(void)
{
	int fd, err;

	if (dev.fd >= 0)
		return dev.fd;
	fd = open(dev_path(), O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dev.fd = fd;
		return fd;
	}
	err = errno;
	if (!dev.warned) {
		dev.warned = 1;
		fprintf(stderr, "libkheap: cannot open %s: %s%s\n", dev_path(),
			strerror(err),
			err == ENOENT || err == ENODEV || err == ENXIO ?
			" (is the kheap module loaded? KHEAP_DEVICE names "
			"another device)" : "");
	}
	if (err == ENOENT || err == ENODEV || err == ENXIO)
		return -ENODEV;
	return -err;
}

static int device_open(struct kheap_pool *pool)
{
	struct kheap_info info;
	uintptr_t base;
	size_t span;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, KHEAP_IOC_INFO, &info))
		return errno == ENOTTY ? -ENODEV : -errno;
	if (info.abi_version < 1 || !info.pool_size || !info.page_size ||
	    info.page_size & (info.page_size - 1)) {
		if (!dev.warned) {
			dev.warned = 1;
			fprintf(stderr, "libkheap: %s reports an unusable pool "
				"(abi %llu, size %llu)\n", dev_path(),
				(unsigned long long)info.abi_version,
				(unsigned long long)info.pool_size);
		}
		return -ENODEV;
	}
	dev.restricted = info.pool_phys == 0;
	dev.placed = dev.restricted;
	dev.abi = info.abi_version;
	span = 4 * (size_t)info.pool_size;
	base = window_reserve(span, info.pool_phys, &dev.map, &dev.map_len);
	if (!base)
		return -ENOMEM;
	if (extent_init(&dev.va, span / info.page_size)) {
		munmap(dev.map, dev.map_len);
		return -ENOMEM;
	}
	dev.pool.phys = info.pool_phys;
	dev.pool.size = info.pool_size;
	dev.pool.page_size = info.page_size;
	dev.pool.base = base;
	dev.pool.span = span;
	*pool = dev.pool;
	return 0;
}

static void unmap_range(size_t off, size_t size)
{
	/* Put the reservation back, so nothing else lands in the window. */
	mmap((void *)(dev.pool.base + off), size, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

static void release(int fd, uint64_t token)
{
	struct kheap_free f;

	memset(&f, 0, sizeof(f));
	f.token = token;
	/* Every block of the chunk is free: no device may still use it. */
	if (dev.abi >= 2)
		f.flags = KHEAP_FREE_DEVICES;
	ioctl(fd, KHEAP_IOC_FREE, &f);
}

/*
 * Where in the window a chunk of size bytes at physical address phys
 * (0: withheld) goes; -1 when the window has no room.
 */
static long place(size_t size, size_t align, uint64_t phys)
{
	size_t pg = dev.pool.page_size, n = size / pg;
	size_t a = align > pg ? align : pg, phase = 0;

	if (!dev.placed) {
		size_t first = (phys - dev.pool.phys) / pg;

		extent_mark(&dev.va, first, n);
		return (long)first;
	}
	if (phys) {
		/* Natural alignment: as much of phys's as its size uses. */
		a = pg;
		while (a < size && a < ((size_t)1 << 30) && !(phys & a))
			a <<= 1;
		if (a < align)
			a = align;
		/* base is congruent to the pool's phys modulo 1 GiB. */
		phase = ((dev.pool.phys & (a - 1)) / pg) % (a / pg);
	}
	return extent_alloc(&dev.va, n, a / pg, phase);
}

static int device_alloc(size_t size, size_t align, unsigned int flags,
			struct kheap_chunk *c)
{
	size_t pg = dev.pool.page_size;
	struct kheap_alloc a;
	long first;
	size_t off;
	void *p;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	memset(&a, 0, sizeof(a));
	a.size = size;
	a.align = align;
	if (flags & PROV_SHARED && dev.abi >= 3)
		a.flags = KHEAP_ALLOC_SHARED;
	if (flags & PROV_GROWABLE && dev.abi >= 5)
		a.flags |= KHEAP_ALLOC_GROWABLE;
	if (ioctl(fd, KHEAP_IOC_ALLOC, &a))
		return -errno;
	if (!dev.restricted &&
	    (a.phys < dev.pool.phys ||
	     a.phys - dev.pool.phys + a.size_out > dev.pool.size)) {
		release(fd, a.token);
		return -EIO;
	}
	first = place(a.size_out, align, a.phys);
	if (first < 0) {
		release(fd, a.token);
		return -ENOMEM;
	}
	off = (size_t)first * pg;
	p = mmap((void *)(dev.pool.base + off), a.size_out,
		 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 (off_t)a.token);
	if (p == MAP_FAILED) {
		int err = errno;

		extent_free(&dev.va, (size_t)first, a.size_out / pg);
		release(fd, a.token);
		return -err;
	}
	c->off = off;
	c->size = a.size_out;
	c->token = a.token;
	c->phys = a.phys;
	c->shared = !!(flags & PROV_SHARED);
	c->inherited = 0;
	c->growable = !!(a.flags & KHEAP_ALLOC_GROWABLE);
	return 0;
}

static void device_free(const struct kheap_chunk *c)
{
	unmap_range(c->off, c->size);
	extent_free(&dev.va, c->off / dev.pool.page_size,
		    c->size / dev.pool.page_size);
	/* An inherited chunk is the parent's file's: unmapping was all. */
	if (dev.fd >= 0 && !c->inherited)
		release(dev.fd, c->token);
}

static int device_adopt(struct kheap_chunk *c)
{
	struct kheap_adopt ad;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	memset(&ad, 0, sizeof(ad));
	ad.addr = dev.pool.base + c->off;
	if (ioctl(fd, KHEAP_IOC_ADOPT, &ad))
		return errno == EINVAL ? -EIO : -errno;
	c->phys = ad.phys;
	c->inherited = 0;
	return 0;
}

static int device_usage(struct kheap_pool_usage *u)
{
	struct kheap_info info;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, KHEAP_IOC_INFO, &info))
		return -errno;
	u->free_bytes = info.free_bytes;
	u->largest_free = info.largest_free;
	return 0;
}

static int device_atfork_child(void)
{
	if (dev.fd >= 0)
		close(dev.fd);
	dev.fd = -1;
	if (dev.abi < 3)
		return 0;	/* shared with the parent */
	dev.placed = 1;
	return 1;
}

static void device_close(void)
{
	if (dev.map)
		munmap(dev.map, dev.map_len);
	dev.map = NULL;
	extent_destroy(&dev.va);
	if (dev.fd >= 0)
		close(dev.fd);
	dev.fd = -1;
}

static int device_attach(const char *name, unsigned int dma_bits,
			 uint64_t *handle)
{
	struct kheap_attach a;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	if (dev.abi < 2)
		return -ENODEV;	/* a module without device attachment */
	memset(&a, 0, sizeof(a));
	a.name = (uintptr_t)name;
	a.dma_bits = dma_bits;
	if (ioctl(fd, KHEAP_IOC_ATTACH, &a))
		return -errno;
	*handle = a.handle;
	return 0;
}

static int device_detach(uint64_t handle)
{
	struct kheap_detach d;

	if (dev.fd < 0)
		return -EBADF;
	memset(&d, 0, sizeof(d));
	d.handle = handle;
	return ioctl(dev.fd, KHEAP_IOC_DETACH, &d) ? -errno : 0;
}

static int device_dma_addr(const struct kheap_chunk *c, uint64_t handle,
			   uint64_t *addr)
{
	struct kheap_dma_addr d;

	if (dev.fd < 0)
		return -EBADF;
	memset(&d, 0, sizeof(d));
	d.token = c->token;
	d.handle = handle;
	if (ioctl(dev.fd, KHEAP_IOC_DMA_ADDR, &d))
		return -errno;
	*addr = d.dma_addr;
	return 0;
}

/* PYNQ's flush is the end of the CPU's writes, its invalidate the start
 * of the CPU's reads: dma_sync_*_for_device / _for_cpu in the kernel. */
static int device_sync(const struct kheap_chunk *c, size_t off, size_t len,
		       unsigned int flags)
{
	struct kheap_sync s;
	int fd = dev_fd();

	if (fd < 0)
		return fd;
	memset(&s, 0, sizeof(s));
	s.token = c->token;
	s.offset = off;
	s.length = len;
	s.flags = flags == KHEAP_SYNC_FOR_DEVICE ?
		  KHEAP_SYNC_END | KHEAP_SYNC_WRITE :
		  KHEAP_SYNC_START | KHEAP_SYNC_READ;
	return ioctl(fd, KHEAP_IOC_SYNC, &s) ? -errno : 0;
}

static int device_export(const struct kheap_chunk *c, size_t off,
			 size_t len, int flags)
{
	struct kheap_export e;

	if (dev.fd < 0)
		return -EBADF;
	memset(&e, 0, sizeof(e));
	e.token = c->token;
	e.offset = off;
	e.length = len;
	e.flags = (unsigned int)flags;
	if (ioctl(dev.fd, KHEAP_IOC_EXPORT, &e))
		return -errno;
	return (int)e.fd;
}

static int resize_ioctl(unsigned long cmd, uint64_t token, size_t size)
{
	struct kheap_resize r;

	memset(&r, 0, sizeof(r));
	r.token = token;
	r.size = size;
	return ioctl(dev.fd, cmd, &r) ? -errno : 0;
}

/*
 * The tail is unmapped first: the kernel refuses while it is mapped.
 * Should it refuse anyway (a dma-buf of the block covers the tail, a
 * pin), the tail stays the chunk's until FREE, out of the window.
 */
static int device_shrink(struct kheap_chunk *c, size_t size)
{
	size_t pg = dev.pool.page_size;

	if (dev.abi < 5 || dev.fd < 0 || c->inherited || c->shared)
		return -EOPNOTSUPP;
	unmap_range(c->off + size, c->size - size);
	extent_free(&dev.va, (c->off + size) / pg, (c->size - size) / pg);
	if (resize_ioctl(KHEAP_IOC_SHRINK, c->token, size))
		c->growable = 0;	/* the kernel's size is not ours */
	c->size = size;
	return 0;
}

/* The grown part is mapped right after the chunk, at its own offset. */
static int device_extend(struct kheap_chunk *c, size_t size)
{
	size_t pg = dev.pool.page_size, more = size - c->size;
	size_t first = (c->off + c->size) / pg;
	void *p;
	int err;

	if (dev.abi < 5 || dev.fd < 0 || !c->growable || c->inherited ||
	    c->shared)
		return -EOPNOTSUPP;
	if (!extent_range_free(&dev.va, first, more / pg))
		return -ENOSPC;
	err = resize_ioctl(KHEAP_IOC_EXTEND, c->token, size);
	if (err)
		return err;
	p = mmap((void *)(dev.pool.base + c->off + c->size), more,
		 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev.fd,
		 (off_t)(c->token + c->size));
	if (p == MAP_FAILED) {
		err = -errno;
		resize_ioctl(KHEAP_IOC_SHRINK, c->token, c->size);
		return err;
	}
	extent_mark(&dev.va, first, more / pg);
	c->size = size;
	return 0;
}

const struct kheap_provider kheap_device_provider = {
	.name = "device",
	.open = device_open,
	.alloc = device_alloc,
	.free = device_free,
	.usage = device_usage,
	.atfork_child = device_atfork_child,
	.adopt = device_adopt,
	.close = device_close,
	.attach = device_attach,
	.detach = device_detach,
	.dma_addr = device_dma_addr,
	.sync = device_sync,
	.export = device_export,
	.shrink = device_shrink,
	.extend = device_extend,
};
