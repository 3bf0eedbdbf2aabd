// SPDX-License-Identifier: GPL-2.0
/*
 * A user-space driver for QEMU's "edu" PCI device, see kheap_edu.h.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kheap_edu.h"

#define PCI_DEVICES	"/sys/bus/pci/devices"

/* PCI config space */
#define CFG_COMMAND		0x04
#define CFG_CMD_MEMORY		0x0002
#define CFG_CMD_MASTER		0x0004

/* edu registers in BAR0 */
#define EDU_REG_ID		0x00
#define EDU_REG_LIVE		0x04	/* reads back the complement */
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_CNT		0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_RAM		0x2	/* else memory -> device buffer */

static uint32_t rd32(struct edu *e, unsigned int reg)
{
	return *(volatile uint32_t *)(e->bar + reg);
}

static void wr32(struct edu *e, unsigned int reg, uint32_t val)
{
	*(volatile uint32_t *)(e->bar + reg) = val;
}

/* The DMA registers are 64 bits wide and take 8-byte accesses. */
static uint64_t rd64(struct edu *e, unsigned int reg)
{
	return *(volatile uint64_t *)(e->bar + reg);
}

static void wr64(struct edu *e, unsigned int reg, uint64_t val)
{
	*(volatile uint64_t *)(e->bar + reg) = val;
}

/* Read a small sysfs attribute of a PCI device as a number. */
static int pci_attr_ulong(const char *bdf, const char *attr,
			  unsigned long *val)
{
	char path[128], buf[32], *end;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	errno = 0;
	*val = strtoul(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

bool edu_is_edu(const char *bdf)
{
	unsigned long vendor, device;

	return !pci_attr_ulong(bdf, "vendor", &vendor) &&
	       !pci_attr_ulong(bdf, "device", &device) &&
	       vendor == EDU_VENDOR && device == EDU_DEVICE;
}

static int cmp_bdf(const void *a, const void *b)
{
	return strcmp(a, b);
}

int edu_find(char (*bdfs)[EDU_BDF_LEN], int max)
{
	char found[64][EDU_BDF_LEN];
	struct dirent *de;
	int n = 0, i;
	DIR *dir;

	dir = opendir(PCI_DEVICES);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= EDU_BDF_LEN)
			continue;
		if (!edu_is_edu(de->d_name) || n >= 64)
			continue;
		strcpy(found[n++], de->d_name);
	}
	closedir(dir);
	/* readdir() order is the kernel's whim: sort for stable names. */
	qsort(found, n, sizeof(found[0]), cmp_bdf);
	for (i = 0; i < n && i < max; i++)
		strcpy(bdfs[i], found[i]);
	return n;
}

int edu_cfg_enable(int fd, off_t base, uint16_t *old)
{
	uint16_t cmd;

	if (pread(fd, &cmd, sizeof(cmd), base + CFG_COMMAND) != sizeof(cmd))
		return errno ? -errno : -EIO;
	if (old)
		*old = cmd;
	cmd |= CFG_CMD_MEMORY | CFG_CMD_MASTER;
	if (pwrite(fd, &cmd, sizeof(cmd), base + CFG_COMMAND) != sizeof(cmd))
		return errno ? -errno : -EIO;
	return 0;
}

/* Check that @e->bar is an edu that answers. */
static int edu_probe(struct edu *e)
{
	uint32_t probe = 0x5a5aa5a5 ^ (uint32_t)getpid();

	if (e->bar_len < EDU_REG_DMA_CMD + 8)
		return -EINVAL;
	if (rd32(e, EDU_REG_ID) != EDU_ID)
		return -ENODEV;
	/* A BAR that reads back stale or all-ones is not a live device. */
	wr32(e, EDU_REG_LIVE, probe);
	if (rd32(e, EDU_REG_LIVE) != ~probe)
		return -ENODEV;
	return 0;
}

/* Put the PCI command word back as edu_open() found it. */
static void edu_cfg_restore(struct edu *e)
{
	if (pwrite(e->cfg_fd, &e->cmd_saved, sizeof(e->cmd_saved),
		   CFG_COMMAND) != sizeof(e->cmd_saved))
		errno = 0;	/* the device may be gone: nothing to restore */
}

