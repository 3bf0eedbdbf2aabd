// SPDX-License-Identifier: MIT
/*
 * guest_retain.c - what a process keeps of the pool without using it,
 * through the real /dev/kheap (run in a guest with the module loaded).
 *
 * The pool is shared: memory one process keeps idle another cannot have.
 * libkheap's guarantee (kheap.h, kheap_trim): after a process frees
 * everything it holds at most its spare bound (min(pool / 8, 64 MiB)) plus
 * the arenas its threads' caches keep alive, with no call from it; and
 * nothing once it calls kheap_trim().  Checked here across processes, with
 * the kernel's accounting (INFO, through kheap_stats' pool_free):
 *  1. process A fills the pool with blocks of every kind, frees them all
 *     and idles; another process B then gets all of the pool but what A
 *     holds, and A holds at most its bound;
 *  2. A calls kheap_trim(): A holds nothing and B gets the rest;
 *  3. a fork child does not pin its parent's cached chunk: the parent
 *     trims while the child lives and the pool gets the chunk back.
 * SKIPs (exit 4) without the device.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kheap.h"
#include "ktap.h"

#define MIB ((size_t)1 << 20)

/* One line of a pipe: a command to A, or A's statistics back. */
struct msg {
	int cmd;
	struct kheap_stats st;
};

enum { CMD_REPORT = 1, CMD_TRIM, CMD_EXIT };

static int to_a[2], from_a[2];

static int send_msg(int fd, const struct msg *m)
{
	return write(fd, m, sizeof(*m)) == sizeof(*m) ? 0 : -1;
}

static int recv_msg(int fd, struct msg *m)
{
	return read(fd, m, sizeof(*m)) == sizeof(*m) ? 0 : -1;
}

/* Sizes of every kind: small, thread-cached medium, TLSF, dedicated. */
static size_t mixed_size(unsigned i, size_t arena)
{
	static const size_t small[] = { 24, 100, 700, 3000, 40000, 300000 };

	if (i % 16 == 15)
		return arena / 2 + (i % 3) * MIB;	/* dedicated */
	return small[i % 6];
}

/* Process A: fill, free everything, report, then do as told. */
static void process_a(void)
{
	struct kheap_stats st;
	struct msg m;
	size_t max = 1 << 20, n = 0;
	void **v = calloc(max, sizeof(void *));

	if (!v || kheap_stats(&st))
		_exit(2);
	while (n < max && (v[n] = kheap_malloc(mixed_size(n, st.arena_size))))
		n++;
	for (size_t i = 0; i < n; i++)
		kheap_free(v[i]);
	free(v);
	for (;;) {
		if (recv_msg(to_a[0], &m))
			_exit(3);
		if (m.cmd == CMD_EXIT)
			_exit(0);
		if (m.cmd == CMD_TRIM)
			kheap_trim();
		memset(&m.st, 0, sizeof(m.st));
		kheap_stats(&m.st);
		m.st.reserved[0] = n;	/* how many blocks A had */
		if (send_msg(from_a[1], &m))
			_exit(3);
	}
}

static int ask_a(int cmd, struct kheap_stats *st)
{
	struct msg m = { .cmd = cmd };

	if (send_msg(to_a[1], &m) || recv_msg(from_a[0], &m))
		return -1;
	*st = m.st;
	return 0;
}

/* B: 1 MiB blocks until the pool is out; their count.  The blocks stay
 * in v (up to max). */
static size_t take_all(void **v, size_t max, size_t *n)
{
	size_t got = 0;

	while (*n < max && (v[*n] = kheap_malloc(MIB)) != NULL) {
		((char *)v[*n])[0] = 1;
		(*n)++;
		got++;
	}
	return got;
}

static void free_all(void **v, size_t *n)
{
	while (*n)
		kheap_free(v[--*n]);
}

