/* SPDX-License-Identifier: MIT */
/*
 * kheap.h - malloc over physically contiguous memory from /dev/kheap.
 *
 * Every allocation is physically contiguous and its physical address is
 * one addition away: for every allocation p and every i below its usable
 * size, kheap_phys(p + i) == kheap_phys(p) + i, the true physical address.
 *
 * Semantics are those of the C and POSIX functions of the same names:
 *  - NULL with errno set on failure, one value per case, whatever the
 *    kernel said along the way (kheap_posix_memalign returns it instead):
 *	ENOMEM	the pool cannot satisfy the request now (other processes
 *		may hold the rest), a size overflows (calloc too), or the
 *		kernel could not map or account a new chunk;
 *	ENODEV	no usable kheap device (module not loaded, node missing);
 *	EACCES	the device exists but this process may not use it;
 *	EINVAL	a bad alignment (aligned_alloc, posix_memalign);
 *  - kheap_free(NULL) does nothing; kheap_realloc(NULL, n) is
 *    kheap_malloc(n); a failed realloc leaves the old block intact;
 *  - kheap_free or kheap_realloc of a pointer that is not the start of a
 *    block of this process in use prints "kheap_free(): double free
 *    detected" (a block already freed) or "...: invalid pointer" and
 *    aborts, as glibc does; the check costs one byte's load per call;
 *  - kheap_realloc(p, 0) with p != NULL frees p and returns NULL (glibc's
 *    behaviour); kheap_malloc(0) returns a unique pointer;
 *  - kheap_posix_memalign returns EINVAL for an alignment that is not a
 *    power-of-two multiple of sizeof(void *); kheap_aligned_alloc takes
 *    any power of two up to 1 GiB (EINVAL above, or for a non power of
 *    two); the alignment holds both virtually and physically.  When the
 *    kernel withholds physical addresses (restrict_phys), alignments
 *    above 2 MiB give EINVAL: the kernel would not place the memory so
 *    (that would tell address bits), and a virtual-only promise is none.
 *
 * The device opens on first use: /dev/kheap, or the path in the
 * KHEAP_DEVICE environment variable.  Without it every allocation fails
 * with errno = ENODEV and one message goes to stderr, once.
 *
 * Thread-safe.  Fork: kheap memory is private across fork(), as malloc's
 * is (since 1.2, with a kheap module of ABI 3): after fork() neither side
 * sees the other's writes, and the child keeps using, reallocating and
 * freeing every inherited block.  The parent keeps its physical pages;
 * the child's are a copy elsewhere in the pool, physically contiguous per
 * chunk too, made page by page as either side touches them, so fork()
 * then exec() copies (almost) nothing.  kheap_phys() in the child answers
 * the copy's address; the first such question about a chunk costs one
 * system call, which also copies what is left of that chunk.  When the
 * pool cannot hold a copy, the child's first touch of a page not copied
 * yet raises SIGBUS, and kheap_phys() fails with ENOMEM (no room now) or
 * EIO (the copy was lost: the parent changed the page first); the parent
 * never notices.  Memory meant to be shared with children (a DMA ring,
 * a buffer handed to a worker) comes from kheap_malloc_shared().
 * After fork() the child has no device attachments or VFIO containers.
 * vfork() and posix_spawn() copy nothing.  A fork child gives up at once
 * (since 1.4) the memory it inherited but holds no block in: cached
 * dedicated chunks, spare slabs, empty arenas, and what the parent's
 * other threads had cached (its mapping would keep the parent's chunk
 * from the pool even after the parent frees it, and a copy of it once
 * either side touches it); so its first dedicated allocation is a fresh
 * chunk.  With an older module
 * (ABI 2) inherited memory stays shared: the child never allocates from
 * it and kheap_free of an inherited block in the child does nothing.
 * Other libraries' pthread_atfork handlers may allocate and free, in
 * prepare, parent and child alike (kheap_attach and the VFIO calls
 * excepted).
 */
#ifndef KHEAP_H
#define KHEAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KHEAP_VERSION_MAJOR 1
#define KHEAP_VERSION_MINOR 4

