// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl load / unload: insert and remove kheap.ko through libkmod.
 *
 * load finds the module in this order: --module PATH; the build tree next
 * to this binary (<bindir>/../module/kheap.ko); the module installed for the
 * running kernel, looked up by name and inserted like modprobe does (so
 * options from /etc/modprobe.d apply, the command line's come last).
 *
 * When the kernel refuses, we print its errno with what it means for kheap,
 * and the kernel log lines about kheap that appeared during our attempt
 * (read from /dev/kmsg, positioned at its end before the insert).
 */
#include <errno.h>
#include <fcntl.h>
#include <libkmod.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kheapctl.h"

/* The module parameters that load accepts (see kheapctl(8)). */
static const char *const known_params[] = {
	"size", "phys", "source", "restrict_phys", "max_phys", NULL,
};

static void quiet_log(void *data, int priority, const char *file, int line,
		      const char *fn, const char *format, va_list args)
{
	(void)data; (void)priority; (void)file; (void)line; (void)fn;
	(void)format; (void)args;
}

static struct kmod_ctx *kmod_open(void)
{
	struct kmod_ctx *ctx = kmod_new(NULL, NULL);

	if (!ctx) {
		errmsg("cannot initialise libkmod");
		return NULL;
	}
	/* We report errors ourselves, with more context. */
	kmod_set_log_fn(ctx, quiet_log, NULL);
	return ctx;
}

const char *modstate_name(int state)
{
	switch (state) {
	case MODSTATE_ABSENT: return "not loaded";
	case MODSTATE_BUILTIN: return "built-in";
	case MODSTATE_LIVE: return "live";
	case MODSTATE_COMING: return "loading";
	case MODSTATE_GOING: return "unloading";
	}
	return "unknown";
}

int kheap_modstate(int *refcnt)
{
	struct kmod_ctx *ctx = kmod_open();
	struct kmod_module *mod = NULL;
	int state = MODSTATE_ABSENT;

	if (refcnt)
		*refcnt = 0;
	if (!ctx)
		return MODSTATE_ABSENT;
	if (kmod_module_new_from_name(ctx, KHEAP_MODNAME, &mod) == 0) {
		state = kmod_module_get_initstate(mod);
		if (state < 0)
			state = MODSTATE_ABSENT;
		else if (refcnt && state != MODSTATE_BUILTIN)
			*refcnt = kmod_module_get_refcnt(mod);
		kmod_module_unref(mod);
	}
	kmod_unref(ctx);
	return state;
}

/* ---- the kernel log ---------------------------------------------------- */

/* Open /dev/kmsg positioned after the newest record, or -1. */
static int kmsg_open_at_end(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Print the records about kheap logged since kmsg_open_at_end(). */
static int kmsg_print_kheap_lines(int fd)
{
	char rec[2048];
	int printed = 0;

	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *text, *nl;

		if (n < 0 && errno == EPIPE)	/* overwritten; go on */
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		/* "prio,seq,usec,flags;text\n KEY=value\n..." */
		text = strchr(rec, ';');
		if (!text)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		/* Our module's lines, without the kernel's taint notices. */
		if (!strstr(text, KHEAP_MODNAME) || strstr(text, "taint"))
			continue;
		fprintf(stderr, "  kernel: %s\n", text);
		printed++;
	}
	return printed;
}

/* ---- load -------------------------------------------------------------- */

static const char *insert_error_hint(int err)
{
	switch (err) {
	case EEXIST:
		return "kheap is already loaded (kheapctl status shows it)";
	case EINVAL:
		return "the module refused a parameter";
	case ENOMEM:
		return "no physically contiguous range of that size could be had; "
		       "ask for a smaller size=, or boot with memmap=SIZE$ADDR "
		       "and load with phys=ADDR size=SIZE";
	case ENOEXEC:
		return "not a module for the running kernel (built against other headers?)";
	case ENOENT:
		return "the module needs a symbol the running kernel lacks";
	case EPERM:
		return "not permitted: loading needs root (CAP_SYS_MODULE); under Secure "
		       "Boot the kernel also refuses unsigned modules";
	case EKEYREJECTED:
	case ENOKEY:
	case EBADMSG:
		return "the kernel rejected the module's signature (sign it, or enrol "
		       "the DKMS key with mokutil)";
	case EBUSY:
		return "the physical range asked for is in use";
	case ENODEV:
		return "the memory asked for does not exist";
	}
	return NULL;
}

/* Compare the module's vermagic with the running kernel, for ENOEXEC. */
static void explain_vermagic(struct kmod_module *mod)
{
	struct kmod_list *info = NULL, *l;
	struct utsname un;

	if (kmod_module_get_info(mod, &info) < 0 || uname(&un) < 0)
		return;
	kmod_list_foreach(l, info) {
		const char *key = kmod_module_info_get_key(l);
		const char *val = kmod_module_info_get_value(l);
		size_t rl = strlen(un.release);

		if (strcmp(key, "vermagic") || !val)
			continue;
		if (strncmp(val, un.release, rl) || (val[rl] && val[rl] != ' '))
			fprintf(stderr, "  module built for \"%s\", running kernel is %s\n",
				val, un.release);
	}
	kmod_module_info_free_list(info);
}

/* <dir of this binary>/../module/kheap.ko, if it exists. */
static bool build_tree_module(char *path, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = '\0';
	if ((size_t)snprintf(path, len, "%s/../module/kheap.ko", exe) >= len)
		return false;
	if (access(path, R_OK))
		return false;
	/* A tidier name for messages: resolve the "..". */
	if (realpath(path, exe))
		snprintf(path, len, "%s", exe);
	return true;
}

static int check_param(const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t klen;

	if (!eq || eq == arg) {
		usage_error("load: \"%s\" is not a KEY=VALUE module parameter", arg);
		return -1;
	}
	klen = (size_t)(eq - arg);
	for (int i = 0; known_params[i]; i++) {
		if (strlen(known_params[i]) == klen &&
		    !strncmp(arg, known_params[i], klen)) {
			if (!eq[1] || strpbrk(eq + 1, " \t\n\"'")) {
				usage_error("load: bad value in \"%s\"", arg);
				return -1;
			}
			return 0;
		}
	}
	usage_error("load: unknown parameter \"%.*s\" (known: size, phys, source, restrict_phys, max_phys)",
		    (int)klen, arg);
	return -1;
}

static void print_loaded_summary(const char *from)
{
	char src[32] = "?", buf[32];
	uint64_t size = 0, phys;

	read_text(KHEAP_SYSFS "/pool_source", src, sizeof(src));
	read_u64(KHEAP_SYSFS "/pool_size", &size);
	printf("kheap: loaded from %s: %s pool (%s)", from,
	       src, fmt_size(size, buf, sizeof(buf)));
	if (read_u64(KHEAP_SYSFS "/pool_phys", &phys) == 0)
		printf(" at physical 0x%llx", (unsigned long long)phys);
	printf(", device %s\n", KHEAP_DEVNODE);
}

int cmd_load(int argc, char **argv)
{
	const char *module_path = NULL;
	char options[1024] = "", from[PATH_MAX + 32];
	struct kmod_ctx *ctx = NULL;
	struct kmod_module *mod = NULL;
	struct kmod_list *list = NULL;
	int state, ret, kmsg, rc = KC_FAIL;
	size_t used = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--module") || !strcmp(a, "-m")) {
			if (++i >= argc) {
				usage_error("load: --module needs a path");
				return KC_USAGE;
			}
			module_path = argv[i];
			continue;
		}
		if (!strncmp(a, "--module=", 9)) {
			module_path = a + 9;
			continue;
		}
		if (a[0] == '-') {
			usage_error("load: unknown option %s", a);
			return KC_USAGE;
		}
		if (check_param(a))
			return KC_USAGE;
		ret = snprintf(options + used, sizeof(options) - used, "%s%s",
			       used ? " " : "", a);
		if (ret < 0 || (size_t)ret >= sizeof(options) - used) {
			usage_error("load: parameters too long");
			return KC_USAGE;
		}
		used += (size_t)ret;
	}

	state = kheap_modstate(NULL);
	if (state == MODSTATE_BUILTIN) {
		errmsg("kheap is built into this kernel; nothing to load");
		return KC_FAIL;
	}
	if (state != MODSTATE_ABSENT) {
		errmsg("kheap is already loaded (%s); `kheapctl status` shows the pool, "
		       "`kheapctl unload` removes it", modstate_name(state));
		return KC_FAIL;
	}

	ctx = kmod_open();
	if (!ctx)
		return KC_FAIL;

	if (!module_path) {
		static char tree[PATH_MAX];

		if (build_tree_module(tree, sizeof(tree)))
			module_path = tree;
	}
	if (module_path) {
		struct stat st;

		if (stat(module_path, &st)) {
			errmsg("%s: %s", module_path, strerror(errno));
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			errmsg("%s: not a regular file", module_path);
			goto out;
		}
		ret = kmod_module_new_from_path(ctx, module_path, &mod);
		if (ret < 0) {
			errmsg("%s: %s", module_path, strerror(-ret));
			goto out;
		}
		if (!realpath(module_path, from))
			snprintf(from, sizeof(from), "%s", module_path);
	} else {
		ret = kmod_module_new_from_lookup(ctx, KHEAP_MODNAME, &list);
		if (ret < 0 || !list) {
			struct utsname un;

			uname(&un);
			errmsg("kheap.ko not found: no build tree next to this program, "
			       "and not installed for kernel %s (make install, make dkms, "
			       "or --module PATH)", un.release);
			goto out;
		}
		mod = kmod_module_get_module(list);
		kmod_module_unref_list(list);
		snprintf(from, sizeof(from), "%s",
			 kmod_module_get_path(mod) ? kmod_module_get_path(mod)
						   : "the installed module");
	}

	kmsg = kmsg_open_at_end();
	if (module_path)
		ret = kmod_module_insert_module(mod, 0, options);
	else
		ret = kmod_module_probe_insert_module(mod, KMOD_PROBE_FAIL_ON_LOADED,
						      options, NULL, NULL, NULL);
	if (ret == 0) {
		print_loaded_summary(from);
		rc = KC_OK;
	} else {
		int err = ret < 0 ? -ret : EINVAL;
		const char *hint = insert_error_hint(err);

		errmsg("cannot load %s%s%s%s: %s", from, *options ? " with \"" : "",
		       options, *options ? "\"" : "", strerror(err));
		if (hint)
			fprintf(stderr, "  %s\n", hint);
		if (err == ENOEXEC)
			explain_vermagic(mod);
		if (kmsg < 0)
			fprintf(stderr, "  the kernel log says why: dmesg | grep kheap (needs root)\n");
		else if (!kmsg_print_kheap_lines(kmsg))
			fprintf(stderr, "  (the kernel logged nothing about kheap)\n");
	}
	if (kmsg >= 0)
		close(kmsg);
