/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The last test of every kheap selftest program: nothing the tests above
 * did made the kernel log a warning, BUG or oops.
 *
 * Include after kselftest_harness.h and kheap_lib.h, in a program that
 * opens "static int kmsg_fd" with kheap_kmsg_open() before its first
 * test, and put KHEAP_KERNEL_LOG_TEST() last, right before
 * TEST_HARNESS_MAIN.  Its argument is run after the check: further
 * expectations on what the program must leave behind, or nothing.
 */
#ifndef KHEAP_KMSG_TEST_H
#define KHEAP_KMSG_TEST_H

static void kheap_kmsg_report(const char *msg, void *arg)
{
	(void)arg;
	ksft_print_msg("kernel: %s\n", msg);
}

#define KHEAP_KERNEL_LOG_TEST(...)					\
FIXTURE(kernel_log) {							\
	int unused;							\
};									\
									\
FIXTURE_SETUP(kernel_log)						\
{									\
}									\
									\
FIXTURE_TEARDOWN(kernel_log)						\
{									\
}									\
									\
TEST_F(kernel_log, no_warnings)						\
{									\
	int n;								\
									\
	if (kmsg_fd < 0)						\
		SKIP(return, "/dev/kmsg: %s", kheap_errname(kmsg_fd));	\
	n = kheap_kmsg_scan(kmsg_fd, kheap_kmsg_report, NULL);		\
	ASSERT_GE(n, 0) TH_LOG("reading /dev/kmsg: %s",			\
			       kheap_errname(n));			\
	EXPECT_EQ(0, n) TH_LOG("the kernel logged %d warnings or oopses", \
			       n);					\
	__VA_ARGS__							\
}

#endif /* KHEAP_KMSG_TEST_H */
