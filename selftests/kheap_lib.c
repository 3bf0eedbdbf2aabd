// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the kheap selftests, see kheap_lib.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <sys/syscall.h>

#include <libkmod.h>

#include "kheap_lib.h"

int kheap_ioctl(int fd, unsigned long cmd, void *arg)
{
	int ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

int kheap_open(void)
{
	int fd = open(KHEAP_DEV, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int kheap_info(int fd, struct kheap_info *info)
{
	memset(info, 0, sizeof(*info));
	return kheap_ioctl(fd, KHEAP_IOC_INFO, info);
}

int kheap_alloc(int fd, uint64_t size, uint64_t align, struct kheap_alloc *out)
{
	memset(out, 0, sizeof(*out));
	out->size = size;
	out->align = align;
	return kheap_ioctl(fd, KHEAP_IOC_ALLOC, out);
}

int kheap_free(int fd, uint64_t token)
{
	struct kheap_free arg = { .token = token };

	return kheap_ioctl(fd, KHEAP_IOC_FREE, &arg);
}

int kheap_query(int fd, const volatile void *addr, struct kheap_query *out)
{
	memset(out, 0, sizeof(*out));
	out->addr = (uintptr_t)addr;
	return kheap_ioctl(fd, KHEAP_IOC_QUERY, out);
}

int kheap_sync(int fd, uint64_t token, uint64_t offset, uint64_t length,
	       uint64_t flags)
{
	struct kheap_sync arg = {
		.token = token,
		.offset = offset,
		.length = length,
		.flags = flags,
	};

	return kheap_ioctl(fd, KHEAP_IOC_SYNC, &arg);
}

void *kheap_map(int fd, uint64_t token, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)token);
}

bool kheap_same_state(const struct kheap_info *a, const struct kheap_info *b)
{
	return a->free_bytes == b->free_bytes &&
	       a->largest_free == b->largest_free &&
	       a->chunks_in_use == b->chunks_in_use &&
	       a->file_chunks == b->file_chunks &&
	       a->file_bytes == b->file_bytes;
}

const char *kheap_state_str(const struct kheap_info *info, char *buf,
			    size_t len)
{
	snprintf(buf, len,
		 "free %llu largest %llu chunks %llu (file: %llu chunks, %llu bytes) of pool %llu",
		 (unsigned long long)info->free_bytes,
		 (unsigned long long)info->largest_free,
		 (unsigned long long)info->chunks_in_use,
		 (unsigned long long)info->file_chunks,
		 (unsigned long long)info->file_bytes,
		 (unsigned long long)info->pool_size);
	return buf;
}

const char *kheap_errname(int ret)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
		{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" },
		{ EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
		{ EINVAL, "EINVAL" }, { ENOTTY, "ENOTTY" }, { ENOSPC, "ENOSPC" },
		{ ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" },
		{ EOVERFLOW, "EOVERFLOW" }, { ETIMEDOUT, "ETIMEDOUT" },
	};
	static __thread char bufs[4][24];
	static __thread unsigned int next;
	char *buf;
	size_t i;

	if (ret == 0)
		return "0";
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (-ret == names[i].err)
			return names[i].name;
	buf = bufs[next++ % 4];
	snprintf(buf, sizeof(bufs[0]), "%d", ret);
	return buf;
}

static int capget_self(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};

	return syscall(SYS_capget, &hdr, data) ? -errno : 0;
}

bool kheap_cap_effective(int cap)
{
	struct __user_cap_data_struct data[2];

	if (capget_self(data))
		return false;
	return data[cap / 32].effective & (1U << (cap % 32));
}

int kheap_cap_set_effective(int cap, bool on)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[2];
	int ret = capget_self(data);

	if (ret)
		return ret;
	if (on)
		data[cap / 32].effective |= 1U << (cap % 32);
	else
		data[cap / 32].effective &= ~(1U << (cap % 32));
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

uint64_t kheap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kheap_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int kheap_wait_state(int fd, uint64_t free_bytes, uint64_t chunks,
		     int timeout_ms, struct kheap_info *last)
{
	uint64_t deadline = kheap_now_ms() + timeout_ms;
	struct kheap_info info;
	int ret;

	for (;;) {
		ret = kheap_info(fd, &info);
		if (last)
			*last = info;
		if (ret)
			return ret;
		if (info.free_bytes == free_bytes &&
		    info.chunks_in_use == chunks)
			return 0;
		if (kheap_now_ms() >= deadline)
			return -ETIMEDOUT;
		kheap_sleep_ms(10);
	}
}

int kheap_wait_idle(int fd, int timeout_ms, struct kheap_info *last)
{
	struct kheap_info info;
	int ret = kheap_info(fd, &info);

	if (ret) {
		if (last)
			*last = info;
		return ret;
	}
	return kheap_wait_state(fd, info.pool_size, 0, timeout_ms, last);
}

#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)

int kheap_pagemap_pfns(const void *addr, size_t npages, uint64_t *pfns)
{
	size_t page = getpagesize();
	off_t pos = (off_t)((uintptr_t)addr / page * sizeof(uint64_t));
	size_t want = npages * sizeof(uint64_t);
	size_t i, done = 0;
	int fd, ret = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (done < want) {
		ssize_t n = pread(fd, (char *)pfns + done, want - done,
				  pos + done);

		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0) {
			ret = -EIO;
			goto out;
		}
		done += n;
	}
	for (i = 0; i < npages; i++) {
		if (!(pfns[i] & PM_PRESENT)) {
			ret = -ENOENT;
			goto out;
		}
		pfns[i] &= PM_PFN_MASK;
		if (!pfns[i]) {
			ret = -EPERM;
			goto out;
		}
	}
out:
	close(fd);
	return ret;
}

