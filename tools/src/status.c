// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl status: is the module loaded, with which parameters, and what
 * does its pool look like.  Sources: libkmod for the module's state,
 * /sys/module/kheap/parameters, the misc device's sysfs attributes and,
 * when the device can be opened, KHEAP_IOC_INFO (ABI version, page size,
 * and the physical base for users who may see it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/kheap.h>

#include "json.h"
#include "kheapctl.h"

#define BAR_CELLS	64
#define MAX_PARAMS	16

struct status {
	int state;
	int refcnt;
	unsigned int nparams;
	char pname[MAX_PARAMS][32];
	char pvalue[MAX_PARAMS][128];

	bool have_pool;
	uint64_t pool_size, free_bytes, largest_free, chunks_in_use;
	char source[32];
	bool have_phys;
	uint64_t phys;

	bool have_info;
	struct kheap_info info;
	int info_errno;

	bool have_devnum, have_node;
	dev_t devnum;
	struct stat node;
};

const char *pool_source_name(uint64_t source)
{
	switch (source) {
	case KHEAP_SOURCE_RESERVED: return "reserved";
	case KHEAP_SOURCE_CONTIG: return "contig";
	case KHEAP_SOURCE_BUDDY: return "buddy";
	}
	return "unknown";
}

static void read_params(struct status *st)
{
	struct dirent **names;
	int n = scandir(KHEAP_MODSYSFS "/parameters", &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		char path[512];

		if (names[i]->d_name[0] != '.' && st->nparams < MAX_PARAMS) {
			unsigned int k = st->nparams;

			snprintf(path, sizeof(path), KHEAP_MODSYSFS "/parameters/%s",
				 names[i]->d_name);
			snprintf(st->pname[k], sizeof(st->pname[k]), "%.31s", names[i]->d_name);
			if (read_text(path, st->pvalue[k], sizeof(st->pvalue[k])))
				snprintf(st->pvalue[k], sizeof(st->pvalue[k]), "?");
			/* An unset string parameter reads back as "(null)". */
			else if (!strcmp(st->pvalue[k], "(null)"))
				st->pvalue[k][0] = '\0';
			st->nparams++;
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static void gather(struct status *st)
{
	int fd;

	memset(st, 0, sizeof(*st));
	st->state = kheap_modstate(&st->refcnt);
	if (st->state == MODSTATE_ABSENT)
		return;
	read_params(st);

	st->have_pool = !read_u64(KHEAP_SYSFS "/pool_size", &st->pool_size) &&
			!read_u64(KHEAP_SYSFS "/free_bytes", &st->free_bytes) &&
			!read_u64(KHEAP_SYSFS "/largest_free", &st->largest_free) &&
			!read_u64(KHEAP_SYSFS "/chunks_in_use", &st->chunks_in_use);
	if (read_text(KHEAP_SYSFS "/pool_source", st->source, sizeof(st->source)))
		st->source[0] = '\0';
	st->have_phys = !read_u64(KHEAP_SYSFS "/pool_phys", &st->phys);
	st->have_devnum = !kheap_devnum(&st->devnum);
	st->have_node = !stat(KHEAP_DEVNODE, &st->node);

	fd = open(KHEAP_DEVNODE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		st->info_errno = errno;
		return;
	}
	if (ioctl(fd, KHEAP_IOC_INFO, &st->info) == 0) {
		st->have_info = true;
		/* INFO is one consistent snapshot: prefer it to sysfs. */
		st->have_pool = true;
		st->pool_size = st->info.pool_size;
		st->free_bytes = st->info.free_bytes;
		st->largest_free = st->info.largest_free;
		st->chunks_in_use = st->info.chunks_in_use;
		if (!st->source[0])
			snprintf(st->source, sizeof(st->source), "%s",
				 pool_source_name(st->info.pool_source));
		if (!st->have_phys && st->info.pool_phys) {
			st->have_phys = true;
			st->phys = st->info.pool_phys;
		}
	} else {
		st->info_errno = errno;
	}
	close(fd);
}

/* '#' for used, '.' for free, by amount: the ABI does not say where. */
static void occupancy_bar(const struct status *st, char *bar)
{
	unsigned int used = 0;

	if (st->pool_size) {
		uint64_t u = st->pool_size - st->free_bytes;

		used = (unsigned int)((u * BAR_CELLS + st->pool_size - 1) / st->pool_size);
		if (used > BAR_CELLS)
			used = BAR_CELLS;
	}
	for (unsigned int i = 0; i < BAR_CELLS; i++)
		bar[i] = i < used ? '#' : '.';
	bar[BAR_CELLS] = '\0';
}

static void node_perms(const struct stat *s, char *mode, char *owner, char *group, size_t len)
{
	struct passwd *pw = getpwuid(s->st_uid);
	struct group *gr = getgrgid(s->st_gid);

	snprintf(mode, 8, "%04o", (unsigned int)(s->st_mode & 07777));
	if (pw)
		snprintf(owner, len, "%s", pw->pw_name);
	else
		snprintf(owner, len, "%u", (unsigned int)s->st_uid);
	if (gr)
		snprintf(group, len, "%s", gr->gr_name);
	else
		snprintf(group, len, "%u", (unsigned int)s->st_gid);
}

static void print_text(const struct status *st)
{
	char a[32], b[32], bar[BAR_CELLS + 1];

	if (st->state == MODSTATE_ABSENT) {
		printf("kheap: not loaded\n");
		return;
	}
	printf("kheap: loaded (%s), %d reference%s\n", modstate_name(st->state),
	       st->refcnt, st->refcnt == 1 ? "" : "s");
	printf("  parameters  ");
	for (unsigned int i = 0; i < st->nparams; i++)
		printf("%s%s=%s", i ? " " : "", st->pname[i], st->pvalue[i]);
	printf("%s\n", st->nparams ? "" : "(none visible)");

	printf("  device      %s", KHEAP_DEVNODE);
	if (st->have_devnum)
		printf(" (%u:%u)", major(st->devnum), minor(st->devnum));
	if (st->have_node) {
		char mode[8], owner[32], group[32];

		node_perms(&st->node, mode, owner, group, sizeof(owner));
		printf(" mode %s %s:%s", mode, owner, group);
	} else {
		printf(" (no device node)");
	}
	if (!st->have_info && st->info_errno)
		printf(", cannot open: %s", strerror(st->info_errno));
	printf("\n");

	if (!st->have_pool) {
		printf("  pool        (no sysfs attributes under %s)\n", KHEAP_SYSFS);
		return;
	}
	printf("  pool        %s, %s", st->source[0] ? st->source : "?",
	       fmt_size(st->pool_size, a, sizeof(a)));
	if (st->have_phys)
		printf(" at physical 0x%" PRIx64 "-0x%" PRIx64, st->phys,
		       st->phys + st->pool_size - 1);
	else
		printf(", physical base hidden (root only)");
	printf("\n");
	printf("  free        %s (%.1f%%), largest free extent %s\n",
	       fmt_size(st->free_bytes, a, sizeof(a)),
	       st->pool_size ? 100.0 * (double)st->free_bytes / (double)st->pool_size : 0.0,
	       fmt_size(st->largest_free, b, sizeof(b)));
	printf("  chunks      %" PRIu64 " in use\n", st->chunks_in_use);
	if (st->have_info)
		printf("  abi         version %llu, page size %llu\n",
		       (unsigned long long)st->info.abi_version,
		       (unsigned long long)st->info.page_size);
	occupancy_bar(st, bar);
	printf("  occupancy   [%s] %.1f%% used\n", bar,
	       st->pool_size ? 100.0 * (double)(st->pool_size - st->free_bytes) /
			       (double)st->pool_size : 0.0);
	printf("              one cell = %s, # used, . free (by amount; where each chunk\n"
	       "              sits is shown by kheapctl map for its own buffers)\n",
	       fmt_size(st->pool_size / BAR_CELLS, a, sizeof(a)));
}

static void print_json(const struct status *st)
{
	struct json j;
	char bar[BAR_CELLS + 1];

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_bool(&j, "loaded", st->state != MODSTATE_ABSENT);
	json_string(&j, "state", modstate_name(st->state));
	if (st->state == MODSTATE_ABSENT) {
		json_object_end(&j);
		json_finish(&j);
		return;
	}
	json_i64(&j, "refcnt", st->refcnt);
	json_object_begin(&j, "parameters");
	for (unsigned int i = 0; i < st->nparams; i++)
		json_string(&j, st->pname[i], st->pvalue[i]);
	json_object_end(&j);

	json_object_begin(&j, "device");
	json_string(&j, "path", KHEAP_DEVNODE);
	if (st->have_devnum) {
		json_u64(&j, "major", major(st->devnum));
		json_u64(&j, "minor", minor(st->devnum));
	}
	json_bool(&j, "node", st->have_node);
	if (st->have_node) {
		char mode[8], owner[32], group[32];

		node_perms(&st->node, mode, owner, group, sizeof(owner));
		json_string(&j, "mode", mode);
		json_string(&j, "owner", owner);
		json_string(&j, "group", group);
	}
	json_bool(&j, "accessible", st->have_info);
	if (!st->have_info && st->info_errno)
		json_string(&j, "error", strerror(st->info_errno));
	json_object_end(&j);

	if (st->have_pool) {
		json_object_begin(&j, "pool");
		json_string(&j, "source", st->source[0] ? st->source : NULL);
		if (st->have_phys)
			json_u64(&j, "phys", st->phys);
		else
			json_null(&j, "phys");
		json_u64(&j, "size", st->pool_size);
		json_u64(&j, "free_bytes", st->free_bytes);
		json_u64(&j, "used_bytes", st->pool_size - st->free_bytes);
		json_u64(&j, "largest_free", st->largest_free);
		json_u64(&j, "chunks_in_use", st->chunks_in_use);
		occupancy_bar(st, bar);
		json_string(&j, "occupancy", bar);
		json_object_end(&j);
	}
	if (st->have_info) {
		json_u64(&j, "abi_version", st->info.abi_version);
		json_u64(&j, "page_size", st->info.page_size);
	}
	json_object_end(&j);
	json_finish(&j);
}

int cmd_status(int argc, char **argv)
{
	bool json = false;
	struct status st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			usage_error("status: unexpected argument \"%s\"", argv[i]);
			return KC_USAGE;
		}
	}
	gather(&st);
	if (json)
		print_json(&st);
	else
		print_text(&st);
	return KC_OK;
}
