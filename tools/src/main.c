// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheapctl: load, inspect and demonstrate the kheap module.
 *
 * Exit status: 0 success, 1 runtime failure, 2 usage error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kheapctl.h"

#ifndef KHEAPCTL_VERSION
#define KHEAPCTL_VERSION "unknown"
#endif

const char *progname = "kheapctl";

static const char usage_text[] =
"Usage: kheapctl COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  load [--module PATH] [size=SIZE] [phys=ADDR] [source=auto|reserved|contig|buddy]\n"
"       [restrict_phys=0|1] [max_phys=ADDR]\n"
"                 insert kheap.ko with these parameters.  The module comes from\n"
"                 --module PATH, else ../module/kheap.ko next to this program,\n"
"                 else the module installed for the running kernel.\n"
"  unload         remove the module; when it is busy, list the processes that\n"
"                 hold /dev/kheap open or mapped\n"
"  status [--json]\n"
"                 module state, parameters, pool source, physical base and\n"
"                 size, free bytes, largest free extent, chunks, occupancy\n"
"  map [--json] [--device DEV] [N]\n"
"                 allocate N buffers (default 3, at most 16) with libkheap,\n"
"                 plus one realloc that moves, and show each byte's way from\n"
"                 virtual address through the MMU to physical RAM, checked\n"
"                 against /proc/self/pagemap and /proc/kcore.  With --device,\n"
"                 also attach DEV (kheap_attach) and show each buffer's device\n"
"                 address (kheap_dma_addr), checked to be contiguous\n"
"  devices [--json] [DEV...]\n"
"                 for each device (a PCI address such as 0000:00:03.0, or\n"
"                 BUS:NAME; default: every PCI device): IDs, driver, IOMMU\n"
"                 group and domain type, DMA mask, and whether kheap_phys()\n"
"                 addresses work for it as they are, else what to use instead\n"
"\n"
"Options:\n"
"  -h, --help     this text\n"
"  -V, --version  print the version\n"
"\n"
"Exit status: 0 success, 1 failure, 2 usage error.  See kheapctl(8).\n";

void errmsg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", progname);
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "load", cmd_load },
	{ "unload", cmd_unload },
	{ "status", cmd_status },
	{ "map", cmd_map },
	{ "devices", cmd_devices },
};

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return KC_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return KC_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("kheapctl %s\n", KHEAPCTL_VERSION);
		return KC_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name))
			continue;
		for (int k = 2; k < argc; k++) {
			if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
				fputs(usage_text, stdout);
				return KC_OK;
			}
		}
		return commands[i].fn(argc - 1, argv + 1);
	}
	usage_error("unknown command \"%s\"", cmd);
	return KC_USAGE;
}
