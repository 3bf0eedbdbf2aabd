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
 * else -E2BIG.  A caller struct smaller than the command's first published
 * size (KHEAP_*_SIZE_VER0) gives -EINVAL: no caller of any version sends
 * less.  The ABI grows by new commands and by giving reserved fields a
 * meaning, never by changing a field.  KHEAP_IOC_INFO reports the version.
 */
/*
 * 2: ATTACH, DETACH, DMA_ADDR, max_phys.  3: private across fork(), ADOPT.
 * 4: EXPORT (dma-buf), the dmabufs field of INFO.
 * 5: SHRINK, EXTEND, KHEAP_ALLOC_GROWABLE.
 */
#define KHEAP_ABI_VERSION	5

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
 *	mapped somewhere is held, and so is a freed chunk whose pages
 *	someone else still references, until the module notices that they
 *	went; retired pages are not free either)
 * @largest_free: largest physically contiguous free extent in bytes
 * @chunks_in_use: chunks held, by any file, including freed chunks that
 *	are still mapped or pinned
 * @pool_source: one of &enum kheap_pool_source
 * @file_chunks: chunks owned by this file
 * @file_bytes: bytes owned by this file
 * @max_phys: (ABI 2) the pool was placed below this physical address
 *	(the max_phys= module parameter); 0 when no limit was asked.
 *	Reported even when physical addresses are restricted: it is the
 *	administrator's setting, not a property of any chunk.
 * @attachments: (ABI 2) devices this file has attached (KHEAP_IOC_ATTACH)
 * @retired_bytes: (ABI 3) bytes of the pool taken out of service for good
 *	because the hardware reported them bad (pages marked PG_hwpoison by
 *	the kernel's memory failure handling): they are never cleared nor
 *	handed out again while the module is loaded, and are not counted in
 *	@free_bytes.  A multiple of @page_size.  Modules that predate this
 *	field report 0 (they never retire pages)
 * @dmabufs: (ABI 4) dma-bufs exported from the pool (KHEAP_IOC_EXPORT)
 *	that still exist, by any file: a dma-buf exists until its last file
 *	descriptor, mapping and importer reference is gone
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
	__u64 max_phys;
	__u64 attachments;
	__u64 retired_bytes;
	__u64 dmabufs;
	__u64 reserved[2];
};

/**
 * DOC: kheap and fork()
 *
 * (ABI 3.)  A chunk is private across fork() by default, like anonymous
 * private memory: after fork(), writes by the parent or by the child to
 * their mappings of it are invisible to the other.  The parent keeps the
 * chunk, at the same physical address, and its device mappings.  The
 * child's mappings become a *fork copy*: a chunk of its own, allocated
 * from the pool and filled page by page, at the first access to each
 * page by either side (the parent's mappings fault once more per page
 * after every fork() for this).  So fork() followed by exec() copies
 * nothing but the pages the parent touches before the child's exec(),
 * and only while the child still maps them.
 *
 * A fork copy belongs to no file until the child adopts it
 * (KHEAP_IOC_ADOPT): that copies whatever is left and gives the copy a
 * token in the child's file, the inherited mapping's own.  Until then
 * QUERY does not know the copy's address, and FREE and close() in the
 * parent do not affect it.
 *
 * When the pool cannot hold a copy at the moment it is needed, the copy
 * is lost: the parent carries on unaffected, and the child receives
 * SIGBUS when it touches a page of the copy that was not copied yet
 * (pages it touched before stay its own), and ADOPT gives -EIO.
 *
 * Not covered: bytes a device or another process writes into the
 * parent's chunk after fork() (DMA, a mapping through a kheap file
 * descriptor passed to another process) may reach a page of the child's
 * copy that was not copied yet.  A chunk that such writers share should
 * be allocated KHEAP_ALLOC_SHARED, or the child should not use it.
 *
 * A chunk allocated with KHEAP_ALLOC_SHARED keeps the behaviour of ABI 2:
 * the child's mappings of it are the parent's pages, and writes cross in
 * both directions.  madvise(MADV_DONTFORK) keeps any mapping out of the
 * child altogether.  vfork() and posix_spawn() copy nothing.
 */

