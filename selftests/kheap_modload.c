// SPDX-License-Identifier: GPL-2.0
/*
 * kheap_modload: load or unload kheap.ko through libkmod, for kheap.sh.
 *
 *   kheap_modload load [param=value ...]
 *   kheap_modload unload
 *
 * The module file is $KHEAP_KO, or kheap.ko next to this program.
 * "load" tries three times while the pool finds no room (ENOMEM),
 * dropping caches and compacting memory in between: a runtime pool of
 * 256 MiB in a 1 GiB guest, after other suites, sometimes needs it.
 * "unload" retries for a couple of seconds while the module is busy,
 * because chunks released from deferred work can hold it briefly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kheap_lib.h"

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s load [param=value ...]\n"
			"       %s unload\n", prog, prog);
	return 2;
}

int main(int argc, char **argv)
{
	size_t len = 1;
	char *params;
	int i, ret;

	if (argc < 2)
		return usage(argv[0]);

	kheap_kmod_verbose(getenv("KHEAP_KMOD_DEBUG") != NULL);

	if (!strcmp(argv[1], "unload")) {
		if (argc != 2)
			return usage(argv[0]);
		ret = kheap_module_unload_wait(KHEAP_SETTLE_MS);
		if (ret) {
			fprintf(stderr, "%s: unload %s: %s\n", argv[0],
				KHEAP_MODNAME, strerror(-ret));
			return 1;
		}
		return 0;
	}

	if (strcmp(argv[1], "load"))
		return usage(argv[0]);

	for (i = 2; i < argc; i++)
		len += strlen(argv[i]) + 1;
	params = calloc(1, len);
	if (!params)
		return 1;
	for (i = 2; i < argc; i++) {
		if (i > 2)
			strcat(params, " ");
		strcat(params, argv[i]);
	}

	ret = kheap_module_load_reclaim(params, 3);
	if (ret) {
		fprintf(stderr, "%s: load %s %s: %s\n", argv[0],
			kheap_ko_path(), params, strerror(-ret));
		free(params);
		return 1;
	}
	free(params);
	return 0;
}