struct kheap_stats {
	uint64_t bytes_in_use;	/* usable bytes of live allocations */
	uint64_t bytes_cached;	/* free bytes parked in thread caches */
	uint64_t peak_in_use;	/* high-water mark of in-use plus cached bytes */
	uint64_t bytes_held;	/* bytes of kernel chunks this process holds */
	uint64_t chunks_held;	/* kernel chunks this process holds */
	uint64_t peak_held;	/* high-water mark of bytes_held */
	uint64_t failed_requests;	/* allocations that returned NULL */
	uint64_t largest_free;	/* largest request that would succeed now
				 * (from held chunks or from the pool) */
	uint64_t pool_size;	/* bytes in the kernel pool */
	uint64_t pool_free;	/* pool bytes no chunk holds (all processes) */
	uint64_t arena_size;	/* size of a regular arena chunk */
	/* Since 1.0 (were reserved, so the struct keeps its size): */
	uint64_t chunks_cached;	/* freed dedicated chunks kept for reuse
				 * (included in chunks_held) */
	uint64_t bytes_chunks_cached;	/* their bytes (included in
					 * bytes_held) */
	uint64_t chunk_reuses;	/* dedicated blocks served from the cache */
	uint64_t reserved[2];
};

void *kheap_malloc(size_t size);
void *kheap_calloc(size_t nmemb, size_t size);
void *kheap_realloc(void *ptr, size_t size);
void kheap_free(void *ptr);
void *kheap_aligned_alloc(size_t alignment, size_t size);
int kheap_posix_memalign(void **memptr, size_t alignment, size_t size);
size_t kheap_malloc_usable_size(const void *ptr);

/*
 * A block shared with fork() children (since 1.2): both processes map the
 * same physical pages, and writes cross in both directions, as for
 * MAP_SHARED memory.  Always a chunk of its own (whole pages); freed with
 * kheap_free (in the child too, which then only unmaps it; the memory
 * lives while any process maps it); kheap_realloc keeps it shared.
 */
void *kheap_malloc_shared(size_t size);

/*
 * dma-buf export (since 1.3, with a kheap module of ABI 4): the len bytes
 * at ptr as a dma-buf file descriptor, for any driver that imports
 * dma-bufs (V4L2 V4L2_MEMORY_DMABUF, DRM PRIME, RDMA).  ptr and len must
 * be multiples of the page size, len > 0, and the range must lie inside
 * one block of this process (more exactly: one kernel chunk, which a
 * block never crosses).  kheap_aligned_alloc(page size, n) with n a
 * multiple of the page size always returns such a block, whole.  flags:
 * O_RDONLY or O_RDWR, optionally | O_CLOEXEC.  The dma-buf is the same
 * physical pages (kheap_phys() tells where the importer's data lands,
 * without an IOMMU) and keeps them allocated in the kernel while it
 * exists, but the block's owner must keep the block (not kheap_free or
 * kheap_realloc it) while an importer may still use it: the library
 * would hand the memory out again.  Returns the descriptor, or -1 with
 * errno: EINVAL (not kheap memory of this process, unaligned or empty
 * range, a range beyond its block's chunk, bad flags), EOPNOTSUPP (a
 * module older than ABI 4, which cannot export), EMFILE, and
 * in a fork child ENOMEM or EIO as for kheap_phys().
 */
int kheap_export(void *ptr, size_t len, int flags);

/* Physical address of that byte, without a system call (but see fork
 * above); 0 with errno = EINVAL for an address that is not kheap memory
 * of this process, 0 with errno = EPERM for any byte of this process's
 * kheap memory when the kernel withholds physical addresses
 * (restrict_phys), 0 with errno = ENOMEM or EIO in a fork child whose copy
 * of that memory could not be made (see above). */
uint64_t kheap_phys(const void *ptr);
/* The virtual address of that physical byte, or NULL (errno = EINVAL) if
 * it is not in this process's kheap memory.  O(1) until this process is a
 * fork child, O(chunks) in one (and a child's inherited chunk is found
 * only once kheap_phys() told its address). */
void *kheap_phys_to_virt(uint64_t phys);

/* 0, or -1 with errno ENODEV (no device) or EACCES (not permitted). */
int kheap_stats(struct kheap_stats *st);

