/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the kheap selftests: ioctl wrappers that return
 * -errno, /proc/self/pagemap lookups, sysfs readers, module loading
 * through libkmod and a kernel log scanner.
 *
 * Nothing in here uses the kselftest harness, so the helpers can be
 * called from forked children and threads as well.
 */
#ifndef KHEAP_LIB_H
#define KHEAP_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include <linux/kheap.h>

#define KHEAP_DEV	"/dev/kheap"
#define KHEAP_SYSFS	"/sys/class/misc/kheap"
#define KHEAP_MODNAME	"kheap"

/* Chunks released from a deferred context come back within this time. */
#define KHEAP_SETTLE_MS	2000

/* Re-encode @cmd with a caller struct size of @size bytes. */
static inline unsigned long kheap_cmd_sized(unsigned long cmd, size_t size)
{
	return _IOC(_IOC_DIR(cmd), _IOC_TYPE(cmd), _IOC_NR(cmd), size);
}

/* ioctl(2) returning the result or -errno. */
int kheap_ioctl(int fd, unsigned long cmd, void *arg);

/* open(KHEAP_DEV): fd or -errno. */
int kheap_open(void);

/* The wrappers below zero their struct, fill the inputs, return -errno. */
int kheap_info(int fd, struct kheap_info *info);
int kheap_alloc(int fd, uint64_t size, uint64_t align, struct kheap_alloc *out);
int kheap_free(int fd, uint64_t token);
int kheap_query(int fd, const volatile void *addr, struct kheap_query *out);
int kheap_sync(int fd, uint64_t token, uint64_t offset, uint64_t length,
	       uint64_t flags);

/* mmap(MAP_SHARED, PROT_READ | PROT_WRITE) of @len bytes at @token. */
void *kheap_map(int fd, uint64_t token, size_t len);

/*
 * The pool-wide and per-file counters of two INFO snapshots are equal
 * (free_bytes, largest_free, chunks_in_use, file_chunks, file_bytes).
 */
bool kheap_same_state(const struct kheap_info *a, const struct kheap_info *b);

/* One-line description of the counters of @info, for log messages. */
const char *kheap_state_str(const struct kheap_info *info, char *buf,
			    size_t len);

/*
 * Poll INFO every 10 ms until free_bytes == @free_bytes and
 * chunks_in_use == @chunks, for at most @timeout_ms.  0 when reached,
 * -ETIMEDOUT otherwise, another -errno if INFO itself fails.  @last (may
 * be NULL) receives the last snapshot.
 */
int kheap_wait_state(int fd, uint64_t free_bytes, uint64_t chunks,
		     int timeout_ms, struct kheap_info *last);

/* kheap_wait_state() for an empty pool: everything free, no chunk held. */
int kheap_wait_idle(int fd, int timeout_ms, struct kheap_info *last);

/*
 * Look up @npages consecutive pages starting at page-aligned @addr in
 * /proc/self/pagemap and store their page frame numbers.  -ENOENT when a
 * page is not present, -EPERM when the kernel hides frame numbers from
 * this process (no CAP_SYS_ADMIN), other -errno on I/O errors.
 */
int kheap_pagemap_pfns(const void *addr, size_t npages, uint64_t *pfns);

/* Read KHEAP_SYSFS/@attr without the trailing newline. */
int kheap_sysfs_str(const char *attr, char *buf, size_t len);
/* Read KHEAP_SYSFS/@attr as a number: decimal, or hex with a 0x prefix. */
int kheap_sysfs_u64(const char *attr, uint64_t *val);
/* One line of KHEAP_SYSFS/free_extents: bytes from the pool's base. */
struct kheap_free_extent {
	uint64_t offset;
	uint64_t length;
};

/*
 * Read and parse KHEAP_SYSFS/free_extents strictly: lines "0x%llx 0x%llx"
 * (lower-case hexadecimal, no leading zeros), optionally ending with a
 * line "...".  Stores up to @max extents in @ext and their number in @n,
 * and in @truncated whether the "..." line was there.  @bytes (may be
 * NULL) receives the size of the whole text.  0, -E2BIG when more than
 * @max extents are listed, -EINVAL on malformed text, other -errno.
 */
