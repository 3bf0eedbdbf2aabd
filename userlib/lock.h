/* SPDX-License-Identifier: MIT */
/*
 * lock.h - a small futex mutex (three states: free, locked, contended).
 *
 * While the process has a single thread (glibc's __libc_single_threaded)
 * no atomic read-modify-write is needed, as glibc's own malloc does; the
 * flag only turns false inside pthread_create, never while this thread
 * holds a lock.  A C library without the flag (glibc before 2.32, musl)
 * always takes the atomic path.
 */
#ifndef KHEAP_LOCK_H
#define KHEAP_LOCK_H

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Two #ifs: a preprocessor without __has_include must not parse the call. */
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define KHEAP_HAVE_SINGLE_THREADED 1
#endif
#endif

#ifdef KHEAP_HAVE_SINGLE_THREADED
#define kheap_single_threaded()	(__libc_single_threaded != 0)
#else
#define kheap_single_threaded()	0
#endif

/* A spin-wait hint: pause (x86), yield (arm64), else a compiler barrier. */
static inline void kheap_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

struct kheap_lock {
	int state;	/* 0 free, 1 locked, 2 locked with waiters */
};

#define KHEAP_LOCK_INIT { 0 }

static inline void kheap_lock_init(struct kheap_lock *l)
{
	__atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
}

/*
 * Spin-wait hints before a waiter sleeps in futex(2): about 20 us on the
 * AMD EPYC of bench/README.md (20 ns a pause).  The heap lock is held
 * for a few microseconds at a time (a batch carved from or freed into
 * TLSF, in memory no cache holds), longer than 64 spins (1.3 us) last;
 * every sleep then costs both sides a system call and the sleeper a
 * wake-up latency far longer than the wait.  1024 rather than 64 made
 * 2 to 43 times fewer futex calls in kbench's threaded workloads and
 * their 4- and 8-thread runs 2-23 % faster (bench/README.md, "The heap
 * lock's spin").
 */
#define KHEAP_LOCK_SPINS	1024

static __attribute__((noinline, unused)) void kheap_lock_slow(struct kheap_lock *l)
{
	int c;

	for (int i = 0; i < KHEAP_LOCK_SPINS; i++) {
		kheap_cpu_relax();
		c = 0;
		if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&l->state, &c, 1, 0,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
	}
	c = __atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE);
	while (c != 0) {
		syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL,
			NULL, 0);
		c = __atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE);
	}
}

static inline void kheap_lock(struct kheap_lock *l)
{
	int c = 0;

	if (kheap_single_threaded()) {
		__atomic_store_n(&l->state, 1, __ATOMIC_RELAXED);
		return;
	}
	if (__builtin_expect(__atomic_compare_exchange_n(&l->state, &c, 1, 0,
							  __ATOMIC_ACQUIRE,
							  __ATOMIC_RELAXED), 1))
		return;
	kheap_lock_slow(l);
}

static inline void kheap_unlock(struct kheap_lock *l)
{
	if (kheap_single_threaded()) {
		__atomic_store_n(&l->state, 0, __ATOMIC_RELEASE);
		return;
	}
	if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
		syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
}

#endif