/*
 * ALLOC flags.  KHEAP_ALLOC_SHARED (ABI 3): the chunk stays shared with
 * fork() children, see "kheap and fork()" above.  KHEAP_ALLOC_GROWABLE
 * (ABI 5): the chunk's tokens leave room for KHEAP_IOC_EXTEND, see
 * struct kheap_resize.
 */
#define KHEAP_ALLOC_SHARED	(1ULL << 0)
#define KHEAP_ALLOC_GROWABLE	(1ULL << 1)
#define KHEAP_ALLOC_FLAGS_VALID	(KHEAP_ALLOC_SHARED | KHEAP_ALLOC_GROWABLE)

/**
 * struct kheap_alloc - KHEAP_IOC_ALLOC: allocate one chunk
 * @size: in: bytes wanted, > 0; rounded up to whole pages
 * @align: in: physical alignment in bytes, 0 or a power of two no larger
 *	than the pool; anything below a page means a page.  Files that
 *	physical addresses are withheld from (restrict_phys=1, opened
 *	without CAP_SYS_RAWIO) get at most 2 MiB, see below
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
 * output or reserved fields; -EPERM for an alignment above 2 MiB on a file
 * that physical addresses are withheld from; -ENOMEM when the pool has no
 * free extent large enough (including a size larger than the pool).  On
 * any error the pool is unchanged.
 *
 * Alignment and withheld addresses: an alignment of 2^k bytes tells the
 * caller the low k bits of the chunk's physical address.  Up to 2 MiB
 * those bits are no secret anyway: any process can get 2 MiB-aligned
 * physical memory from transparent huge pages, and a contig pool's base
 * is itself 2 MiB aligned (it starts on a pageblock), so a chunk's offset
 * in the pool, which follows from the order of allocations, already gives
 * them.  Above 2 MiB they would narrow down where the chunk lies, so such
 * alignments are refused (-EPERM) rather than honoured or silently
 * lowered.  A file that physical addresses are withheld from learns no
 * offset within the pool either: the sysfs list of free extents is then
 * readable by root only.  What kheap cannot hide is the base of a pool
 * reserved at boot, which is on the kernel command line: prefer a runtime
 * pool where this matters.
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

/*
 * FREE flags (ABI 2).  KHEAP_FREE_DEVICES: the caller guarantees that no
 * attached device still accesses the chunk, so its device mappings go
 * with it (see struct kheap_free).
 */
#define KHEAP_FREE_DEVICES	(1ULL << 0)
#define KHEAP_FREE_FLAGS_VALID	KHEAP_FREE_DEVICES

/**
 * struct kheap_free - KHEAP_IOC_FREE: give a chunk back
 * @token: in: a token that ALLOC returned to this same file
 * @flags: in: (ABI 2; reserved, so zero, before) KHEAP_FREE_FLAGS_VALID bits
 * @reserved: must be zero
 *
 * -EINVAL for a token this file does not own: unknown, another file's, or
 * already freed; nothing changes then.  A chunk freed while still mapped
 * keeps its pages (and its data) until the last mapping of it is gone.
 *
 * Devices: a chunk that is mapped for attached devices (KHEAP_IOC_ATTACH)
 * stays mapped for them after FREE, with its pages and data, and no one
 * else is given those pages, until the device is detached, the file is
 * closed or the device goes away: a device still writing into a freed
 * buffer can only reach that buffer.  With KHEAP_FREE_DEVICES the device
 * mappings are torn down at once instead (behind an IOMMU the device can
 * then reach nothing of the chunk) and the pages go back to the pool as
 * soon as no CPU mapping remains.
 */
