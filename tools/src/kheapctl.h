/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kheapctl: load, inspect and demonstrate the kheap module.
 * Shared declarations of the subcommands and their helpers.
 */
#ifndef KHEAPCTL_H
#define KHEAPCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define KHEAP_MODNAME	"kheap"
#define KHEAP_DEVNODE	"/dev/kheap"
/* How /proc/PID/maps names a kheap mapping (the module's mapping file). */
#define KHEAP_MAPFILE_NAME	"anon_inode:[kheap]"
#define KHEAP_SYSFS	"/sys/class/misc/kheap"
#define KHEAP_MODSYSFS	"/sys/module/kheap"

/* Exit codes, as documented in kheapctl(8). */
#define KC_OK		0
#define KC_FAIL		1
#define KC_USAGE	2

/* main.c */
extern const char *progname;
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Subcommands: each returns an exit code. */
int cmd_load(int argc, char **argv);
int cmd_unload(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_devices(int argc, char **argv);

/* dmabufs.c: the dma-bufs exported from the pool (sysfs, ABI 4). */
#define DMABUFS_SHOWN	64
struct dmabufs {
	bool have_count;	/* the module reports them */
	uint64_t count;		/* dma-bufs that still exist */
	bool have_extents;	/* dmabuf_extents was readable */
	bool truncated;		/* more exist than are listed */
	size_t n;
	struct {
		uint64_t offset;	/* from the pool's base */
		uint64_t length;
	} ext[DMABUFS_SHOWN];
};
int read_dmabufs(struct dmabufs *d);	/* 0 or -errno */

/* util.c */
int read_text(const char *path, char *buf, size_t len);	/* 0 or -errno; trims */
int read_u64(const char *path, uint64_t *value);		/* 0 or -errno */
const char *fmt_size(uint64_t bytes, char *buf, size_t len);	/* "64.0 MiB" */
int parse_u64(const char *s, uint64_t *value);			/* 0 or -EINVAL */
int parse_memsize(const char *s, uint64_t *value);		/* "64M" → bytes */
bool running_as_root(void);

/* module.c: the module's state through libkmod. */
enum kheap_modstate {
	MODSTATE_ABSENT = -1,
	MODSTATE_BUILTIN = 0,
	MODSTATE_LIVE,
	MODSTATE_COMING,
	MODSTATE_GOING,
};
int kheap_modstate(int *refcnt);
const char *modstate_name(int state);

/* device.c: /dev/kheap and its sysfs directory. */
int kheap_devnum(dev_t *devnum);	/* from KHEAP_SYSFS/dev; 0 or -errno */
const char *pool_source_name(uint64_t source);

/* holders.c: who keeps the module busy. */
struct holder {
	pid_t pid;
	char comm[64];
	unsigned int nfds;
	int fds[8];		/* the first few open descriptors */
	unsigned int nmaps;
	uint64_t map_bytes;
	uint64_t first_map;	/* start of the first mapping */
};
int find_holders(struct holder **list, size_t *count);	/* 0 or -errno */
void print_holders(FILE *out, const struct holder *list, size_t count);

/* phys.c: the MMU's and the RAM's view. */
#define PAGEMAP_HIDDEN	1	/* present, but the PFN is hidden from us */
int pagemap_open(void);
int pagemap_phys(int fd, uintptr_t vaddr, uint64_t *phys);	/* 0, PAGEMAP_HIDDEN or -errno */
struct kcore;
struct kcore *kcore_open(int *error);
int kcore_read(struct kcore *kc, uint64_t phys, void *buf, size_t len);	/* 0 or -errno */
void kcore_close(struct kcore *kc);

#endif
