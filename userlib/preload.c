// SPDX-License-Identifier: MIT
/*
 * preload.c - the C library's malloc family, served by kheap
 * (libkheap-preload.so, for LD_PRELOAD; tools/kheap-run sets it).
 *
 * Every heap byte an unmodified program asks for comes from kheap, so it
 * is physically contiguous and kheap_phys() tells its address.  glibc
 * supports this replacement: its own calls (strdup, getline, fopen, the
 * dynamic loader after relocation, thread stacks' TLS) go through these
 * symbols too.
 *
 * What else can reach free() and realloc() is a pointer kheap never gave
 * out ("foreign"): one glibc's allocator made because kheap could not
 * (fallback mode, below), or while kheap was starting and the start itself
 * needed memory, or one a program got from __libc_malloc directly.  The
 * library knows its window, one virtual range that nothing else can be
 * mapped into, so one subtraction and one compare tell them apart; foreign
 * pointers go to glibc's own functions (__libc_free and friends, exported
 * for exactly this), or, for realloc, move into kheap.
 *
 * When kheap cannot serve a request (pool exhausted, no device), the
 * answer is NULL with errno ENOMEM, as for any malloc; with
 * KHEAP_PRELOAD_FALLBACK=1 glibc serves it instead and the fallback is
 * counted.  KHEAP_PRELOAD_STATS prints the counters at exit.  Both are
 * described in man/kheap-run.1.
 *
 * The library's own symbols (kheap_malloc, kheap_phys, ...) are exported
 * too, with libkheap.so.1's versions, so a program linked with -lkheap
 * that runs under the preload uses this one heap (its kheap_malloc blocks
 * may then even be given to free()).
 */
#define _GNU_SOURCE		/* RTLD_NEXT, program_invocation_short_name */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* glibc's allocator, exported under these names since forever. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

#define PUBLIC __attribute__((visibility("default")))

/* Counters, printed at exit (KHEAP_PRELOAD_STATS); relaxed atomics. */
static struct {
	uint64_t fallback;	/* requests glibc served because kheap failed */
	uint64_t fallback_bytes;
	uint64_t enomem;	/* requests answered NULL because kheap failed */
	uint64_t early;		/* requests glibc served while kheap started */
	uint64_t foreign_free;	/* frees of glibc's blocks */
	uint64_t foreign_realloc;	/* reallocs of glibc's blocks */
} cnt;

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* Settings, read once from the environment (getenv allocates nothing). */
static struct {
	int fallback;
	const char *stats;	/* NULL: none; "1": stderr; else a file */
	int stats_fd;		/* a copy of the first stderr, for "1" */
} cfg;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

static void read_config_once(void)
{
	const char *s;

	s = getenv("KHEAP_PRELOAD_FALLBACK");
	cfg.fallback = s && *s && strcmp(s, "0") != 0;
	s = getenv("KHEAP_PRELOAD_STATS");
	cfg.stats = s && *s && strcmp(s, "0") != 0 ? s : NULL;
	/* Programs close stderr at exit (gnulib's close_stdout does) before
	 * the report: keep the one they started with. */
	cfg.stats_fd = cfg.stats && !strcmp(cfg.stats, "1") ?
		       fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 64) : -1;
}

static void read_config(void)
{
	pthread_once(&cfg_once, read_config_once);
}

/*
 * Starting the heap (opening the device, reserving the window) runs libc
 * code; should any of it allocate, that allocation is glibc's ("early"),
 * not a second start inside the first.  A failed start (no device) is
 * not retried: the device said once why (device.c), and every request
 * after that fails or falls back.
 */
static __thread int t_starting __attribute__((tls_model("initial-exec")));
static int start_err;

#ifdef KHEAP_PRELOAD_REGION
/*
 * Test build only (tests/libkheap-preload-region.so, never installed):
 * the pool is an ordinary mapping (region.c) of KHEAP_PRELOAD_TEST_POOL
 * MiB (default 64), so the interposition itself is tested on a host
 * without /dev/kheap.
 */
static void choose_provider(void)
{
	const char *s = getenv("KHEAP_PRELOAD_TEST_POOL");
	size_t mib = s && *s ? strtoul(s, NULL, 10) : 64;

	kh.prov = kheap_region_provider((mib ? mib : 64) << 20, 0x142a00000ull);
}

/* Before main, for a program whose first call is kheap_malloc (the
 * preload's export), not malloc. */
