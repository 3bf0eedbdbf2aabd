/* SPDX-License-Identifier: MIT */
/*
 * debug.h - assertions on the allocator's paths, compiled in only with
 * KHEAP_DEBUG (the host test builds define it; the library proper does
 * not, so release paths pay nothing).  A failed assertion names itself
 * on stderr and aborts: the heap is corrupt and going on would spread it.
 */
#ifndef KHEAP_DEBUG_H
#define KHEAP_DEBUG_H

#ifdef KHEAP_DEBUG
#include <stdio.h>
#include <stdlib.h>

static inline __attribute__((noreturn, cold, unused))
void kh_assert_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "libkheap: %s:%d: assertion failed: %s\n", file,
		line, what);
	abort();
}

#define kh_assert(c)							\
	(__builtin_expect(!!(c), 1) ? (void)0 :				\
	 kh_assert_fail(#c, __FILE__, __LINE__))
#else
/* Not evaluated, but its variables count as used. */
#define kh_assert(c)	((void)sizeof(!(c)))
#endif

#endif
