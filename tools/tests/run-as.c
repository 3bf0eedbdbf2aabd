// SPDX-License-Identifier: GPL-2.0-only
/*
 * run-as: run a command as another user id, without capabilities, for the
 * unprivileged cases of kheapctl's guest tests (busybox su wants a setuid
 * binary and a password database).   Usage: run-as UID COMMAND [ARGS...]
 */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	uid_t uid;

	if (argc < 3) {
		fprintf(stderr, "usage: run-as UID COMMAND [ARGS...]\n");
		return 2;
	}
	uid = (uid_t)strtoul(argv[1], NULL, 10);
	if (setgroups(0, NULL) || setgid((gid_t)uid) || setuid(uid)) {
		fprintf(stderr, "run-as: %s\n", strerror(errno));
		return 1;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "run-as: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
