/* SPDX-License-Identifier: MIT */
/*
 * lock.h - a small futex mutex (three states: free, locked, contended).
 *
 * While the process has a single thread (glibc's __libc_single_threaded)
 * no atomic read-modify-write is needed, as glibc's own malloc does; the
 * flag only turns false inside pthread_create, never while this thread
 * holds a lock.
 */
#ifndef KHEAP_LOCK_H
#define KHEAP_LOCK_H

#include <linux/futex.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kheap_lock {
	int state;	/* 0 free, 1 locked, 2 locked with waiters */
};

#define KHEAP_LOCK_INIT { 0 }

static inline void kheap_lock_init(struct kheap_lock *l)
{
	__atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
}

static __attribute__((noinline, unused)) void kheap_lock_slow(struct kheap_lock *l)
{
	int c;

	for (int i = 0; i < 64; i++) {
		__builtin_ia32_pause();
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

	if (__libc_single_threaded) {
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
	if (__libc_single_threaded) {
		__atomic_store_n(&l->state, 0, __ATOMIC_RELEASE);
		return;
	}
	if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
		syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
}

#endif
