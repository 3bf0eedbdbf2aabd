// SPDX-License-Identifier: GPL-2.0-only
/*
 * Who holds kheap busy: every process with /dev/kheap open (from
 * /proc/PID/fd) or mapped (from /proc/PID/maps, where kheap's mappings
 * show as "anon_inode:[kheap]").  A device file is
 * recognised by its device number (from sysfs), so a node created
 * elsewhere than /dev/kheap counts too; if sysfs has no number we fall back
 * to the path.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kheapctl.h"

int kheap_devnum(dev_t *devnum)
{
	char buf[32];
	unsigned int maj, min;
	int ret = read_text(KHEAP_SYSFS "/dev", buf, sizeof(buf));

	if (ret)
		return ret;
	if (sscanf(buf, "%u:%u", &maj, &min) != 2)
		return -EINVAL;
	*devnum = makedev(maj, min);
	return 0;
}

static bool is_kheap_node(const char *path, bool have_dev, dev_t devnum)
{
	struct stat st;

	if (have_dev && stat(path, &st) == 0)
		return S_ISCHR(st.st_mode) && st.st_rdev == devnum;
	return !strcmp(path, KHEAP_DEVNODE);
}

static void scan_fds(struct holder *h, bool have_dev, dev_t devnum)
{
	char dir[64], path[64 + 256];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)h->pid);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char target[256];
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (have_dev) {
			if (!is_kheap_node(path, true, devnum))
				continue;
		} else {
			n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, KHEAP_DEVNODE))
				continue;
		}
		if (h->nfds < sizeof(h->fds) / sizeof(h->fds[0]))
			h->fds[h->nfds] = atoi(de->d_name);
		h->nfds++;
	}
	closedir(d);
}

static void scan_maps(struct holder *h, bool have_dev, dev_t devnum)
{
	char path[64], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)h->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end;
		int off = 0;
		char *name, *nl;

		/* start-end perms offset dev inode   path */
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &start, &end, &off) < 2 ||
		    off == 0)
			continue;
		name = line + off;
		nl = strchr(name, '\n');
		if (nl)
			*nl = '\0';
		/* kheap's mappings carry its mapping file (module 1.1 on),
		 * or the device node itself (older modules). */
		if (strcmp(name, KHEAP_MAPFILE_NAME) &&
		    (*name != '/' || !is_kheap_node(name, have_dev, devnum)))
			continue;
		if (h->nmaps == 0)
			h->first_map = start;
		h->nmaps++;
		h->map_bytes += end - start;
	}
	fclose(f);
}

int find_holders(struct holder **list, size_t *count)
{
	struct holder *out = NULL;
	size_t n = 0, cap = 0;
	dev_t devnum = 0;
	bool have_dev = kheap_devnum(&devnum) == 0;
	pid_t self = getpid();
	struct dirent *de;
	DIR *proc = opendir("/proc");

	if (!proc)
		return -errno;
	while ((de = readdir(proc))) {
		struct holder h = { 0 };
		char path[64];

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		h.pid = (pid_t)atoi(de->d_name);
		if (h.pid == self)
			continue;
		scan_fds(&h, have_dev, devnum);
		scan_maps(&h, have_dev, devnum);
		if (!h.nfds && !h.nmaps)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)h.pid);
		if (read_text(path, h.comm, sizeof(h.comm)))
			snprintf(h.comm, sizeof(h.comm), "?");
		if (n == cap) {
			struct holder *grown;

			cap = cap ? 2 * cap : 8;
			grown = realloc(out, cap * sizeof(*out));
			if (!grown) {
				free(out);
				closedir(proc);
				return -ENOMEM;
			}
			out = grown;
		}
		out[n++] = h;
	}
	closedir(proc);
	*list = out;
	*count = n;
	return 0;
}

void print_holders(FILE *out, const struct holder *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct holder *h = &list[i];
		char sz[32];

		fprintf(out, "  pid %d (%s):", (int)h->pid, h->comm);
		if (h->nfds) {
			unsigned int shown = h->nfds < 8 ? h->nfds : 8;

			fprintf(out, " %s open as fd", KHEAP_DEVNODE);
			for (unsigned int k = 0; k < shown; k++)
				fprintf(out, "%s%d", k ? "," : " ", h->fds[k]);
			if (h->nfds > shown)
				fprintf(out, ",... (%u)", h->nfds);
		}
		if (h->nmaps)
			fprintf(out, "%s %u mapping%s of %s (%s, first at 0x%" PRIx64 ")",
				h->nfds ? ";" : "", h->nmaps, h->nmaps == 1 ? "" : "s",
				KHEAP_DEVNODE, fmt_size(h->map_bytes, sz, sizeof(sz)),
				h->first_map);
		fputc('\n', out);
	}
}