struct kheap_free {
	__u64 token;
	__u64 flags;
	__u64 reserved[2];
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
 * The range is synced for every device attached to this file (ABI 2)
 * with the DMA sync API; on cache-coherent systems (x86) that costs
 * nothing.  Without attached devices it only validates.
 */
struct kheap_sync {
	__u64 token;
	__u64 offset;
	__u64 length;
	__u64 flags;
	__u64 reserved[2];
};

/* Longest device name ATTACH accepts, including the terminating NUL. */
#define KHEAP_DEVICE_NAME_MAX	128

/* struct kheap_attach.mode: how the device reaches memory */
#define KHEAP_DMA_DIRECT	1	/* no translation: device address = physical */
#define KHEAP_DMA_IOMMU		2	/* a translating IOMMU: addresses are IOVAs */

/**
 * struct kheap_attach - KHEAP_IOC_ATTACH: map this file's chunks for a device
 * @name: in: user pointer to the device's name, NUL-terminated, at most
 *	KHEAP_DEVICE_NAME_MAX bytes: a PCI address ("0000:00:03.0"), or
 *	"BUS:NAME" with BUS "pci" or "platform" (the names under
 *	/sys/bus/BUS/devices/)
 * @dma_bits: in: how many address bits the device drives, 1 to 64, or 0
 *	to take the device's DMA mask as its driver set it.  For a device
 *	with no driver bound (one driven from user space) the device's DMA
 *	mask is set to this width, as a driver's probe would; for a device
 *	with a driver, the mask stays the driver's and addresses are also
 *	checked against @dma_bits.
 * @flags: in: must be zero
 * @handle: out: names the attachment in DMA_ADDR and DETACH; never 0,
 *	never reused by the same file
 * @dma_mask: out: the highest device address the attachment may use
 * @mode: out: %KHEAP_DMA_DIRECT or %KHEAP_DMA_IOMMU
 * @reserved: must be zero
 *
 * From a successful ATTACH until DETACH or close(), every chunk the file
 * owns, now and later, is mapped for the device through the kernel's DMA
 * API, one mapping per chunk: behind an IOMMU the device can reach exactly
 * the chunks of the files that attached it, and each chunk is contiguous
 * in the device's address space too (KHEAP_IOC_DMA_ADDR reports where).
 *
 * kheap never lets the DMA API bounce a chunk through swiotlb: a chunk the
 * device cannot reach directly is refused with -ERANGE and one kernel log
 * line naming the device.  ALLOC on a file with attached devices places
 * new chunks where all of them can reach (else -ENOMEM).
 *
 * Errors: -EFAULT (bad @name pointer), -EINVAL (empty or unterminated
 * @name, bad @dma_bits, flags, output or reserved fields), -ENODEV (no
 * such device), -EBUSY (the device's DMA is owned elsewhere: bound to
 * vfio-pci or blocked; use the VFIO route), -EPERM (no IOMMU translates
 * for the device, so its addresses are physical addresses, and they are
 * restricted for this file), -ERANGE (an existing chunk is
 * beyond the device's reach), -EEXIST (this file already attached that
 * device), -ENOSPC (more than KHEAP_MAX_ATTACH devices), -ENOMEM.  On any
 * error nothing stays mapped.
 *
 * When the device is unbound from its driver, bound to one, or removed,
 * its mappings are torn down; the attachment stays until DETACH, and
 * DMA_ADDR then gives -ENODEV.
 */
struct kheap_attach {
	__u64 name;
	__u64 dma_bits;
	__u64 flags;
	__u64 handle;
	__u64 dma_mask;
	__u64 mode;
	__u64 reserved[2];
};

/* Devices one file may attach at a time. */
#define KHEAP_MAX_ATTACH	16

/**
 * struct kheap_detach - KHEAP_IOC_DETACH: stop mapping for a device
 * @handle: in: from ATTACH on this file
 * @reserved: must be zero
 *
 * Unmaps every chunk of the file from the device, freed ones included
 * (their pages then return to the pool).  -EINVAL for an unknown handle.
 */
struct kheap_detach {
	__u64 handle;
	__u64 reserved[3];
};

/**
 * struct kheap_dma_addr - KHEAP_IOC_DMA_ADDR: a chunk's device address
 * @token: in: a chunk this file owns
 * @handle: in: an attachment of this file
 * @flags: in: must be zero
 * @dma_addr: out: the device address of the chunk's first byte; byte i
 *	of the chunk is at @dma_addr + i for every i below its size
 * @reserved: must be zero
 *
 * Errors: -EINVAL (unknown token or handle, bad flags, output or reserved
 * fields), -ENODEV (the device went away or changed drivers).
 */
struct kheap_dma_addr {
	__u64 token;
	__u64 handle;
	__u64 flags;
	__u64 dma_addr;
	__u64 reserved[4];
};

/**
 * struct kheap_adopt - KHEAP_IOC_ADOPT: make a fork copy this file's chunk
 * @addr: in: a user address inside a mapping, in the calling process,
 *	that is a fork copy (see "kheap and fork()")
 * @flags: in: must be zero
 * @token: out: the copy's token in this file: the token of the chunk
 *	it copies, so the mapping's mmap() offsets stay valid
 * @phys: out: physical address of the copy's first byte (0 when
 *	physical addresses are restricted for this file)
 * @size: out: the copy's size in bytes
 * @reserved: must be zero
 *
 * Copies every page not copied yet, makes this file the copy's owner
 * (FREE, QUERY, SYNC, DMA_ADDR and close() treat it as a chunk this file
 * allocated) and turns every mapping of the copy in the calling process
 * into an ordinary mapping of it through this file.  Use a file of the
 * child's own: the inherited descriptor is the parent's file, which
 * usually still owns the chunk under that token.
 *
 * Errors: -EINVAL (@addr is not in a fork copy; bad flags, output or
 * reserved fields), -EEXIST (this file already has a chunk with that
 * token), -ENOMEM (the pool cannot hold the copy now; nothing changed,
 * a later ADOPT may succeed), -EIO (the copy was lost, see above),
 * -EINTR (a fatal signal).
 */
struct kheap_adopt {
	__u64 addr;
	__u64 flags;
	__u64 token;
	__u64 phys;
	__u64 size;
	__u64 reserved[3];
};

/*
 * EXPORT flags (ABI 4): the open(2) flags of the new dma-buf file.  The
 * access mode is O_RDONLY or O_RDWR (O_WRONLY is no dma-buf mode);
 * O_CLOEXEC sets close-on-exec on the new descriptor.  (The O_ names
 * come from <fcntl.h>, as for DMA_HEAP_VALID_FD_FLAGS.)
 */
#define KHEAP_EXPORT_FLAGS_VALID	(O_ACCMODE | O_CLOEXEC)

/**
 * struct kheap_export - KHEAP_IOC_EXPORT: a page range of a chunk as a dma-buf
 * @token: in: a chunk this file owns
 * @offset: in: first byte of the range within the chunk, page aligned
 * @length: in: bytes in the range, a non-zero multiple of the page size;
 *	@offset + @length must not wrap and must lie within the chunk
 * @flags: in: O_RDONLY or O_RDWR, optionally with O_CLOEXEC; nothing else
 * @fd: out: the new dma-buf file descriptor
 * @reserved: must be zero
 *
 * (ABI 4.)  The dma-buf is the given pages of the chunk, physically
 * contiguous, at the chunk's physical address plus @offset.  Any driver
 * that imports dma-bufs takes it (V4L2 V4L2_MEMORY_DMABUF, DRM PRIME,
 * RDMA): it is mapped for the importing device with the DMA API, behind
 * an IOMMU too, never through a swiotlb bounce buffer (an importer whose
 * device cannot reach the range directly gets -ERANGE, with one kernel
 * log line).  mmap() of the dma-buf maps the same pages as /dev/kheap;
 * DMA_BUF_IOCTL_SYNC brackets CPU access for every importing device.
 * The descriptor can be passed to other processes (SCM_RIGHTS, fork()).
 *
 * The dma-buf holds the chunk: FREE, close() of this file and munmap()
 * leave the range allocated (and counted as in use) while the dma-buf
 * exists, and the module stays loaded meanwhile.  The pages go back to
 * the pool when the last descriptor, mapping and importer of the dma-buf
 * (and of every other user of the chunk) is gone.  A chunk can be exported
 * any number of times, in ranges that may overlap.
 *
 * fork(): importers and mappings of the dma-buf are writers that the
 * private fork() copy does not see (see "kheap and fork()"): export
 * chunks allocated KHEAP_ALLOC_SHARED where a process forks.
 *
 * Chunks of every pool source export, reserved pools (memmap=) included:
 * the module gives their range struct pages.
 *
 * Errors: -EINVAL (a token this file does not own, a range that is
 * empty, unaligned, wrapping or outside the chunk, bad flags, non-zero
 * @fd or reserved fields), -EMFILE (no free descriptor), -ENOMEM.  On any error no descriptor is
 * installed and the chunk is as it was.
 */
struct kheap_export {
	__u64 token;
	__u64 offset;
	__u64 length;
	__u64 flags;
	__u64 fd;
	__u64 reserved[3];
};

/**
 * struct kheap_resize - KHEAP_IOC_SHRINK, KHEAP_IOC_EXTEND: resize in place
 * @token: in: a chunk this file owns
 * @size: in: the chunk's new size in bytes, > 0, rounded up to whole
 *	pages; for SHRINK at most the current size, for EXTEND at least
 * @flags: in: must be zero
 * @size_out: out: the chunk's size after the call
 * @phys: out: the chunk's physical address, unchanged by either command
 *	(0 when physical addresses are restricted for this file)
 * @reserved: must be zero
 *
 * (ABI 5.)  Neither command moves the chunk: its token, physical address
 * and the bytes it keeps stay as they are.  A @size equal to the current
 * size changes nothing and succeeds.
 *
 * SHRINK gives the pages past @size (the *tail*) back to the pool at
 * once (a hardware-poisoned page of it is retired instead, as FREE does);
 * like all pool memory they are zeroed before anyone is given them.  It
 * is refused with -EBUSY, and nothing changes, while anything else may
 * still reach the tail:
 *
 * - a page of the tail is mapped by any process (this one, a fork()
 *   child sharing the chunk, an mmap() of a dma-buf of it) or referenced
 *   by anything else (a get_user_pages() pin: O_DIRECT in flight, an
 *   io_uring fixed buffer, a VFIO or RDMA registration).  munmap() the
 *   tail first; MADV_DONTNEED is enough;
 * - a dma-buf exported from the chunk (KHEAP_IOC_EXPORT) still exists
 *   and covers a byte of the tail;
 * - a fork() child's private copy of the chunk still misses pages (see
 *   "kheap and fork()"): it would copy them from the tail.  KHEAP_IOC_ADOPT
 *   in the child, or the child's exit or exec(), ends this;
 * - this file has attached devices (KHEAP_IOC_ATTACH): their mappings of
 *   the chunk cover its old length.  DETACH first.
 *
 * A mapping that still covers the tail but has no page of it present
 * (after MADV_DONTNEED) does not hold SHRINK back: after it, an access to
 * the tail through that mapping raises SIGBUS, as past the end of a
 * truncated file, and QUERY of such an address gives -EINVAL.
 *
 * EXTEND grows the chunk into the pages right after it in the pool, when
 * those are free; the new pages are zeroed.  Existing mappings do not
 * grow (mremap() cannot grow a kheap mapping): map the new part, or the
 * whole chunk again, at the chunk's token plus its offset.  A chunk
 * keeps the tokens of the size it was allocated with, so after SHRINK it
 * can be extended back up to that size; only a chunk allocated with
 * KHEAP_ALLOC_GROWABLE can be extended beyond it: its tokens span the
 * pool's size, so the mmap() offsets of any size it may reach are its
 * own (a growable chunk uses up the pool's size of token space, so
 * a module that is never reloaded runs out of tokens after 2^63 / pool
 * size growable allocations, ALLOC then giving -ENOMEM).  Where no
 * alignment above a page or device reach constrains it, a growable chunk
 * is placed at the start of the largest free extent that holds it, so
 * that it has the most room to grow; other chunks go to the smallest
 * extent that holds them.
 *
 * Errors, for both: -EINVAL (a token this file does not own, a zero or
 * overflowing @size, flags, output or reserved fields not zero, a @size
 * beyond the current one for SHRINK or below it for EXTEND), -EBUSY (see
 * above; for EXTEND: attached devices).  EXTEND only: -EFBIG (@size is
 * beyond the size the chunk was allocated with and the chunk is not
 * growable, or beyond the pool's size), -ENOSPC (a
 * page between the current end and @size is in use, retired or beyond
 * the pool's end: the chunk is as it was; move the data instead),
 * -EINTR (a fatal signal while zeroing the new pages; nothing changed).
 * On every error the chunk and the pool are as they were.
 *
 * Accounting (INFO, sysfs) follows at once: the file's bytes, the
 * pool's free bytes and its largest free extent.
 */
struct kheap_resize {
	__u64 token;
	__u64 size;
	__u64 flags;
	__u64 size_out;
	__u64 phys;
	__u64 reserved[3];
};

/*
 * The smallest caller struct each command accepts (its size when first
 * published); a smaller one gives -EINVAL.
 */
#define KHEAP_INFO_SIZE_VER0		128
#define KHEAP_ALLOC_SIZE_VER0		64
#define KHEAP_FREE_SIZE_VER0		32
#define KHEAP_QUERY_SIZE_VER0		64
#define KHEAP_SYNC_SIZE_VER0		48
#define KHEAP_ATTACH_SIZE_VER0		64
#define KHEAP_DETACH_SIZE_VER0		32
#define KHEAP_DMA_ADDR_SIZE_VER0	64
#define KHEAP_ADOPT_SIZE_VER0		64
#define KHEAP_EXPORT_SIZE_VER0		64
#define KHEAP_RESIZE_SIZE_VER0		64

#define KHEAP_IOC_MAGIC		0xD8

#define KHEAP_IOC_INFO	_IOWR(KHEAP_IOC_MAGIC, 0x00, struct kheap_info)
#define KHEAP_IOC_ALLOC	_IOWR(KHEAP_IOC_MAGIC, 0x01, struct kheap_alloc)
#define KHEAP_IOC_FREE	_IOW(KHEAP_IOC_MAGIC, 0x02, struct kheap_free)
#define KHEAP_IOC_QUERY	_IOWR(KHEAP_IOC_MAGIC, 0x03, struct kheap_query)
#define KHEAP_IOC_SYNC	_IOW(KHEAP_IOC_MAGIC, 0x04, struct kheap_sync)
#define KHEAP_IOC_ATTACH	_IOWR(KHEAP_IOC_MAGIC, 0x05, struct kheap_attach)
#define KHEAP_IOC_DETACH	_IOW(KHEAP_IOC_MAGIC, 0x06, struct kheap_detach)
#define KHEAP_IOC_DMA_ADDR	_IOWR(KHEAP_IOC_MAGIC, 0x07, struct kheap_dma_addr)
#define KHEAP_IOC_ADOPT		_IOWR(KHEAP_IOC_MAGIC, 0x08, struct kheap_adopt)
#define KHEAP_IOC_EXPORT	_IOWR(KHEAP_IOC_MAGIC, 0x09, struct kheap_export)
#define KHEAP_IOC_SHRINK	_IOWR(KHEAP_IOC_MAGIC, 0x0a, struct kheap_resize)
#define KHEAP_IOC_EXTEND	_IOWR(KHEAP_IOC_MAGIC, 0x0b, struct kheap_resize)

#endif /* _UAPI_LINUX_KHEAP_H */