out:
	if (mod)
		kmod_module_unref(mod);
	kmod_unref(ctx);
	return rc;
}

/* ---- unload ------------------------------------------------------------ */

static void explain_busy(struct kmod_module *mod)
{
	struct kmod_list *deps = kmod_module_get_holders(mod), *l;
	struct holder *list = NULL;
	size_t count = 0;
	int refcnt = kmod_module_get_refcnt(mod);

	fprintf(stderr, "  %d reference%s to the module\n", refcnt, refcnt == 1 ? "" : "s");
	kmod_list_foreach(l, deps) {
		struct kmod_module *h = kmod_module_get_module(l);

		fprintf(stderr, "  module %s depends on kheap\n", kmod_module_get_name(h));
		kmod_module_unref(h);
	}
	kmod_module_unref_list(deps);

	if (find_holders(&list, &count) < 0) {
		fprintf(stderr, "  cannot scan /proc for processes using %s\n", KHEAP_DEVNODE);
		return;
	}
	if (count == 0)
		fprintf(stderr, "  no process has %s open or mapped (pages may still be "
			"pinned by I/O in flight)\n", KHEAP_DEVNODE);
	else
		print_holders(stderr, list, count);
	free(list);
}

int cmd_unload(int argc, char **argv)
{
	struct kmod_ctx *ctx;
	struct kmod_module *mod = NULL;
	int state, ret, rc = KC_FAIL;

	(void)argv;
	if (argc > 1) {
		usage_error("unload takes no arguments");
		return KC_USAGE;
	}
	state = kheap_modstate(NULL);
	if (state == MODSTATE_ABSENT) {
		errmsg("kheap is not loaded");
		return KC_FAIL;
	}
	if (state == MODSTATE_BUILTIN) {
		errmsg("kheap is built into this kernel and cannot be unloaded");
		return KC_FAIL;
	}
	ctx = kmod_open();
	if (!ctx)
		return KC_FAIL;
	ret = kmod_module_new_from_name(ctx, KHEAP_MODNAME, &mod);
	if (ret < 0) {
		errmsg("libkmod: %s", strerror(-ret));
		goto out;
	}
	ret = kmod_module_remove_module(mod, 0);
	if (ret == 0) {
		printf("kheap: unloaded\n");
		rc = KC_OK;
	} else if (ret == -EBUSY || ret == -EAGAIN) {
		errmsg("cannot unload kheap: it is in use");
		explain_busy(mod);
	} else if (ret == -EPERM) {
		errmsg("cannot unload kheap: not permitted (needs root)");
	} else {
		errmsg("cannot unload kheap: %s", strerror(-ret));
	}
out:
	if (mod)
		kmod_module_unref(mod);
	kmod_unref(ctx);
	return rc;
}
