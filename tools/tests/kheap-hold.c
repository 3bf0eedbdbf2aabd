// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheap-hold: keep the kheap module busy until SIGTERM, for the test of
 * `kheapctl unload` naming who holds it, and hold chunks at known places
 * for the test of `kheapctl status`'s occupancy bar.
 *
 *   kheap-hold fd  READYFILE   keep /dev/kheap open
 *   kheap-hold map READYFILE   map one chunk, then close the descriptor,
 *                              so that only the mapping pins the module
 *   kheap-hold chunks READYFILE SIZE...
 *                              ALLOC one chunk of each SIZE bytes, in
 *                              order; a SIZE written -SIZE is freed again
 *                              once all are allocated (leaving a hole)
 *   kheap-hold dmabuf READYFILE
 *                              ALLOC four pages, EXPORT the middle two as a
 *                              dma-buf, FREE and close everything else:
 *                              only the dma-buf holds the chunk
 *
 * Writes its pid to READYFILE once it holds the device, and in chunks
 * mode then one line "PHYS SIZE" (decimal, from ALLOC) per chunk it holds;
 * in dmabuf mode one line "PHYS SIZE" of the exported range.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kheap.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	bool chunks = argc >= 4 && !strcmp(argv[1], "chunks");
	struct kheap_alloc held[16];
	char text[1024];
	size_t len = 0;
	sigset_t block, old;
	FILE *ready;
	int fd;

	if (!chunks && (argc != 3 || (strcmp(argv[1], "fd") && strcmp(argv[1], "map") &&
				      strcmp(argv[1], "dmabuf")))) {
		fprintf(stderr, "usage: kheap-hold fd|map|dmabuf READYFILE\n"
			"       kheap-hold chunks READYFILE [-]SIZE...\n");
		return 2;
	}
	if (chunks && argc - 3 > 16) {
		fprintf(stderr, "kheap-hold: at most 16 chunks\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);

	fd = open("/dev/kheap", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "kheap-hold: /dev/kheap: %s\n", strerror(errno));
		return 1;
	}
	if (!strcmp(argv[1], "map")) {
		struct kheap_alloc a = { .size = 4096 };
		void *p;

		if (ioctl(fd, KHEAP_IOC_ALLOC, &a)) {
			fprintf(stderr, "kheap-hold: ALLOC: %s\n", strerror(errno));
			return 1;
		}
		p = mmap(NULL, a.size_out, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 (off_t)a.token);
		if (p == MAP_FAILED) {
			fprintf(stderr, "kheap-hold: mmap: %s\n", strerror(errno));
			return 1;
		}
		close(fd);	/* the mapping alone keeps the module busy */
	}
	len += snprintf(text + len, sizeof(text) - len, "%d\n", (int)getpid());
	if (!strcmp(argv[1], "dmabuf")) {
		long pg = sysconf(_SC_PAGESIZE);
		struct kheap_alloc a = { .size = 4 * pg };
		struct kheap_export e = { .offset = pg, .length = 2 * pg,
					  .flags = O_RDWR | O_CLOEXEC };

		if (ioctl(fd, KHEAP_IOC_ALLOC, &a)) {
			fprintf(stderr, "kheap-hold: ALLOC: %s\n", strerror(errno));
			return 1;
		}
		e.token = a.token;
		if (ioctl(fd, KHEAP_IOC_EXPORT, &e)) {
			fprintf(stderr, "kheap-hold: EXPORT: %s\n", strerror(errno));
			return 1;
		}
		close(fd);	/* the dma-buf alone holds the chunk */
		len += snprintf(text + len, sizeof(text) - len, "%llu %llu\n",
				(unsigned long long)(a.phys + pg),
				(unsigned long long)(2 * pg));
	}
	if (chunks) {
		for (int i = 3; i < argc; i++) {
			struct kheap_alloc *a = &held[i - 3];
			const char *size = argv[i][0] == '-' ? argv[i] + 1 : argv[i];

			memset(a, 0, sizeof(*a));
			a->size = strtoull(size, NULL, 0);
			if (ioctl(fd, KHEAP_IOC_ALLOC, a)) {
				fprintf(stderr, "kheap-hold: ALLOC %s: %s\n", size, strerror(errno));
				return 1;
			}
		}
		for (int i = 3; i < argc; i++) {
			struct kheap_alloc *a = &held[i - 3];

			if (argv[i][0] == '-') {
				if (ioctl(fd, KHEAP_IOC_FREE, &(struct kheap_free){ .token = a->token })) {
					fprintf(stderr, "kheap-hold: FREE: %s\n", strerror(errno));
					return 1;
				}
				continue;
			}
			len += snprintf(text + len, sizeof(text) - len, "%llu %llu\n",
					(unsigned long long)a->phys,
					(unsigned long long)a->size_out);
		}
	}
	/* One write, so that a reader never sees half of it. */
	ready = fopen(argv[2], "w");
	if (!ready || fputs(text, ready) < 0 || fclose(ready)) {
		fprintf(stderr, "kheap-hold: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	while (!stop)
		sigsuspend(&old);
	return 0;
}
