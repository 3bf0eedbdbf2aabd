// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl status: is the module loaded, with which parameters, and what
 * does its pool look like.  Sources: libkmod for the module's state,
 * /sys/module/kheap/parameters, the misc device's sysfs attributes (among
 * them free_extents, where the free pages are, which the occupancy bar is
 * drawn from) and, when the device can be opened, KHEAP_IOC_INFO (ABI
 * version, page size, and the physical base for users who may see it).
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
/* free_extents is one sysfs page: this is more than any page size. */
#define EXTENTS_TEXT	65536

struct extent {
	uint64_t offset, length;
};

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
	bool have_max_phys;	/* the module has max_phys (ABI 2) */
	uint64_t max_phys;	/* 0: the pool may lie anywhere */

	/* free_extents: missing (have_extents false), complete or truncated. */
	bool have_extents, extents_truncated;
	size_t nextents;
	struct extent *extents;

	struct dmabufs dmabufs;

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

/* One number of free_extents: "0x" and lower-case hexadecimal digits. */
static bool parse_hex(const char *s, const char **end, uint64_t *value)
{
	unsigned long long v;
	char *e;

	if (strncmp(s, "0x", 2) || !s[2] || !strchr("0123456789abcdef", s[2]))
		return false;
	errno = 0;
	v = strtoull(s + 2, &e, 16);
	if (errno)
		return false;
	*end = e;
	*value = v;
	return true;
}

/*
 * KHEAP_SYSFS/free_extents: "<offset> <length>" lines in ascending order,
 * possibly ending with "..." when the list did not fit into a sysfs page.
 * Anything malformed, out of order or outside the pool counts as missing.
 */