static void edu_init(struct edu *e)
{
	memset(e, 0, sizeof(*e));
	e->cfg_fd = -1;
	e->mask = UINT64_MAX;
	e->timeout_ms = EDU_TIMEOUT_MS;
}

int edu_open(struct edu *e, const char *bdf)
{
	char path[128];
	struct stat st;
	void *bar;
	int fd, ret;

	edu_init(e);
	if (strlen(bdf) >= EDU_BDF_LEN)
		return -EINVAL;
	if (!edu_is_edu(bdf))
		return -ENODEV;
	strcpy(e->bdf, bdf);

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/config", bdf);
	e->cfg_fd = open(path, O_RDWR | O_CLOEXEC);
	if (e->cfg_fd < 0)
		return -errno;
	ret = edu_cfg_enable(e->cfg_fd, 0, &e->cmd_saved);
	if (ret)
		goto err_cfg;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto err_cmd;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		close(fd);
		goto err_cmd;
	}
	bar = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ret = bar == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret)
		goto err_cmd;
	e->bar = bar;
	e->bar_len = st.st_size;
	e->own_bar = true;

	ret = edu_probe(e);
	if (ret)
		goto err_unmap;
	return 0;

err_unmap:
	munmap((void *)e->bar, e->bar_len);
	e->bar = NULL;
err_cmd:
	edu_cfg_restore(e);
err_cfg:
	close(e->cfg_fd);
	e->cfg_fd = -1;
	return ret;
}

int edu_attach_bar(struct edu *e, volatile void *bar, size_t len)
{
	edu_init(e);
	e->bar = bar;
	e->bar_len = len;
	return edu_probe(e);
}

void edu_close(struct edu *e)
{
	if (e->own_bar && e->bar)
		munmap((void *)e->bar, e->bar_len);
	if (e->cfg_fd >= 0) {
		/* Bus mastering off again: nothing of ours stays reachable. */
		edu_cfg_restore(e);
		close(e->cfg_fd);
	}
	edu_init(e);
}

void edu_set_mask(struct edu *e, uint64_t mask)
{
	e->mask = mask;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the engine to clear its run bit. */
static int edu_wait(struct edu *e)
{
	uint64_t deadline = now_ms() + e->timeout_ms;
	struct timespec tick = { .tv_nsec = 1000000 };

	while (rd64(e, EDU_REG_DMA_CMD) & EDU_DMA_RUN) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
	return 0;
}

static int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint32_t len,
		   uint64_t cmd)
{
	/* edu ignores register writes while a transfer runs. */
	if (rd64(e, EDU_REG_DMA_CMD) & EDU_DMA_RUN)
		return -EBUSY;
	wr64(e, EDU_REG_DMA_SRC, src);
	wr64(e, EDU_REG_DMA_DST, dst);
	wr64(e, EDU_REG_DMA_CNT, len);
	/* No interrupt: we poll. */
	wr64(e, EDU_REG_DMA_CMD, cmd | EDU_DMA_RUN);
	return edu_wait(e);
}

/*
 * QEMU stops the whole machine on a transfer that leaves the buffer, and
 * cuts memory addresses to its mask behind our back: check both first.
 */
static int edu_check(struct edu *e, uint64_t addr, uint32_t off, uint32_t len)
{
	if (!len || off >= EDU_XFER_MAX || len > EDU_XFER_MAX - off)
		return -EINVAL;
	if (addr + len - 1 < addr || addr + len - 1 > e->mask)
		return -ERANGE;
	return 0;
}

int edu_dma_to_dev(struct edu *e, uint64_t addr, uint32_t off, uint32_t len)
{
	int ret = edu_check(e, addr, off, len);

	if (ret)
		return ret;
	return edu_dma(e, addr, EDU_BUF_ADDR + off, len, 0);
}

int edu_dma_from_dev(struct edu *e, uint32_t off, uint64_t addr, uint32_t len)
{
	int ret = edu_check(e, addr, off, len);

	if (ret)
		return ret;
	return edu_dma(e, EDU_BUF_ADDR + off, addr, len, EDU_DMA_TO_RAM);
}
