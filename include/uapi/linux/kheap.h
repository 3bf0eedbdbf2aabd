/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * kheap: physically contiguous memory for user space, one chunk at a time.
 *
 * /dev/kheap owns one physically contiguous pool.  Each open file allocates
 * page-granular chunks from it, maps them with mmap() at the chunk's token
 * and learns their physical addresses.  A chunk belongs to the file that
 * allocated it; closing the file frees every chunk it still owns.
 */
#ifndef _UAPI_LINUX_KHEAP_H
#define _UAPI_LINUX_KHEAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

/**
 * DOC: kheap ABI rules
 *
 * Every argument is a fixed-size struct of __u64 fields.  On input:
 *
 * - reserved fields and output fields must be zero, else -EINVAL;
 * - flag bits not defined here give -EINVAL;
 * - an argument pointer that cannot be read or written gives -EFAULT;
 * - an unknown command gives -ENOTTY.
 *
 * The size encoded in the command is the caller's struct size.  The kernel
 * copies min(caller size, kernel size) and zero-fills the rest, so older
 * callers keep working; a newer, larger caller's extra bytes must be zero,
 * else -E2BIG.  The ABI grows by new commands and by giving reserved fields
 * a meaning, never by changing a field.  KHEAP_IOC_INFO reports the version.
 */
#define KHEAP_ABI_VERSION	1

/**
 * enum kheap_pool_source - where the pool came from
 * @KHEAP_SOURCE_RESERVED: a range reserved at boot (memmap=SIZE$ADDR),
 *	adopted with the phys= and size= module parameters
 * @KHEAP_SOURCE_CONTIG: a free range taken at load time with
 *	alloc_contig_range()
 * @KHEAP_SOURCE_BUDDY: one block from the page allocator (at most the
 *	largest page order, 4 MiB on x86-64)
 */
enum kheap_pool_source {
	KHEAP_SOURCE_RESERVED = 1,
	KHEAP_SOURCE_CONTIG = 2,
	KHEAP_SOURCE_BUDDY = 3,
};

/**
 * struct kheap_info - KHEAP_IOC_INFO: the pool, as seen by this file
 *
 * Every field is an output, so the whole struct must be zero on input (a
 * later version may give reserved fields an input meaning).
 *
 * @abi_version: KHEAP_ABI_VERSION of the running module
 * @pool_phys: physical address of the first byte of the pool; 0 when the
 *	module was loaded with restrict_phys=1 and the opener of this file
 *	lacked CAP_SYS_RAWIO
 * @pool_size: pool size in bytes, a multiple of @page_size
 * @page_size: allocation granule (PAGE_SIZE)
 * @free_bytes: bytes not held by any chunk (a freed chunk that is still
 *	mapped somewhere is held)
 * @largest_free: largest physically contiguous free extent in bytes
 * @chunks_in_use: chunks held, by any file, including freed chunks that
 *	are still mapped or pinned
 * @pool_source: one of &enum kheap_pool_source
 * @file_chunks: chunks owned by this file
 * @file_bytes: bytes owned by this file
 * @reserved: must be zero on input; zero on output
 */
struct kheap_info {
	__u64 abi_version;
	__u64 pool_phys;
	__u64 pool_size;
	__u64 page_size;
	__u64 free_bytes;
	__u64 largest_free;
	__u64 chunks_in_use;
	__u64 pool_source;
	__u64 file_chunks;
	__u64 file_bytes;
	__u64 reserved[6];
};

/* No allocation flags are defined yet: flags must be zero. */
#define KHEAP_ALLOC_FLAGS_VALID	0ULL

/**
 * struct kheap_alloc - KHEAP_IOC_ALLOC: allocate one chunk
 * @size: in: bytes wanted, > 0; rounded up to whole pages
 * @align: in: physical alignment in bytes, 0 or a power of two no larger
 *	than the pool; anything below a page means a page
 * @flags: in: KHEAP_ALLOC_FLAGS_VALID bits only
 * @token: out: the chunk's handle, also its mmap() offset; page aligned,
 *	never reused by the same file
 * @phys: out: physical address of the chunk's first byte (0 when
 *	physical addresses are restricted for this file)
 * @size_out: out: the chunk's size in bytes (@size rounded up to pages)
 * @reserved: must be zero
 *
 * The chunk is zero-filled.  Errors: -EINVAL for a zero size, a size that
 * overflows when rounded, a bad alignment, unknown flags or non-zero
 * output or reserved fields; -ENOMEM when the pool has no free extent
 * large enough (including a size larger than the pool).  On any error the
 * pool is unchanged.
 */
