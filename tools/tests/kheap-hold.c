// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheap-hold: keep the kheap module busy until SIGTERM, for the test of
 * `kheapctl unload` naming who holds it.
 *
 *   kheap-hold fd  READYFILE   keep /dev/kheap open
 *   kheap-hold map READYFILE   map one chunk, then close the descriptor,
 *                              so that only the mapping pins the module
 *
 * Writes its pid to READYFILE once it holds the device.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
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
	sigset_t block, old;
	FILE *ready;
	int fd;

	if (argc != 3 || (strcmp(argv[1], "fd") && strcmp(argv[1], "map"))) {
		fprintf(stderr, "usage: kheap-hold fd|map READYFILE\n");
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
	ready = fopen(argv[2], "w");
	if (!ready || fprintf(ready, "%d\n", (int)getpid()) < 0 || fclose(ready)) {
		fprintf(stderr, "kheap-hold: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	while (!stop)
		sigsuspend(&old);
	return 0;
}