static int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

int kheap_sysfs_str(const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];
	size_t n;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", KHEAP_SYSFS, attr);
	ret = read_text(path, buf, len);
	if (ret)
		return ret;
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int kheap_sysfs_u64(const char *attr, uint64_t *val)
{
	unsigned long long v;
	char buf[64], *end;
	int ret;

	ret = kheap_sysfs_str(attr, buf, sizeof(buf));
	if (ret)
		return ret;
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	if (!strncmp(buf, "0x", 2))
		v = strtoull(buf + 2, &end, 16);
	else
		v = strtoull(buf, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*val = v;
	return 0;
}

/* One hexadecimal number in the form "0x%llx": 0x, then no leading zero. */
static int parse_hex(const char *s, const char **end, uint64_t *val)
{
	const char *p = s + 2, *q;
	unsigned long long v;
	char *e;

	if (strncmp(s, "0x", 2) || !isxdigit((unsigned char)*p) ||
	    (*p == '0' && isxdigit((unsigned char)p[1])))
		return -EINVAL;
	for (q = p; isxdigit((unsigned char)*q); q++)
		if (isupper((unsigned char)*q))
			return -EINVAL;
	errno = 0;
	v = strtoull(p, &e, 16);
	if (errno)
		return -EINVAL;
	*end = e;
	*val = v;
	return 0;
}

int kheap_sysfs_free_extents(struct kheap_free_extent *ext, size_t max,
			     size_t *n, bool *truncated, size_t *bytes)
{
	const size_t cap = 65536;	/* more than any page size */
	char path[PATH_MAX], *text;
	const char *p, *end;
	size_t len = 0;
	ssize_t r;
	int fd, ret = 0;

	*n = 0;
	*truncated = false;
	snprintf(path, sizeof(path), "%s/free_extents", KHEAP_SYSFS);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	text = malloc(cap);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	do {
		r = read(fd, text + len, cap - 1 - len);
		if (r > 0)
			len += r;
	} while (r > 0 && len < cap - 1);
	if (r < 0)
		ret = -errno;
	close(fd);
	if (ret)
		goto out;
	text[len] = '\0';
	if (bytes)
		*bytes = len;
	if (strlen(text) != len) {
		ret = -EINVAL;
		goto out;
	}

	for (p = text; *p; p = end + 1) {
		uint64_t off, length;

		/* "..." may only be the last line. */
		if (!strcmp(p, "...\n")) {
			*truncated = true;
			break;
		}
		if (parse_hex(p, &end, &off) || *end != ' ' ||
		    parse_hex(end + 1, &end, &length) || *end != '\n') {
			ret = -EINVAL;
			break;
		}
		if (*n == max) {
			ret = -E2BIG;
			break;
		}
		ext[*n].offset = off;
		ext[*n].length = length;
		(*n)++;
	}
out:
	free(text);
	return ret;
}

int kheap_sysfs_mode(const char *attr, mode_t *mode)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", KHEAP_SYSFS, attr);
	if (stat(path, &st))
		return -errno;
	*mode = st.st_mode;
	return 0;
}