struct kheap_alloc {
	__u64 size;
	__u64 align;
	__u64 flags;
	__u64 token;
	__u64 phys;
	__u64 size_out;
	__u64 reserved[2];
};

/**
 * struct kheap_free - KHEAP_IOC_FREE: give a chunk back
 * @token: in: a token that ALLOC returned to this same file
 * @reserved: must be zero
 *
 * -EINVAL for a token this file does not own: unknown, another file's, or
 * already freed; nothing changes then.  A chunk freed while still mapped
 * keeps its pages (and its data) until the last mapping of it is gone.
 */
struct kheap_free {
	__u64 token;
	__u64 reserved[3];
};

/**
 * struct kheap_query - KHEAP_IOC_QUERY: translate a virtual address
 * @addr: in: a user virtual address inside a kheap mapping that this file
 *	created (the mapping's vm_file is this file)
 * @flags: in: must be zero
 * @phys: out: physical address of the byte at @addr (0 when restricted)
 * @token: out: token of the chunk that backs @addr
 * @offset: out: offset of @addr within that chunk
 * @chunk_size: out: size of that chunk in bytes
 * @reserved: must be zero
 *
 * -EINVAL when @addr is not inside a kheap mapping of this file.  The
 * answer stays valid while the mapping exists, even after FREE.
 */
struct kheap_query {
	__u64 addr;
	__u64 flags;
	__u64 phys;
	__u64 token;
	__u64 offset;
	__u64 chunk_size;
	__u64 reserved[2];
};

/* struct kheap_sync flags, as for DMA_BUF_IOCTL_SYNC */
#define KHEAP_SYNC_READ		(1ULL << 0)	/* device wrote, CPU reads */
#define KHEAP_SYNC_WRITE	(1ULL << 1)	/* CPU wrote, device reads */
#define KHEAP_SYNC_RW		(KHEAP_SYNC_READ | KHEAP_SYNC_WRITE)
#define KHEAP_SYNC_START	(0ULL << 2)	/* CPU access begins */
#define KHEAP_SYNC_END		(1ULL << 2)	/* CPU access ends */
#define KHEAP_SYNC_FLAGS_VALID	(KHEAP_SYNC_RW | KHEAP_SYNC_END)

/**
 * struct kheap_sync - KHEAP_IOC_SYNC: bracket CPU access for a device
 * @token: in: a chunk this file owns
 * @offset: in: first byte of the range within the chunk
 * @length: in: bytes in the range, > 0; @offset + @length must not wrap
 *	and must lie within the chunk
 * @flags: in: KHEAP_SYNC_START or KHEAP_SYNC_END, with at least one of
 *	KHEAP_SYNC_READ and KHEAP_SYNC_WRITE
 * @reserved: must be zero
 *
 * On cache-coherent systems (x86) this only validates; elsewhere it calls
 * the DMA sync API for the range.
 */
struct kheap_sync {
	__u64 token;
	__u64 offset;
	__u64 length;
	__u64 flags;
	__u64 reserved[2];
};

#define KHEAP_IOC_MAGIC		0xD8

#define KHEAP_IOC_INFO	_IOWR(KHEAP_IOC_MAGIC, 0x00, struct kheap_info)
#define KHEAP_IOC_ALLOC	_IOWR(KHEAP_IOC_MAGIC, 0x01, struct kheap_alloc)
#define KHEAP_IOC_FREE	_IOW(KHEAP_IOC_MAGIC, 0x02, struct kheap_free)
#define KHEAP_IOC_QUERY	_IOWR(KHEAP_IOC_MAGIC, 0x03, struct kheap_query)
#define KHEAP_IOC_SYNC	_IOW(KHEAP_IOC_MAGIC, 0x04, struct kheap_sync)

#endif /* _UAPI_LINUX_KHEAP_H */