__attribute__((constructor)) static void region_first(void)
{
	heap_lock();
	if (!kh.prov)
		choose_provider();
	heap_unlock();
}
#else
static void choose_provider(void)
{
}
#endif

static __attribute__((noinline)) int start(void)
{
	int err;

	if (t_starting)
		return -EBUSY;
	err = __atomic_load_n(&start_err, __ATOMIC_RELAXED);
	if (err)
		return err;
	t_starting = 1;
	read_config();
	heap_lock();
	if (!kh.prov)
		choose_provider();
	heap_unlock();
	err = heap_ensure();
	if (err)
		__atomic_store_n(&start_err, err, __ATOMIC_RELAXED);
	t_starting = 0;
	return err;
}

static inline int ready(void)
{
	return likely(__atomic_load_n(&kh.ready, __ATOMIC_ACQUIRE)) ||
	       start() == 0;
}

/* A block of ours?  Nothing else is ever mapped inside the window.  The
 * span first: its release store in heap_init publishes lo. */
static inline int is_kheap(const void *p)
{
	size_t span = __atomic_load_n(&khm.span, __ATOMIC_ACQUIRE);

	return (uintptr_t)p - khm.lo < span;
}

/* glibc's malloc_usable_size, for its own blocks. */
static size_t glibc_usable_size(void *p)
{
	static size_t (*real)(void *);
	size_t (*fn)(void *) = __atomic_load_n(&real, __ATOMIC_ACQUIRE);

	if (!fn) {
		fn = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
		if (!fn)
			return 0;
		__atomic_store_n(&real, fn, __ATOMIC_RELEASE);
	}
	return fn(p);
}

/*
 * kheap could not serve a request: glibc serves it in fallback mode (and
 * it is counted), otherwise NULL with ENOMEM.  A request made while the
 * heap was starting always goes to glibc.
 */
static int use_glibc(size_t n)
{
	if (t_starting) {
		count(&cnt.early, 1);
		return 1;
	}
	read_config();
	if (cfg.fallback) {
		count(&cnt.fallback, 1);
		count(&cnt.fallback_bytes, n);
		return 1;
	}
	count(&cnt.enomem, 1);
	errno = ENOMEM;
	return 0;
}

PUBLIC void *malloc(size_t n)
{
	void *p;

	if (likely(ready()) && likely((p = kheap_malloc(n)) != NULL))
		return p;
	return use_glibc(n) ? __libc_malloc(n) : NULL;
}

PUBLIC void free(void *p)
{
	int saved;

	if (likely(is_kheap(p))) {
		/* Releasing a chunk makes system calls; free keeps errno. */
		saved = errno;
		kheap_free(p);
		errno = saved;
	} else if (p) {
		count(&cnt.foreign_free, 1);
		__libc_free(p);
	}
}

/* Programs linked before glibc 2.26 may still call it. */
PUBLIC void cfree(void *p)
{
	free(p);
}

PUBLIC void *calloc(size_t nmemb, size_t size)
{
	size_t n;
	void *p;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	if (likely(ready()) && likely((p = kheap_calloc(nmemb, size)) != NULL))
		return p;
	return use_glibc(n) ? __libc_calloc(nmemb, size) : NULL;
}

/* A glibc block moves into kheap (it keeps living in glibc only if kheap
 * cannot take it and fallback mode says so). */
static void *foreign_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	count(&cnt.foreign_realloc, 1);
	if (!n) {
		__libc_free(p);
		return NULL;
	}
	old = glibc_usable_size(p);
	if (old && ready() && (q = kheap_malloc(n)) != NULL) {
		memcpy(q, p, old < n ? old : n);
		__libc_free(p);
		return q;
	}
	return use_glibc(n) ? __libc_realloc(p, n) : NULL;
}

PUBLIC void *realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	if (unlikely(!is_kheap(p)))
		return foreign_realloc(p, n);
	q = kheap_realloc(p, n);
	if (likely(q != NULL) || !n)
		return q;
	/* kheap has no room for the larger block; p is untouched. */
	if (!use_glibc(n))
		return NULL;
	q = __libc_malloc(n);
	if (!q)
		return NULL;
	old = kheap_malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

PUBLIC void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

/*
 * glibc's memalign (and aligned_alloc, an alias of it in glibc 2.36):
 * alignments up to 16 are malloc's own, others are rounded up to a power
 * of two, above SIZE_MAX / 2 + 1 is EINVAL.  kheap aligns up to 1 GiB
 * (2 MiB when the kernel withholds physical addresses); beyond, it says
 * EINVAL, and so does this unless fallback mode lets glibc try.
 */