const char *kheap_source_name(uint64_t source)
{
	switch (source) {
	case KHEAP_SOURCE_RESERVED:
		return "reserved";
	case KHEAP_SOURCE_CONTIG:
		return "contig";
	case KHEAP_SOURCE_BUDDY:
		return "buddy";
	}
	return "?";
}

int kheap_meminfo_kb(const char *field, uint64_t *kb)
{
	size_t flen = strlen(field);
	char line[256];
	int ret = -ENOENT;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			*kb = strtoull(line + flen + 1, NULL, 10);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* splitmix64: cheap, and every output bit depends on every input bit. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t kheap_pattern_word(uint64_t seed, size_t word)
{
	uint64_t v = mix64(seed * 0x100000001b3ULL + word);

	/* Never zero, so a buffer that reads back as zeros always fails. */
	return v ? v : 1;
}

void kheap_fill(void *buf, size_t len, uint64_t seed)
{
	volatile uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / sizeof(uint64_t); i++)
		p[i] = kheap_pattern_word(seed, i);
}

ssize_t kheap_check(const void *buf, size_t len, uint64_t seed)
{
	const volatile uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / sizeof(uint64_t); i++)
		if (p[i] != kheap_pattern_word(seed, i))
			return i * sizeof(uint64_t);
	return -1;
}

ssize_t kheap_check_zero(const void *buf, size_t len)
{
	const volatile uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / sizeof(uint64_t); i++)
		if (p[i])
			return i * sizeof(uint64_t);
	return -1;
}

/* libkmod */

static bool kmod_verbose;

void kheap_kmod_verbose(bool on)
{
	kmod_verbose = on;
}

static void kmod_log(void *data, int priority, const char *file, int line,
		     const char *fn, const char *format, va_list args)
{
	(void)data;
	(void)priority;
	(void)file;
	(void)line;
	(void)fn;
	if (!kmod_verbose)
		return;
	fprintf(stderr, "# libkmod: ");
	vfprintf(stderr, format, args);
}

static struct kmod_ctx *kmod_ctx_new(void)
{
	struct kmod_ctx *ctx = kmod_new(NULL, NULL);

	if (ctx)
		kmod_set_log_fn(ctx, kmod_log, NULL);
	return ctx;
}

const char *kheap_ko_path(void)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX];
	const char *env = getenv("KHEAP_KO");
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return "./kheap.ko";
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/kheap.ko", dirname(exe));
	return path;
}

int kheap_module_load(const char *params)
{
	struct kmod_module *mod;
	struct kmod_ctx *ctx;
	int ret;

	ctx = kmod_ctx_new();
	if (!ctx)
		return -ENOMEM;
	ret = kmod_module_new_from_path(ctx, kheap_ko_path(), &mod);
	if (ret == 0) {
		ret = kmod_module_insert_module(mod, 0, params ? params : "");
		kmod_module_unref(mod);
	}
	kmod_unref(ctx);
	/* libkmod returns -errno, but be safe with positive values. */
	return ret > 0 ? -ret : ret;
}

void kheap_write_knob(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		errno = 0;
	close(fd);
}

int kheap_module_load_reclaim(const char *params, int tries)
{
	int ret = kheap_module_load(params);

	while (ret == -ENOMEM && --tries > 0) {
		printf("# %s: no room for the pool; dropping caches, compacting, trying again\n",
		       params ? params : "");
		fflush(stdout);
		sync();
		kheap_write_knob("/proc/sys/vm/drop_caches", "3");
		kheap_write_knob("/proc/sys/vm/compact_memory", "1");
		ret = kheap_module_load(params);
	}
	return ret;
}

