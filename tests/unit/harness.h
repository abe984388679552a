/* A tiny unit-test harness: CHECK records a failure with its line and goes on; each test file's
 * main ends with TEST_REPORT(), which prints "N passed, N failed" and sets the exit code. */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (cond) {                                                              \
			test_passed++;                                                   \
		} else {                                                                 \
			test_failed++;                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                  \
	do {                                                                             \
		const char *a_ = (a), *b_ = (b);                                         \
		if (a_ && b_ && strcmp(a_, b_) == 0) {                                   \
			test_passed++;                                                   \
		} else {                                                                 \
			test_failed++;                                                   \
			fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, \
				__LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
		}                                                                        \
	} while (0)

#define TEST_REPORT()                                                                    \
	do {                                                                             \
		printf("%s: %d passed, %d failed\n", __FILE__, test_passed, test_failed);  \
		return test_failed ? 1 : 0;                                              \
	} while (0)

#endif