static void *aligned(size_t align, size_t n)
{
	void *p;

	if (align <= TLSF_ALIGN)
		return malloc(n);
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (align & (align - 1))
		align = (size_t)1 << (64 - __builtin_clzll(align));
	if (likely(ready())) {
		p = kheap_aligned_alloc(align, n);
		if (p)
			return p;
		/* An alignment kheap cannot give is not a full pool. */
		if (errno == EINVAL && !cfg.fallback)
			return NULL;
	}
	return use_glibc(n) ? __libc_memalign(align, n) : NULL;
}

PUBLIC void *memalign(size_t align, size_t n)
{
	return aligned(align, n);
}

PUBLIC void *aligned_alloc(size_t align, size_t n)
{
	return aligned(align, n);
}

PUBLIC int posix_memalign(void **memptr, size_t align, size_t n)
{
	int saved = errno, err;
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = aligned(align, n);
	err = errno;
	errno = saved;
	if (!p)
		return err == EINVAL ? EINVAL : ENOMEM;
	*memptr = p;
	return 0;
}

PUBLIC void *valloc(size_t n)
{
	return aligned((size_t)sysconf(_SC_PAGESIZE), n);
}

PUBLIC void *pvalloc(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), r;

	if (__builtin_add_overflow(n, pg - 1, &r)) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned(pg, r & ~(pg - 1));
}

PUBLIC size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	if (likely(is_kheap(p)))
		return kheap_malloc_usable_size(p);
	return glibc_usable_size(p);
}

/*
 * malloc_trim(3): kheap gives back what it caches (kheap_trim), and
 * glibc trims its own heap, which holds the blocks made before the
 * preload started and the fallback's.  1 when either gave memory back.
 */
PUBLIC int malloc_trim(size_t pad)
{
	static int (*real)(size_t);
	int (*fn)(size_t) = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	int released = kheap_trim() > 0;

	if (!fn) {
		fn = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
		if (fn)
			__atomic_store_n(&real, fn, __ATOMIC_RELEASE);
	}
	if (fn && fn(pad))
		released = 1;
	return released;
}

/* ---- KHEAP_PRELOAD_STATS ---- */

static void report(void)
{
	struct kheap_stats st;
	char line[640];
	int fd, len, own = 0;

	read_config();
	if (!cfg.stats)
		return;
	memset(&st, 0, sizeof(st));
	if (__atomic_load_n(&kh.ready, __ATOMIC_ACQUIRE))
		kheap_stats(&st);
	/* One write per line: concurrent processes append whole lines. */
	len = snprintf(line, sizeof(line),
		       "kheap-preload: pid=%d comm=%s started=%d "
		       "peak_held=%llu peak_in_use=%llu bytes_held=%llu "
		       "failed_requests=%llu fallback=%llu fallback_bytes=%llu "
		       "enomem=%llu early=%llu foreign_free=%llu "
		       "foreign_realloc=%llu\n",
		       (int)getpid(), program_invocation_short_name,
		       !!__atomic_load_n(&kh.ready, __ATOMIC_ACQUIRE),
		       (unsigned long long)st.peak_held,
		       (unsigned long long)st.peak_in_use,
		       (unsigned long long)st.bytes_held,
		       (unsigned long long)st.failed_requests,
		       (unsigned long long)cnt.fallback,
		       (unsigned long long)cnt.fallback_bytes,
		       (unsigned long long)cnt.enomem,
		       (unsigned long long)cnt.early,
		       (unsigned long long)cnt.foreign_free,
		       (unsigned long long)cnt.foreign_realloc);
	if (len <= 0)
		return;
	if (len >= (int)sizeof(line))
		len = sizeof(line) - 1;
	if (!strcmp(cfg.stats, "1")) {
		fd = cfg.stats_fd;
	} else {
		fd = open(cfg.stats, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			  0644);
		if (fd < 0)
			return;
		own = 1;
	}
	if (write(fd, line, (size_t)len) < 0)
		len = 0;	/* nowhere left to say it */
	if (own)
		close(fd);
}

/* At exit, in the dynamic loader's finaliser pass: after the program's
 * atexit handlers and its own destructors. */
__attribute__((destructor)) static void preload_exit(void)
{
	report();
}