/*
 * Memory this process keeps free for its own later use (since 1.4).  The
 * pool is shared by every process, so what one keeps idle another cannot
 * have.  The library keeps, without being asked:
 *  - per thread, caches of freed blocks (up to 64 per small size, and at
 *    most min(4 MiB, pool / 64) bytes of 1-128 KiB blocks); a size the
 *    thread has not allocated during 8192 of its frees goes back;
 *  - at most 4 empty slabs of small blocks, and only in arenas where
 *    other blocks live;
 *  - one empty arena and freed dedicated chunks, together at most
 *    min(pool / 8, 64 MiB) bytes (about one arena, kheap_stats'
 *    arena_size).
 * Blocks in the caches keep their slabs and arenas held.  So after freeing
 * everything a process holds the arenas its threads' caches keep alive
 * plus about one arena, and another process can always have the rest.
 *
 * kheap_trim() gives all of it back to the kernel now: this thread's
 * cache and every other thread's (a thread that is inside a kheap call at
 * that moment gives its cache back at its next refill instead), spare
 * slabs, every empty arena and every cached chunk.  After every block is
 * freed and kheap_trim() returns, the process holds no chunk of the pool.
 * The same happens before any allocation fails with ENOMEM, which then
 * tries once more.  Returns the bytes of the pool given back (0 when
 * there was nothing, or before the first allocation).  Thread-safe; never
 * fails.  (Like glibc's malloc_trim(), minus the pad.)
 */
size_t kheap_trim(void);

/*
 * Device addresses (since 1.1).  A device behind an IOMMU (VT-d, AMD-Vi)
 * does not see physical addresses: give it kheap_dma_addr() instead.
 *
 * kheap_attach() names a device as /sys/bus/pci/devices/ does
 * ("0000:00:03.0"), or "platform:NAME".  From then on every block of this
 * process, old and new, is mapped for that device, and
 *	kheap_dma_addr(p + i, h) == kheap_dma_addr(p, h) + i
 * for every byte of an allocation, without a system call.  Returns a
 * handle (>= 1), or -1 with errno: ENODEV (no such device, or no kheap),
 * EBUSY (the device is owned by vfio-pci: use kheap_vfio_map()), ERANGE
 * (memory already held is beyond the device's reach without an IOMMU),
 * ENOSPC (KHEAP_MAX_DEVICES attached), EEXIST (already attached).
 * kheap_attach_bits() also tells how many address bits the device drives
 * (0 = what its driver set; a device without a driver gets that mask).
 * Thread-safe.  After fork() the child has no attachments.
 */
#define KHEAP_MAX_DEVICES 8
int kheap_attach(const char *device);
int kheap_attach_bits(const char *device, unsigned int dma_bits);
/* 0, or -1 with errno EBADF for a handle that is not attached. */
int kheap_detach(int handle);
/* Device address of that byte; 0 with errno EINVAL (not kheap memory of
 * this process), EBADF (bad handle) or ENODEV (the device went away). */
uint64_t kheap_dma_addr(const void *ptr, int handle);

/*
 * VFIO (user-space drivers, the DPDK way): map all of this process's kheap
 * memory, now and later, into a VFIO type1 container with IOVA equal to
 * the physical address, so kheap_phys() is the device address there too.
 * container_fd has a group attached and VFIO_TYPE1v2_IOMMU (or TYPE1) set.
 * 0, or -1 with errno: EPERM (physical addresses withheld), ENOSPC (too
 * many containers), EEXIST (already mapped), or what VFIO_IOMMU_MAP_DMA
 * said (EFAULT from an older kheap.ko that mapped reserved memmap= pools
 * as raw frames, which VFIO cannot pin).
 */
int kheap_vfio_map(int container_fd);
int kheap_vfio_unmap(int container_fd);

/*
 * Cache maintenance around a device's DMA (since 1.3), PYNQ's flush() and
 * invalidate():
 *	KHEAP_SYNC_FOR_DEVICE	the CPU has written [ptr, ptr + len) and a
 *				device will read it (flush);
 *	KHEAP_SYNC_FOR_CPU	a device has written it and the CPU will read
 *				it (invalidate).
 * The range is synced for every device attached to this process
 * (kheap_attach); without any, or on a cache-coherent machine such as
 * x86, it costs one system call and changes nothing.  The range must lie
 * inside the kernel chunk holding ptr (any range inside one block does);
 * len 0 only checks ptr.  0, or -1 with errno: EINVAL (flags not exactly
 * one of the two, ptr not kheap memory of this process, the range
 * beyond its chunk), ENOMEM or EIO (a fork child whose copy of that
 * memory could not be made, as for kheap_phys).  A fork child syncs
 * only the memory it owns: ranges still shared with the parent succeed
 * and do nothing (no device of the child maps them).
 */
#define KHEAP_SYNC_FOR_DEVICE	1
#define KHEAP_SYNC_FOR_CPU	2
int kheap_sync(const void *ptr, size_t len, int flags);

#ifdef __cplusplus
}
#endif

#endif
