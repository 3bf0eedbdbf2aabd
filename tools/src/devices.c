// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl devices: can this device use kheap's physical addresses as
 * they are, and if not, what to do instead.
 *
 * Everything comes from sysfs: the device's IDs, class and driver under
 * /sys/bus/BUS/devices/NAME, its IOMMU group and that group's default
 * domain type under /sys/kernel/iommu_groups/N, its DMA mask
 * (dma_mask_bits, PCI only) and the pool's place under
 * /sys/class/misc/kheap (pool_phys is root-only; max_phys bounds the pool
 * even for others).  A physical address reaches a device only when no
 * IOMMU translates for it and the whole pool lies under its DMA mask.
 *
 * KHEAPCTL_SYSFS replaces /sys, so that tests can hand in a fake tree.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/kheap.h>

#include "json.h"
#include "kheapctl.h"

/* Where the pool is, as far as this user can tell. */
struct pool_place {
	bool loaded;
	bool have_phys;		/* pool_phys readable (root) */
	uint64_t phys, size;
	uint64_t max_phys;	/* 0: no limit, or no such attribute */
};

/* What the verdict rests on; JSON's "reason". */
enum reason {
	R_NONE,			/* physical addresses work */
	R_IOMMU,		/* a translating IOMMU */
	R_BLOCKED,		/* the IOMMU blocks the device's DMA */
	R_VFIO,			/* owned by VFIO: its IOVAs are the user's */
	R_DMA_MASK,		/* the pool ends above the DMA mask */
	R_UNKNOWN_IOMMU,	/* a group whose domain type we cannot read */
	R_UNKNOWN_MASK,		/* no DMA mask in sysfs */
	R_UNKNOWN_POOL,		/* kheap not loaded, or pool_phys hidden */
};

static const char *const reason_name[] = {
	[R_NONE] = NULL,
	[R_IOMMU] = "iommu",
	[R_BLOCKED] = "blocked",
	[R_VFIO] = "vfio",
	[R_DMA_MASK] = "dma_mask",
	[R_UNKNOWN_IOMMU] = "unknown_iommu",
	[R_UNKNOWN_MASK] = "unknown_mask",
	[R_UNKNOWN_POOL] = "unknown_pool",
};

struct device {
	char name[KHEAP_DEVICE_NAME_MAX];	/* as kheap_attach() takes it */
	char bus[32];
	char path[PATH_MAX];			/* its sysfs directory */
	char vendor[8], devid[8];		/* hex, without 0x; "" if absent */
	char class[8];				/* "00ff00"; "" if absent */
	char driver[64];			/* "" when none is bound */
	int group;				/* -1: no IOMMU group */
	char group_type[32];			/* "DMA-FQ", ...; "" unreadable */
	char group_name[64];			/* "vfio-noiommu" or "" */
	int mask_bits;				/* -1: unknown */
	/* the verdict */
	int phys_ok;				/* 1 yes, 0 no, -1 unknown */
	enum reason reason;
	char message[320];
	char note[320];
};

/* ---- sysfs, under a root that tests may move ---------------------------- */

static const char *sysroot(void)
{
	const char *r = getenv("KHEAPCTL_SYSFS");

	return r && *r ? r : "/sys";
}

static void __attribute__((format(printf, 3, 4)))
spath(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s/", sysroot());

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < len)
		vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
}

/* The last component of a symlink's target: a driver or a group number. */
static int link_base(const char *path, char *out, size_t len)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	const char *base;

	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(out, base);
	return 0;
}

/* A sysfs ID such as "0x1234": the hex digits after the 0x. */
static void read_hex_id(const char *dir, const char *attr, char *out, size_t len)
{
	char path[PATH_MAX + 32], text[32];

	const char *hex;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	if (read_text(path, text, sizeof(text)))
		return;
	hex = strncmp(text, "0x", 2) ? text : text + 2;
	if (strlen(hex) < len)		/* an ID longer than expected is no ID */
		strcpy(out, hex);
}