int kheap_sysfs_free_extents(struct kheap_free_extent *ext, size_t max,
			     size_t *n, bool *truncated, size_t *bytes);
/* st_mode of KHEAP_SYSFS/@attr. */
int kheap_sysfs_mode(const char *attr, mode_t *mode);

/* Text used by sysfs pool_source for an enum kheap_pool_source value. */
const char *kheap_source_name(uint64_t source);

/* A field of /proc/meminfo, in kB. */
int kheap_meminfo_kb(const char *field, uint64_t *kb);

/* "0", "EINVAL", ... for a 0 or -errno return value (rotating buffers). */
const char *kheap_errname(int ret);

/* Whether capability @cap is in this thread's effective set. */
bool kheap_cap_effective(int cap);
/* Add or remove @cap from the effective set (it stays permitted). */
int kheap_cap_set_effective(int cap, bool on);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t kheap_now_ms(void);
void kheap_sleep_ms(unsigned int ms);

/*
 * Test patterns: every 8-byte word depends on @seed and on the word's
 * offset, so a page that moved, was swapped with another or belongs to
 * another owner shows up.  kheap_check*() return the offset of the first
 * bad byte, or -1 when the buffer is as expected.
 */
uint64_t kheap_pattern_word(uint64_t seed, size_t word);
void kheap_fill(void *buf, size_t len, uint64_t seed);
ssize_t kheap_check(const void *buf, size_t len, uint64_t seed);
ssize_t kheap_check_zero(const void *buf, size_t len);

/*
 * Module loading through libkmod.  The module file is $KHEAP_KO, or
 * kheap.ko in the directory of the running executable.
 */
const char *kheap_ko_path(void);
/* Best effort: a sysctl knob that is missing or refused changes nothing. */
void kheap_write_knob(const char *path, const char *text);
/* Insert the module with @params (may be NULL): 0 or -errno. */
int kheap_module_load(const char *params);
/*
 * Like kheap_module_load(), but when the pool could not be found
 * (-ENOMEM), write back and drop the page cache and compact memory, then
 * try again, up to @tries times in all.  For test beds that need the pool
 * and run after other suites have scattered the kernel's own pages; not
 * for tests of the load's own failure.
 */
int kheap_module_load_reclaim(const char *params, int tries);
/* Remove the module once: 0 or -errno (-EAGAIN/-EBUSY while in use). */
int kheap_module_unload(void);
/*
 * Remove the module, retrying while it is busy for up to @timeout_ms.
 * -ENOENT when it was not loaded.
 */
int kheap_module_unload_wait(int timeout_ms);
/* The module is listed in /proc/modules. */
bool kheap_module_listed(void);
/* Print libkmod's own messages (as "# libkmod: ...") when @on. */
void kheap_kmod_verbose(bool on);

/*
 * Kernel log: kheap_kmsg_open() returns a /dev/kmsg reader positioned at
 * the end of the log (or -errno); kheap_kmsg_scan() reads everything
 * logged since and calls @bad for each record that carries a warning,
 * BUG, oops or stack trace, or tells of a memory failure (which only
 * kheap_hwpoison_test causes, and checks itself).  It returns the number of such records or
 * -errno.
 */
int kheap_kmsg_open(void);
int kheap_kmsg_scan(int fd, void (*bad)(const char *msg, void *arg),
		    void *arg);
/*
 * Read everything logged since the last read and call @fn (may be NULL)
 * with the text of each record.  The number of records, or -errno.
 */
int kheap_kmsg_read(int fd, void (*fn)(const char *msg, void *arg), void *arg);
/* Whether one record is of the kind kheap_kmsg_scan() counts. */
bool kheap_kmsg_is_bad(const char *msg);

#endif /* KHEAP_LIB_H */
