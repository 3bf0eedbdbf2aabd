// SPDX-License-Identifier: GPL-2.0-only
/*
 * kheap-info: print KHEAP_IOC_INFO as "name value" lines, for comparing
 * kheapctl's output with the device's own answer in the guest tests.
 * The device node may be given as the only argument.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kheap.h>

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/kheap";
	struct kheap_info in;
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "kheap-info: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	memset(&in, 0, sizeof(in));
	if (ioctl(fd, KHEAP_IOC_INFO, &in)) {
		fprintf(stderr, "kheap-info: KHEAP_IOC_INFO: %s\n", strerror(errno));
		return 1;
	}
	printf("abi_version %llu\n", (unsigned long long)in.abi_version);
	printf("pool_phys %llu\n", (unsigned long long)in.pool_phys);
	printf("pool_size %llu\n", (unsigned long long)in.pool_size);
	printf("page_size %llu\n", (unsigned long long)in.page_size);
	printf("free_bytes %llu\n", (unsigned long long)in.free_bytes);
	printf("largest_free %llu\n", (unsigned long long)in.largest_free);
	printf("chunks_in_use %llu\n", (unsigned long long)in.chunks_in_use);
	printf("pool_source %llu\n", (unsigned long long)in.pool_source);
	printf("max_phys %llu\n", (unsigned long long)in.max_phys);
	close(fd);
	return 0;
}