static void read_pool(struct pool_place *pool)
{
	char path[PATH_MAX];

	memset(pool, 0, sizeof(*pool));
	spath(path, sizeof(path), "class/misc/kheap/pool_size");
	pool->loaded = read_u64(path, &pool->size) == 0;
	if (!pool->loaded)
		return;
	spath(path, sizeof(path), "class/misc/kheap/pool_phys");
	pool->have_phys = read_u64(path, &pool->phys) == 0;
	/* Only modules that know max_phys= have the file; 0 means no limit. */
	spath(path, sizeof(path), "class/misc/kheap/max_phys");
	if (read_u64(path, &pool->max_phys))
		pool->max_phys = 0;
}

/* ---- names: "0000:00:03.0", "00:03.0" or "BUS:NAME" ---------------------- */

static size_t hex_run(const char *s)
{
	size_t n = 0;

	while (s[n] && strchr("0123456789abcdefABCDEF", s[n]))
		n++;
	return n;
}

/* DOMAIN:BUS:SLOT.FN with a domain of 4 to 8 hex digits, or BUS:SLOT.FN. */
static bool is_pci_address(const char *s, bool *short_form)
{
	size_t d = hex_run(s);

	*short_form = d == 2 && s[2] == ':';
	if (!*short_form) {
		if (d < 4 || d > 8 || s[d] != ':')
			return false;
		s += d + 1;
	}
	return hex_run(s) == 2 && s[2] == ':' && hex_run(s + 3) == 2 && s[5] == '.' &&
	       s[6] >= '0' && s[6] <= '7' && !s[7];
}