static void read_extents(struct status *st)
{
	char *text = malloc(EXTENTS_TEXT);
	size_t len = 0, cap = 0;
	const char *p, *end;
	uint64_t next = 0;
	ssize_t n = 0;
	int fd;

	if (!text)
		return;
	fd = open(KHEAP_SYSFS "/free_extents", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while (len < EXTENTS_TEXT - 1 &&
		       (n = read(fd, text + len, EXTENTS_TEXT - 1 - len)) > 0)
			len += (size_t)n;
		close(fd);
	}
	if (fd < 0 || n < 0 || len == EXTENTS_TEXT - 1)
		goto bad;
	text[len] = '\0';

	for (p = text; *p; p = end + 1) {
		struct extent e;

		if (!strcmp(p, "...\n")) {
			st->extents_truncated = true;
			break;
		}
		if (!parse_hex(p, &end, &e.offset) || *end != ' ' ||
		    !parse_hex(end + 1, &end, &e.length) || *end != '\n' ||
		    !e.length || e.offset < next || e.offset > st->pool_size ||
		    e.length > st->pool_size - e.offset)
			goto bad;
		next = e.offset + e.length;
		if (st->nextents == cap) {
			struct extent *more;

			cap = cap ? 2 * cap : 64;
			more = realloc(st->extents, cap * sizeof(*more));
			if (!more)
				goto bad;
			st->extents = more;
		}
		st->extents[st->nextents++] = e;
	}
	st->have_extents = true;
	free(text);
	return;
bad:
	free(st->extents);
	st->extents = NULL;
	st->nextents = 0;
	st->extents_truncated = false;
	free(text);
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
	st->have_max_phys = !read_u64(KHEAP_SYSFS "/max_phys", &st->max_phys);
	read_dmabufs(&st->dmabufs);
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

/* Called last, so that the pool size is known, from INFO or sysfs. */
static void gather_extents(struct status *st)
{
	if (st->have_pool && st->pool_size)
		read_extents(st);
}

/*
 * Does the bar show where chunks sit?  Only with the complete free_extents
 * list; otherwise it shows how much is used, filled from the left.
 */
static bool bar_positional(const struct status *st)
{
	return st->have_extents && !st->extents_truncated;
}

/* Cell @i of the bar covers bytes [cell_start(i), cell_start(i + 1)). */
static uint64_t cell_start(const struct status *st, unsigned int i)
{
	return (uint64_t)((unsigned __int128)st->pool_size * i / BAR_CELLS);
}

/*
 * Positionally: '#' for a cell whose bytes are all used, '.' for one that
 * is all free, '+' for one partly used.  By amount: '#' for used, '.' for
 * free, the used cells first.
 */
static void occupancy_bar(const struct status *st, char *bar)
{
	unsigned int used = 0;

	if (bar_positional(st)) {
		size_t e = 0;

		for (unsigned int i = 0; i < BAR_CELLS; i++) {
			uint64_t lo = cell_start(st, i), hi = cell_start(st, i + 1);
			uint64_t free_in_cell = 0;

			/* Extents are in ascending order and do not overlap. */
			while (e < st->nextents &&
			       st->extents[e].offset + st->extents[e].length <= lo)
				e++;
			for (size_t k = e; k < st->nextents && st->extents[k].offset < hi; k++) {
				uint64_t a = st->extents[k].offset;
				uint64_t b = a + st->extents[k].length;

				free_in_cell += (b < hi ? b : hi) - (a > lo ? a : lo);
			}
			bar[i] = free_in_cell == 0 ? '#' : free_in_cell == hi - lo ? '.' : '+';
		}
		bar[BAR_CELLS] = '\0';
		return;
	}
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
	if (st->have_max_phys && st->max_phys)
		printf("  limit       pool placed below physical 0x%" PRIx64
		       " (max_phys), for devices with a narrow DMA mask\n",
		       st->max_phys);
	else if (st->have_max_phys)
		printf("  limit       none (max_phys not set)\n");
	printf("  chunks      %" PRIu64 " in use\n", st->chunks_in_use);
	if (st->dmabufs.have_count) {
		const struct dmabufs *d = &st->dmabufs;

		printf("  dma-bufs    %" PRIu64 " exported", d->count);
		if (d->count && !d->have_extents)
			printf(" (where: root only)");
		printf("\n");
		for (size_t i = 0; i < d->n; i++)
			printf("              pool+%#" PRIx64 ", %s\n",
			       d->ext[i].offset,
			       fmt_size(d->ext[i].length, a, sizeof(a)));
		if (d->truncated)
			printf("              ...\n");
	}
	if (st->have_info)
		printf("  abi         version %llu, page size %llu\n",
		       (unsigned long long)st->info.abi_version,
		       (unsigned long long)st->info.page_size);
	occupancy_bar(st, bar);
	printf("  occupancy   [%s] %.1f%% used\n", bar,
	       st->pool_size ? 100.0 * (double)(st->pool_size - st->free_bytes) /
			       (double)st->pool_size : 0.0);
	if (bar_positional(st))
		printf("              one cell = %s: # all used, + partly used, . all free\n",
		       fmt_size(st->pool_size / BAR_CELLS, a, sizeof(a)));
	else
		printf("              one cell = %s: # used, . free, by amount only (%s)\n",
		       fmt_size(st->pool_size / BAR_CELLS, a, sizeof(a)),
		       st->have_extents ? "free_extents is truncated" :
					  "no free_extents in sysfs");
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
		if (st->have_max_phys && st->max_phys)
			json_u64(&j, "max_phys", st->max_phys);
		else
			json_null(&j, "max_phys");
		json_u64(&j, "free_bytes", st->free_bytes);
		json_u64(&j, "used_bytes", st->pool_size - st->free_bytes);
		json_u64(&j, "largest_free", st->largest_free);
		json_u64(&j, "chunks_in_use", st->chunks_in_use);
		occupancy_bar(st, bar);
		json_string(&j, "occupancy", bar);
		json_string(&j, "occupancy_by", bar_positional(st) ? "position" : "amount");
		if (st->have_extents) {
			json_array_begin(&j, "free_extents");
			for (size_t i = 0; i < st->nextents; i++) {
				json_object_begin(&j, NULL);
				json_u64(&j, "offset", st->extents[i].offset);
				json_u64(&j, "length", st->extents[i].length);
				json_object_end(&j);
			}
			json_array_end(&j);
		} else {
			json_null(&j, "free_extents");
		}
		json_bool(&j, "free_extents_truncated", st->extents_truncated);
		if (st->dmabufs.have_count)
			json_u64(&j, "dmabufs", st->dmabufs.count);
		else
			json_null(&j, "dmabufs");
		if (st->dmabufs.have_extents) {
			json_array_begin(&j, "dmabuf_extents");
			for (size_t i = 0; i < st->dmabufs.n; i++) {
				json_object_begin(&j, NULL);
				json_u64(&j, "offset", st->dmabufs.ext[i].offset);
				json_u64(&j, "length", st->dmabufs.ext[i].length);
				json_object_end(&j);
			}
			json_array_end(&j);
		} else {
			json_null(&j, "dmabuf_extents");
		}
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
	gather_extents(&st);
	if (json)
		print_json(&st);
	else
		print_text(&st);
	free(st.extents);
	return KC_OK;
}
