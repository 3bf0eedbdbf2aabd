// SPDX-License-Identifier: MIT
/*
 * test_atfork.c - other libraries' pthread_atfork handlers may allocate.
 *
 * Two sets of handlers allocate and free in prepare, parent and child:
 * "early" ones, registered by a constructor that runs before libkheap's
 * (so kheap's prepare runs before theirs, holding the heap lock, and its
 * child handler after theirs), and "late" ones registered in main (the
 * usual case: kheap's prepare runs last, its child handler first).
 * fork() must not deadlock, every block a child handler allocates must be
 * the child's own (and the inherited ones, private copies, its own too),
 * and both heaps must stay sound.  A thread keeps allocating meanwhile.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ktap.h"

#define FAKE_PHYS	0x1d5600000ull	/* not 1 GiB aligned */
#define MIB		((size_t)1 << 20)

static int armed;
static int order_errors;

struct handler_blocks {
	void *prepare, *parent, *child;
};
static struct handler_blocks early, late;

/* An allocation and a free on each path: small, medium, large, huge. */
static void *churn(void)
{
	void *a = kheap_malloc(48), *b = kheap_malloc(5000);
	void *c = kheap_calloc(1, 300000), *d = kheap_malloc(10 * MIB);

	kheap_free(b);
	kheap_free(c);
	kheap_free(d);
	return a;
}

static void early_prepare(void)
{
	if (!armed)
		return;
	/* registered before kheap's: runs after kheap's prepare */
	order_errors += !kh_in_fork;
	early.prepare = churn();
}

static void early_parent(void)
{
	if (!armed)
		return;
	order_errors += !kh_in_fork;	/* before kheap's parent handler */
	early.parent = churn();
}

static void early_child(void)
{
	if (!armed)
		return;
	order_errors += !kh_in_fork;	/* before kheap's child handler */
	early.child = churn();
}

static void late_prepare(void)
{
	if (!armed)
		return;
	order_errors += kh_in_fork;	/* before kheap's prepare */
	late.prepare = churn();
}

static void late_parent(void)
{
	if (!armed)
		return;
	order_errors += kh_in_fork;
	late.parent = churn();
}

static void late_child(void)
{
	if (!armed)
		return;
	order_errors += kh_in_fork;
	late.child = churn();
}

/* Before libkheap's constructor (default priority). */
__attribute__((constructor(101))) static void register_early(void)
{
	pthread_atfork(early_prepare, early_parent, early_child);
}

static int own_block(const void *p)
{
	uintptr_t v = (uintptr_t)p;

	return p && v - khm.lo < khm.span &&
	       !(khm.kind[gran_of(v)] & K_FOREIGN) &&
	       *live_of(v) == LIVE_USED;
}

static int stop;

static void *spinner(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
		kheap_free(kheap_malloc(3000));
	return NULL;
}

/* The scenario, in a process of its own so a deadlock is a timeout. */
static int scenario(void)
{
	pthread_t t;
	int bad = 0, status = -1;
	pid_t pid;

	if (kheap__use_provider(kheap_region_provider(128 * MIB, FAKE_PHYS)))
		return 10;
	pthread_create(&t, NULL, spinner, NULL);
	for (int round = 0; round < 3; round++) {
		void *mine = kheap_malloc(700);

		memset(&early, 0, sizeof(early));
		memset(&late, 0, sizeof(late));
		armed = 1;
		pid = fork();
		if (pid == 0) {
			int cbad = 0;

			armed = 0;
			/* the child handlers' blocks are the child's own */
			cbad |= !own_block(early.child) || !own_block(late.child);
			/* the prepare handlers' are inherited: the child's
			 * private copies, its own to free */
			cbad |= !own_block(early.prepare) ||
				!own_block(late.prepare) || !own_block(mine);
			cbad |= kheap__check() != 0;
			kheap_free(early.child);
			kheap_free(late.child);
			kheap_free(mine);	/* inherited: the child's copy */
			kheap_free(early.prepare);
			kheap_free(late.prepare);
			cbad |= kheap__check() != 0;
			cbad |= order_errors != 0;
			_exit(cbad);
		}
		armed = 0;
		if (pid < 0)
			return 11;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("# round %d: child status %#x\n", round, status);
			bad = 1;
		}
		/* the parent's handlers' blocks are live here */
		bad |= !own_block(early.prepare) || !own_block(late.prepare);
		bad |= !own_block(early.parent) || !own_block(late.parent);
		kheap_free(early.prepare);
		kheap_free(late.prepare);
		kheap_free(early.parent);
		kheap_free(late.parent);
		kheap_free(mine);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	bad |= kheap__check() != 0;
	if (order_errors)
		printf("# %d handlers ran in an unexpected order\n",
		       order_errors);
	return bad || order_errors;
}

static void test_handlers_allocate(void)
{
	int status = -1;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		alarm(60);	/* a deadlocked fork dies of SIGALRM */
		_exit(scenario());
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "status %#x%s", status,
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ?
	       " (deadlock)" : "");
}

int main(void)
{
	pthread_atfork(late_prepare, late_parent, late_child);
	ktap_plan(1);
	RUN(test_handlers_allocate);
	return ktap_finish();
}