/* 0, or KC_USAGE for a name that cannot be a device's. */
static int parse_name(const char *arg, struct device *d)
{
	const char *colon = strchr(arg, ':');
	bool short_form;
	size_t blen;

	memset(d, 0, sizeof(*d));
	if (is_pci_address(arg, &short_form)) {
		snprintf(d->bus, sizeof(d->bus), "pci");
		snprintf(d->name, sizeof(d->name), "%s%s", short_form ? "0000:" : "", arg);
		return 0;
	}
	blen = colon ? (size_t)(colon - arg) : 0;
	if (!blen || blen >= sizeof(d->bus) || strspn(arg, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != blen ||
	    !colon[1] || strchr(colon + 1, '/') || !strcmp(colon + 1, ".") ||
	    !strcmp(colon + 1, "..") || strlen(arg) >= sizeof(d->name))
		return KC_USAGE;
	memcpy(d->bus, arg, blen);
	d->bus[blen] = '\0';
	/* "pci:0000:00:03.0" names the same device as "0000:00:03.0". */
	if (!strcmp(d->bus, "pci") && is_pci_address(colon + 1, &short_form))
		snprintf(d->name, sizeof(d->name), "%s%s", short_form ? "0000:" : "",
			 colon + 1);
	else
		snprintf(d->name, sizeof(d->name), "%s", arg);
	return 0;
}

static const char *dev_basename(const struct device *d)
{
	return strcmp(d->bus, "pci") ? d->name + strlen(d->bus) + 1 : d->name;
}

/* 0, or -ENOENT with the reason printed. */
static int locate(struct device *d)
{
	char busdir[PATH_MAX];
	struct stat st;

	spath(d->path, sizeof(d->path), "bus/%s/devices/%s", d->bus, dev_basename(d));
	if (stat(d->path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	spath(busdir, sizeof(busdir), "bus/%s", d->bus);
	if (stat(busdir, &st))
		errmsg("devices: no device \"%s\": there is no bus \"%s\" (%s)", d->name,
		       d->bus, busdir);
	else
		errmsg("devices: no device \"%s\" (nothing at %s)", d->name, d->path);
	return -ENOENT;
}

/* ---- gathering the facts --------------------------------------------------- */

static void gather(struct device *d)
{
	char path[PATH_MAX + 32], group[32];
	uint64_t bits;

	read_hex_id(d->path, "vendor", d->vendor, sizeof(d->vendor));
	read_hex_id(d->path, "device", d->devid, sizeof(d->devid));
	read_hex_id(d->path, "class", d->class, sizeof(d->class));

	snprintf(path, sizeof(path), "%s/driver", d->path);
	if (link_base(path, d->driver, sizeof(d->driver)))
		d->driver[0] = '\0';

	d->group = -1;
	snprintf(path, sizeof(path), "%s/iommu_group", d->path);
	if (link_base(path, group, sizeof(group)) == 0) {
		uint64_t n;

		if (parse_u64(group, &n) == 0 && n <= INT_MAX)
			d->group = (int)n;
	}
	if (d->group >= 0) {
		spath(path, sizeof(path), "kernel/iommu_groups/%d/type", d->group);
		if (read_text(path, d->group_type, sizeof(d->group_type)))
			d->group_type[0] = '\0';
		spath(path, sizeof(path), "kernel/iommu_groups/%d/name", d->group);
		if (read_text(path, d->group_name, sizeof(d->group_name)))
			d->group_name[0] = '\0';
	}

	d->mask_bits = -1;
	snprintf(path, sizeof(path), "%s/dma_mask_bits", d->path);
	if (read_u64(path, &bits) == 0 && bits <= 64)
		d->mask_bits = (int)bits;
}

/* ---- the verdict ----------------------------------------------------------- */

/* VFIO's no-IOMMU mode makes a group without any translation behind it. */
static bool group_is_noiommu(const struct device *d)
{
	return d->group >= 0 && !strcmp(d->group_name, "vfio-noiommu");
}

/* 1 translates, 0 does not, -1 cannot tell. */
static int group_translates(const struct device *d)
{
	if (d->group < 0 || group_is_noiommu(d) || !strcmp(d->group_type, "identity"))
		return 0;
	if (!strcmp(d->group_type, "DMA") || !strcmp(d->group_type, "DMA-FQ") ||
	    !strcmp(d->group_type, "unmanaged") || !strcmp(d->group_type, "blocked"))
		return 1;
	return -1;
}

static uint64_t mask_of(int bits)
{
	return bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
}

/* 2^bits as the max_phys= parameter takes it: "256M", "4G". */
static void fmt_limit(int bits, char *buf, size_t len)
{
	static const char suffix[] = "KMGTPE";
	int unit = bits >= 10 ? (bits >= 60 ? 5 : bits / 10 - 1) : -1;

	if (unit < 0)
		snprintf(buf, len, "%llu", 1ULL << bits);
	else
		snprintf(buf, len, "%llu%c", 1ULL << (bits - 10 * (unit + 1)), suffix[unit]);
}

static void verdict(struct device *d, const struct pool_place *pool)
{
	int tr = group_translates(d);
	char limit[32];
	uint64_t mask, top;

	d->phys_ok = 0;
	/* A VFIO owner maps the device's IOVAs itself, unless there is no IOMMU. */
	if (!strncmp(d->driver, "vfio", 4) && !group_is_noiommu(d)) {
		d->reason = R_VFIO;
		snprintf(d->message, sizeof(d->message),
			 "owned by %s: use kheap_vfio_map(); then kheap_phys() is its IOVA",
			 d->driver);
		return;
	}
	if (tr == 1 && !strcmp(d->group_type, "blocked")) {
		d->reason = R_BLOCKED;
		snprintf(d->message, sizeof(d->message),
			 "the IOMMU blocks this device's DMA (group %d, blocked): no address "
			 "reaches memory; bind it to vfio-pci and use kheap_vfio_map()",
			 d->group);
		return;
	}
	if (tr == 1) {
		d->reason = R_IOMMU;
		snprintf(d->message, sizeof(d->message),
			 "this device is behind a translating IOMMU (%s): physical addresses "
			 "will fault; use kheap_attach() and kheap_dma_addr()", d->group_type);
		return;
	}
	if (tr < 0) {
		d->phys_ok = -1;
		d->reason = R_UNKNOWN_IOMMU;
		snprintf(d->message, sizeof(d->message),
			 "IOMMU group %d has domain type \"%s\": whether it translates is "
			 "unknown; kheap_attach() and kheap_dma_addr() work either way",
			 d->group, d->group_type[0] ? d->group_type : "(unreadable)");
		return;
	}

	/* No translation: the device puts physical addresses on the bus. */
	if (d->mask_bits < 0) {
		d->phys_ok = -1;
		d->reason = R_UNKNOWN_MASK;
		if (pool->have_phys)
			snprintf(d->message, sizeof(d->message),
				 "no IOMMU translates for this device, but its DMA mask is "
				 "unknown: physical addresses work if it reaches 0x%" PRIx64
				 "; kheap_attach() checks that", pool->phys + pool->size - 1);
		else
			snprintf(d->message, sizeof(d->message),
				 "no IOMMU translates for this device, but its DMA mask is "
				 "unknown: kheap_attach() checks that it reaches the pool");
		return;
	}
	mask = mask_of(d->mask_bits);
	fmt_limit(d->mask_bits < 64 ? d->mask_bits : 63, limit, sizeof(limit));
	if (pool->have_phys)
		top = pool->phys + pool->size - 1;
	else if (pool->max_phys)
		top = pool->max_phys - 1;	/* the pool lies below max_phys */
	else
		top = UINT64_MAX;
	if (top <= mask) {
		d->phys_ok = 1;
		d->reason = R_NONE;
		snprintf(d->message, sizeof(d->message),
			 "yes: no IOMMU translates for it, and %s its %d-bit DMA mask",
			 pool->have_phys ? "the pool lies under" :
			 pool->max_phys ? "max_phys keeps the pool under" :
					  "any pool lies under", d->mask_bits);
		return;
	}
	if (!pool->have_phys) {
		d->phys_ok = -1;
		d->reason = R_UNKNOWN_POOL;
		snprintf(d->message, sizeof(d->message),
			 "no IOMMU translates for this device; whether the pool lies under its "
			 "%d-bit DMA mask is unknown: %s", d->mask_bits,
			 pool->loaded ? "the pool's place (pool_phys) is shown to root only"
				      : "kheap is not loaded");
		return;
	}
	d->reason = R_DMA_MASK;
	if (pool->phys > mask)
		snprintf(d->message, sizeof(d->message),
			 "the pool lies above this device's %d-bit DMA mask: load kheap with "
			 "max_phys=%s", d->mask_bits, limit);
	else
		snprintf(d->message, sizeof(d->message),
			 "the pool ends above this device's %d-bit DMA mask: load kheap with "
			 "max_phys=%s, or attach it (kheap_attach() before allocating) so that "
			 "chunks come from below the mask", d->mask_bits, limit);
}

/*
 * What the verdict cannot see: without a driver nobody has told the kernel
 * how many address bits the device drives (QEMU's edu: 28), and the mask
 * is the PCI default.  Whoever drives it from user space knows better.
 */
static void add_note(struct device *d)
{
	if (strcmp(d->bus, "pci") || d->driver[0] || d->mask_bits < 0 ||
	    d->reason == R_VFIO || d->reason == R_BLOCKED)
		return;
	snprintf(d->note, sizeof(d->note),
		 "no driver is bound, so the %d-bit mask is the PCI default, not "
		 "necessarily what the device drives; give the real width to "
		 "kheap_attach_bits()", d->mask_bits);
}

/* ---- the PCI class, in words ------------------------------------------------- */

static const char *class_name(const char *class)
{
	static const char *const base[] = {
		"unclassified", "storage", "network", "display", "multimedia", "memory",
		"bridge", "communication", "system", "input", "docking", "processor",
		"serial bus", "wireless", "intelligent I/O", "satellite", "encryption",
		"signal processing", "accelerator", "instrumentation",
	};
	unsigned int b;
	char hi[3];

	if (strlen(class) != 6)
		return NULL;
	memcpy(hi, class, 2);
	hi[2] = '\0';
	b = (unsigned int)strtoul(hi, NULL, 16);
	if (b < sizeof(base) / sizeof(base[0]))
		return base[b];
	return b == 0x40 ? "coprocessor" : b == 0xff ? "unassigned" : "other";
}

/* ---- output ------------------------------------------------------------------ */

static void print_pool(const struct pool_place *pool)
{
	char sz[32];

	printf("kheap pool  ");
	if (!pool->loaded)
		printf("kheap is not loaded");
	else if (pool->have_phys)
		printf("0x%" PRIx64 "-0x%" PRIx64 " (%s)", pool->phys,
		       pool->phys + pool->size - 1, fmt_size(pool->size, sz, sizeof(sz)));
	else
		printf("%s, place hidden (pool_phys is readable by root only)",
		       fmt_size(pool->size, sz, sizeof(sz)));
	if (pool->max_phys)
		printf(", below max_phys 0x%" PRIx64, pool->max_phys);
	printf("\n");
}

static void print_device(const struct device *d)
{
	const char *cn = class_name(d->class);

	printf("\n%s", d->name);
	if (d->vendor[0])
		printf("  %s:%s", d->vendor, d->devid[0] ? d->devid : "?");
	if (d->class[0])
		printf("  %s (class %s)", cn ? cn : "?", d->class);
	printf("\n  driver      %s\n", d->driver[0] ? d->driver : "none");
	printf("  IOMMU       ");
	if (d->group < 0)
		printf("no IOMMU\n");
	else if (group_is_noiommu(d))
		printf("group %d, vfio-noiommu: no translation\n", d->group);
	else
		printf("group %d, %s%s\n", d->group, d->group_type[0] ? d->group_type : "?",
		       group_translates(d) == 1 ? " (translates)" :
		       group_translates(d) == 0 ? " (no translation)" : "");
	printf("  DMA mask    ");
	if (d->mask_bits < 0)
		printf("unknown\n");
	else
		printf("%d bits%s\n", d->mask_bits, !d->driver[0] ? " (no driver bound)" : "");
	if (d->phys_ok == 1) {
		printf("  kheap_phys  %s\n", d->message);
	} else {
		printf("  kheap_phys  %s\n", d->phys_ok ? "unknown" : "no");
		printf("  warning     %s\n", d->message);
	}
	if (d->note[0])
		printf("  note        %s\n", d->note);
}

static void json_device(struct json *j, const struct device *d)
{
	int tr = group_translates(d);

	json_object_begin(j, NULL);
	json_string(j, "name", d->name);
	json_string(j, "bus", d->bus);
	json_string(j, "vendor", d->vendor[0] ? d->vendor : NULL);
	json_string(j, "device", d->devid[0] ? d->devid : NULL);
	json_string(j, "class", d->class[0] ? d->class : NULL);
	json_string(j, "class_name", class_name(d->class));
	json_string(j, "driver", d->driver[0] ? d->driver : NULL);
	if (d->group < 0) {
		json_null(j, "iommu");
	} else {
		json_object_begin(j, "iommu");
		json_u64(j, "group", (uint64_t)d->group);
		json_string(j, "type", d->group_type[0] ? d->group_type : NULL);
		json_string(j, "name", d->group_name[0] ? d->group_name : NULL);
		if (tr < 0)
			json_null(j, "translates");
		else
			json_bool(j, "translates", tr == 1);
		json_object_end(j);
	}
	if (d->mask_bits < 0)
		json_null(j, "dma_mask_bits");
	else
		json_u64(j, "dma_mask_bits", (uint64_t)d->mask_bits);
	if (d->phys_ok < 0)
		json_null(j, "phys_ok");
	else
		json_bool(j, "phys_ok", d->phys_ok == 1);
	json_string(j, "reason", reason_name[d->reason]);
	json_string(j, "message", d->message);
	json_string(j, "note", d->note[0] ? d->note : NULL);
	json_object_end(j);
}

static void json_pool(struct json *j, const struct pool_place *pool)
{
	json_object_begin(j, "pool");
	json_bool(j, "loaded", pool->loaded);
	if (pool->have_phys)
		json_u64(j, "phys", pool->phys);
	else
		json_null(j, "phys");
	if (pool->loaded)
		json_u64(j, "size", pool->size);
	else
		json_null(j, "size");
	if (pool->max_phys)
		json_u64(j, "max_phys", pool->max_phys);
	else
		json_null(j, "max_phys");
	json_object_end(j);
}

/* ---- the command ------------------------------------------------------------- */

/* Every PCI device, in address order. */
static int list_pci(struct device **list, size_t *count)
{
	char dir[PATH_MAX];
	struct dirent **names;
	int n;

	spath(dir, sizeof(dir), "bus/pci/devices");
	n = scandir(dir, &names, NULL, alphasort);
	*count = 0;
	if (n < 0) {
		*list = NULL;
		return errno == ENOENT ? 0 : -errno;	/* no PCI at all */
	}
	*list = calloc((size_t)n + 1, sizeof(**list));
	for (int i = 0; i < n; i++) {
		if (*list && names[i]->d_name[0] != '.' &&
		    parse_name(names[i]->d_name, &(*list)[*count]) == 0 &&
		    !strcmp((*list)[*count].bus, "pci")) {
			struct device *d = &(*list)[*count];

			if (snprintf(d->path, sizeof(d->path), "%s/%s", dir, d->name) <
			    (int)sizeof(d->path))
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return *list ? 0 : -ENOMEM;
}

int cmd_devices(int argc, char **argv)
{
	struct pool_place pool;
	struct device *list;
	size_t count = 0;
	bool json = false;
	int rc = KC_OK, ret;

	list = calloc((size_t)argc, sizeof(*list));
	if (!list) {
		errmsg("devices: out of memory");
		return KC_FAIL;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-') {
			usage_error("devices: unknown option \"%s\"", argv[i]);
			free(list);
			return KC_USAGE;
		} else if (parse_name(argv[i], &list[count])) {
			usage_error("devices: \"%s\" is not a device name: give a PCI address "
				    "(0000:00:03.0) or BUS:NAME (platform:NAME)", argv[i]);
			free(list);
			return KC_USAGE;
		} else {
			count++;
		}
	}
	/* All named devices must exist before anything is printed. */
	for (size_t i = 0; i < count; i++)
		if (locate(&list[i]))
			rc = KC_FAIL;
	if (rc != KC_OK) {
		free(list);
		return rc;
	}
	if (!count) {
		free(list);
		ret = list_pci(&list, &count);
		if (ret) {
			errmsg("devices: %s/bus/pci/devices: %s", sysroot(), strerror(-ret));
			return KC_FAIL;
		}
	}

	read_pool(&pool);
	for (size_t i = 0; i < count; i++) {
		gather(&list[i]);
		verdict(&list[i], &pool);
		add_note(&list[i]);
	}

	if (json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_pool(&j, &pool);
		json_array_begin(&j, "devices");
		for (size_t i = 0; i < count; i++)
			json_device(&j, &list[i]);
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
	} else {
		print_pool(&pool);
		if (!count)
			printf("\nno PCI devices\n");
		for (size_t i = 0; i < count; i++)
			print_device(&list[i]);
	}
	free(list);
	return KC_OK;
}
