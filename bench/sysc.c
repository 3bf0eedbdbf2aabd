// SPDX-License-Identifier: MIT
/*
 * sysc.c - how many system calls (futex(2) among them) a workload made,
 * counted by the kernel: a perf counter on the syscall tracepoints, opened
 * with inherit on the calling thread, so that threads created afterwards
 * are counted too (their counts join the parent's when they exit, which
 * every workload's threads have done by the time it returns).  Needs
 * tracefs at /sys/kernel/tracing and the right to trace (root, or a low
 * perf_event_paranoid); without them the counts read 0 and the voluntary
 * context switches from getrusage() (a thread that blocks in futex(2)
 * switches voluntarily; sched_yield() does not) are what remains.
 */
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kbench.h"

static int fd_futex = -1, fd_all = -1;

static long tracepoint_id(const char *event)
{
	char path[128];
	long id = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s/id",
		 event);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &id) != 1)
		id = -1;
	fclose(f);
	return id;
}

static int open_counter(const char *event)
{
	struct perf_event_attr at;
	long id = tracepoint_id(event);

	if (id < 0)
		return -1;
	memset(&at, 0, sizeof(at));
	at.type = PERF_TYPE_TRACEPOINT;
	at.size = sizeof(at);
	at.config = (uint64_t)id;
	at.inherit = 1;
	at.exclude_kernel = 0;
	return (int)syscall(SYS_perf_event_open, &at, 0, -1, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

int sysc_open(void)
{
	fd_futex = open_counter("syscalls/sys_enter_futex");
	fd_all = open_counter("raw_syscalls/sys_enter");
	return fd_futex >= 0 && fd_all >= 0 ? 0 : -1;
}

static uint64_t counter(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

void sysc_read(struct sysc *s)
{
	struct rusage ru;

	s->futex = counter(fd_futex);
	s->all = counter(fd_all);
	s->vcsw = getrusage(RUSAGE_SELF, &ru) ? 0 : (uint64_t)ru.ru_nvcsw;
}

const char *sysc_source(void)
{
	return fd_futex >= 0 && fd_all >= 0 ? "perf-tracepoint" : "none";
}
