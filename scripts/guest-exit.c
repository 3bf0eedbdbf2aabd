// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-exit: end a QEMU guest and hand its status to the host.
 *
 * Writes STATUS to QEMU's isa-debug-exit port; QEMU then exits with
 * (STATUS << 1) | 1.  The host starts from "failed" and only a guest that
 * got here and wrote 0 makes QEMU exit with 1, so a guest that panics,
 * hangs or reboots can never look like a pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

#define DEBUG_EXIT_PORT 0xf4

int main(int argc, char **argv)
{
	unsigned long status = argc > 1 ? strtoul(argv[1], NULL, 0) : 0;

	if (ioperm(DEBUG_EXIT_PORT, 4, 1)) {
		perror("guest-exit: ioperm");
		return 1;
	}
	outl((unsigned int)status, DEBUG_EXIT_PORT);
	/* Only reached without an isa-debug-exit device. */
	fprintf(stderr, "guest-exit: no isa-debug-exit device\n");
	return 1;
}