static void test_cross_process(void)
{
	struct kheap_stats a, b;
	size_t bound, nv = 0, max = 1 << 16, got, got2;
	void **v = calloc(max, sizeof(void *));
	pid_t pid;
	int status = -1;

	CHECK(v != NULL && pipe(to_a) == 0 && pipe(from_a) == 0);
	pid = fork();
	if (pid == 0)
		process_a();
	CHECK(pid > 0);
	CHECK(ask_a(CMD_REPORT, &a) == 0);
	bound = a.pool_size / 8 < 64 * MIB ? a.pool_size / 8 : 64 * MIB;
	ktap_diag("A filled the pool with %llu blocks and freed them: holds "
		  "%llu bytes in %llu chunks (%llu cached, %llu in its "
		  "thread cache), arena %llu, spare bound %zu, pool free %llu",
		  (unsigned long long)a.reserved[0],
		  (unsigned long long)a.bytes_held,
		  (unsigned long long)a.chunks_held,
		  (unsigned long long)a.bytes_chunks_cached,
		  (unsigned long long)a.bytes_cached,
		  (unsigned long long)a.arena_size, bound,
		  (unsigned long long)a.pool_free);
	CHECK(a.reserved[0] > 100 && a.bytes_in_use == 0);
	/* single-threaded A: its spare memory and the arena its cache
	 * keeps alive */
	CHECK(a.bytes_held <= bound + a.arena_size);
	CHECK(a.bytes_held + a.pool_free <= a.pool_size);

	/* B gets everything else but its own last arena's slack */
	got = take_all(v, max, &nv);
	CHECK(kheap_stats(&b) == 0);
	ktap_diag("B got %zu MiB while A idles; B holds %llu, pool free %llu",
		  got, (unsigned long long)b.bytes_held,
		  (unsigned long long)b.pool_free);
	CHECK(got * MIB >= b.pool_size - a.bytes_held - b.arena_size);
	CHECK(errno == ENOMEM);

	/* A trims: it holds nothing, and B gets the rest */
	CHECK(ask_a(CMD_TRIM, &a) == 0);
	CHECK(a.bytes_held == 0 && a.chunks_held == 0);
	got2 = take_all(v, max, &nv);
	CHECK(kheap_stats(&b) == 0);
	ktap_diag("after A's kheap_trim: A holds %llu, B got %zu MiB more, "
		  "%zu MiB in all; pool free %llu",
		  (unsigned long long)a.bytes_held, got2, nv,
		  (unsigned long long)b.pool_free);
	CHECK(nv * MIB >= b.pool_size - b.arena_size);
	free_all(v, &nv);
	kheap_trim();

	{
		struct msg m = { .cmd = CMD_EXIT };

		CHECK(send_msg(to_a[1], &m) == 0);
	}
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "A: %#x",
	       status);
	close(to_a[0]);
	close(to_a[1]);
	close(from_a[0]);
	close(from_a[1]);
	free(v);
}

/*
 * A fork child must not pin its parent's cached chunk: when the parent
 * gives it back, the pool has it, though the child lives on.
 */
static void test_fork_child_unpins(void)
{
	struct kheap_stats before, after;
	size_t big, trimmed;
	unsigned char *p, *keep;
	int go[2], ready[2], status = -1;
	char c = 0;
	pid_t pid;

	CHECK(kheap_stats(&before) == 0);
	big = before.arena_size / 2 + MIB;	/* dedicated, cacheable */
	keep = kheap_malloc(100);
	p = kheap_malloc(big);
	CHECK(keep && p);
	if (!keep || !p)
		return;
	memset(p, 0x5a, big);		/* every page the parent's */
	kheap_free(p);
	CHECK(kheap_stats(&before) == 0 && before.chunks_cached == 1);
	CHECK(pipe(go) == 0 && pipe(ready) == 0);
	pid = fork();
	if (pid == 0) {
		keep[0] = 1;		/* the child uses its heap */
		c = 1;
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	CHECK(pid > 0 && read(ready[0], &c, 1) == 1);
	CHECK(kheap_stats(&before) == 0);
	trimmed = kheap_trim();
	CHECK(kheap_stats(&after) == 0);
	ktap_diag("child alive: parent trimmed %zu bytes, pool free %llu -> "
		  "%llu", trimmed, (unsigned long long)before.pool_free,
		  (unsigned long long)after.pool_free);
	CHECK(trimmed >= big);
	CHECK(after.pool_free >= before.pool_free + big);
	c = 0;
	CHECK(write(go[1], &c, 1) == 1);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %#x",
	       status);
	kheap_free(keep);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	const char *dev = getenv("KHEAP_DEVICE");
	struct kheap_stats st;

	if (!dev || !*dev)
		dev = "/dev/kheap";
	if (access(dev, F_OK))
		ktap_skip_all("no kheap device (module not loaded?)");
	ktap_plan(2);
	/* A must be the first to open the device: nothing allocated here
	 * before its fork. */
	RUN(test_cross_process);
	RUN(test_fork_child_unpins);
	if (kheap_stats(&st) == 0)
		ktap_diag("pool %llu bytes, %llu free at the end",
			  (unsigned long long)st.pool_size,
			  (unsigned long long)st.pool_free);
	return ktap_finish();
}