int kheap_module_unload(void)
{
	struct kmod_module *mod;
	struct kmod_ctx *ctx;
	int ret;

	ctx = kmod_ctx_new();
	if (!ctx)
		return -ENOMEM;
	ret = kmod_module_new_from_name(ctx, KHEAP_MODNAME, &mod);
	if (ret == 0) {
		ret = kmod_module_remove_module(mod, 0);
		kmod_module_unref(mod);
	}
	kmod_unref(ctx);
	return ret > 0 ? -ret : ret;
}

int kheap_module_unload_wait(int timeout_ms)
{
	uint64_t deadline = kheap_now_ms() + timeout_ms;
	int ret;

	for (;;) {
		ret = kheap_module_unload();
		if (ret != -EAGAIN && ret != -EBUSY)
			return ret;
		if (kheap_now_ms() >= deadline)
			return ret;
		kheap_sleep_ms(20);
	}
}

bool kheap_module_listed(void)
{
	size_t nlen = strlen(KHEAP_MODNAME);
	bool found = false;
	char line[512];
	FILE *f;

	f = fopen("/proc/modules", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, KHEAP_MODNAME, nlen) && line[nlen] == ' ') {
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Kernel log */

int kheap_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (lseek(fd, 0, SEEK_END) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static const char * const kmsg_bad[] = {
	"WARNING:",
	"BUG:",
	"kernel BUG",
	"Oops",
	"Call Trace",
	/* Only kheap_hwpoison_test may poison memory, and it checks itself. */
	"Memory failure: ",
	"is hardware-poisoned",
};

int kheap_kmsg_read(int fd, void (*fn)(const char *msg, void *arg), void *arg)
{
	char rec[8192];
	int count = 0;

	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *msg, *nl;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Records were overwritten before we got to them. */
			if (errno == EPIPE)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		if (n == 0)
			break;
		rec[n] = '\0';
		/* "prio,seq,usec,flags;text\n" followed by " KEY=value" lines */
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = '\0';
		count++;
		if (fn)
			fn(msg, arg);
	}
	return count;
}

struct kmsg_bad {
	void (*bad)(const char *msg, void *arg);
	void *arg;
	int count;
	int vivid;	/* 1: schedule_timeout's report seen, 2: in vivid */
};

bool kheap_kmsg_is_bad(const char *msg)
{
	size_t i;

	for (i = 0; i < sizeof(kmsg_bad) / sizeof(kmsg_bad[0]); i++)
		if (strstr(msg, kmsg_bad[i]))
			return true;
	return false;
}

/*
 * vivid's capture thread checks that its next frame is still ahead, then
 * computes the wait from jiffies again (vivid-kthread-cap.c, 6.1 and
 * 6.12): a tick in between, likely on a slow TCG guest, makes the wait
 * negative, and schedule_timeout() reports it with a stack dump.  That
 * race is vivid's alone and harmless (the wait ends at once); the stack
 * dump of that report, from a vivid thread, is let through, as
 * scripts/kernel-complaints.awk does.
 */
static bool kmsg_vivid_race(struct kmsg_bad *kb, const char *msg)
{
	if (strstr(msg, "schedule_timeout: wrong timeout value")) {
		kb->vivid = 1;
		return true;
	}
	if (kb->vivid == 1 && strstr(msg, "Comm: vivid-"))
		kb->vivid = 2;
	if (kb->vivid && strstr(msg, "Call Trace")) {
		bool ours = kb->vivid == 2;

		kb->vivid = 0;
		return ours;
	}
	return false;
}

static void kmsg_check_bad(const char *msg, void *arg)
{
	struct kmsg_bad *kb = arg;

	if (kmsg_vivid_race(kb, msg))
		return;
	if (kheap_kmsg_is_bad(msg)) {
		kb->count++;
		if (kb->bad)
			kb->bad(msg, kb->arg);
	}
}

int kheap_kmsg_scan(int fd, void (*bad)(const char *msg, void *arg),
		    void *arg)
{
	struct kmsg_bad kb = { .bad = bad, .arg = arg };
	int ret = kheap_kmsg_read(fd, kmsg_check_bad, &kb);

	return ret < 0 ? ret : kb.count;
}
