/* SPDX-License-Identifier: MIT */
/*
 * ktap.h - minimal KTAP/kselftest-style output for the libkheap tests.
 *
 * Each test program prints "TAP version 13", "1..N", one "ok"/"not ok"
 * line per test and exactly one "# Totals: ..." line, and exits 0 when
 * all passed, 1 when any failed, 4 when the whole program was skipped.
 */
#ifndef KHEAP_KTAP_H
#define KHEAP_KTAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int ktap_num, ktap_pass, ktap_fail, ktap_skip;
static int ktap_case_failed;

#define KSFT_PASS 0
#define KSFT_FAIL 1
#define KSFT_SKIP 4

static inline void ktap_plan(int n)
{
	printf("TAP version 13\n1..%d\n", n);
	fflush(stdout);
}

/* Inside a test case: record a failure with its location. */
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		if (ktap_case_failed++ < 10)				\
			printf("# %s:%d: CHECK(%s) failed\n",		\
			       __FILE__, __LINE__, #cond);		\
	}								\
} while (0)

#define CHECKF(cond, ...) do {						\
	if (!(cond)) {							\
		if (ktap_case_failed++ < 10) {				\
			printf("# %s:%d: CHECK(%s) failed: ",		\
			       __FILE__, __LINE__, #cond);		\
			printf(__VA_ARGS__);				\
			printf("\n");					\
		}							\
	}								\
} while (0)

static inline void ktap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Run one test case: a function that uses CHECK. */
#define RUN(fn) do {							\
	ktap_case_failed = 0;						\
	fn();								\
	ktap_num++;							\
	if (ktap_case_failed) {						\
		ktap_fail++;						\
		printf("not ok %d %s\n", ktap_num, #fn);		\
	} else {							\
		ktap_pass++;						\
		printf("ok %d %s\n", ktap_num, #fn);			\
	}								\
	fflush(stdout);							\
} while (0)

static inline void ktap_skip_case(const char *name, const char *why)
{
	ktap_num++;
	ktap_skip++;
	printf("ok %d %s # SKIP %s\n", ktap_num, name, why);
	fflush(stdout);
}

static inline int ktap_finish(void)
{
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n",
	       ktap_pass, ktap_fail, ktap_skip);
	fflush(stdout);
	return ktap_fail ? KSFT_FAIL : KSFT_PASS;
}

/* The whole program cannot run here. */
static inline __attribute__((noreturn)) void ktap_skip_all(const char *why)
{
	printf("TAP version 13\n1..0 # SKIP %s\n", why);
	printf("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0\n");
	fflush(stdout);
	exit(KSFT_SKIP);
}

/* xorshift64*: deterministic, seedable. */
struct rng {
	unsigned long long s;
};

static inline unsigned long long rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ull;
}

static inline unsigned long long rng_below(struct rng *r, unsigned long long n)
{
	return rng_next(r) % n;
}

/* Log-uniform in [lo, hi]. */
static inline size_t rng_logu(struct rng *r, size_t lo, size_t hi)
{
	double u = (double)(rng_next(r) >> 11) / 9007199254740992.0;
	double l = __builtin_log((double)lo), h = __builtin_log((double)hi + 1);
	size_t v = (size_t)__builtin_exp(l + u * (h - l));

	return v < lo ? lo : v > hi ? hi : v;
}

#endif
