// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the kheap device address tests, see kheap_dma_lib.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kheap_dma_lib.h"

int kheap_edu_list(struct kheap_edu_dev *devs, int max)
{
	const char *env = getenv("KHEAP_EDU");
	char found[KHEAP_EDU_MAX][EDU_BDF_LEN];
	char *list, *word, *save, *at, *end;
	unsigned long bits;
	int n = 0, i;

	if (!env || !*env) {
		n = edu_find(found, KHEAP_EDU_MAX);
		if (n < 0)
			return n;
		if (n > max)
			n = max;
		if (n > KHEAP_EDU_MAX)
			n = KHEAP_EDU_MAX;
		for (i = 0; i < n; i++) {
			strcpy(devs[i].bdf, found[i]);
			devs[i].bits = 28;	/* QEMU's default dma_mask */
		}
		return n;
	}

	list = strdup(env);
	if (!list)
		return -ENOMEM;
	for (word = strtok_r(list, " \t\n", &save); word && n < max;
	     word = strtok_r(NULL, " \t\n", &save)) {
		at = strchr(word, '@');
		bits = 28;
		if (at) {
			*at = '\0';
			errno = 0;
			bits = strtoul(at + 1, &end, 10);
			if (errno || *end || bits < 1 || bits > 64)
				goto bad;
		}
		if (strlen(word) >= EDU_BDF_LEN)
			goto bad;
		strcpy(devs[n].bdf, word);
		devs[n].bits = bits;
		n++;
	}
	free(list);
	return n;
bad:
	free(list);
	return -EINVAL;
}

int kheap_attach(int fd, const char *name, uint64_t dma_bits,
		 struct kheap_attach *out)
{
	memset(out, 0, sizeof(*out));
	out->name = (uintptr_t)name;
	out->dma_bits = dma_bits;
	return kheap_ioctl(fd, KHEAP_IOC_ATTACH, out);
}

int kheap_detach(int fd, uint64_t handle)
{
	struct kheap_detach arg = { .handle = handle };

	return kheap_ioctl(fd, KHEAP_IOC_DETACH, &arg);
}

int kheap_dma_addr(int fd, uint64_t token, uint64_t handle, uint64_t *addr)
{
	struct kheap_dma_addr arg = { .token = token, .handle = handle };
	int ret = kheap_ioctl(fd, KHEAP_IOC_DMA_ADDR, &arg);

	if (!ret)
		*addr = arg.dma_addr;
	return ret;
}

int kheap_free_flags(int fd, uint64_t token, uint64_t flags)
{
	struct kheap_free arg = { .token = token, .flags = flags };

	return kheap_ioctl(fd, KHEAP_IOC_FREE, &arg);
}

int kheap_read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

bool kheap_iommu_present(void)
{
	struct dirent *de;
	bool any = false;
	DIR *dir;

	dir = opendir("/sys/class/iommu");
	if (!dir)
		return false;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			any = true;
	closedir(dir);
	return any;
}

int kheap_iommu_expected(void)
{
	const char *env = getenv("KHEAP_DMA_IOMMU");

	if (!env || !*env)
		return -1;
	return strcmp(env, "0") ? 1 : 0;
}

bool kheap_dma_required(const char *test)
{
	const char *env = getenv("KHEAP_DMA_REQUIRE");
	size_t len = strlen(test);
	const char *p;

	for (p = env; p && (p = strstr(p, test)); p += len) {
		/* whole words only */
		if ((p == env || p[-1] == ' ') && (!p[len] || p[len] == ' '))
			return true;
	}
	return false;
}

int kheap_kmsg_grep(int fd, const char *needle, int *bad, char *first,
		    size_t len)
{
	static const char * const complaints[] = {
		"WARNING:", "BUG:", "kernel BUG", "Oops", "Call Trace",
	};
	char rec[8192], *msg, *nl;
	int count = 0;
	size_t i;
	ssize_t n;

	*bad = 0;
	if (first && len)
		*first = '\0';
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0) {
			/* EPIPE: records were overwritten; go on with the rest. */
			if (errno == EINTR || errno == EPIPE)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		if (n == 0)
			break;
		rec[n] = '\0';
		/* "prio,seq,usec,flags;text\n" and " KEY=value" lines */
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = '\0';
		for (i = 0; i < sizeof(complaints) / sizeof(complaints[0]); i++) {
			if (strstr(msg, complaints[i])) {
				(*bad)++;
				break;
			}
		}
		if (strstr(msg, needle)) {
			if (!count && first && len)
				snprintf(first, len, "%s", msg);
			count++;
		}
	}
	return count;
}
