/*
 * check.h - the smallest test harness that serves: CHECK() records a
 * failure with file:line and goes on; check_done() prints a summary line
 * and gives the exit status.  Every unit test is its own executable.
 */
#ifndef EXCHANGEFS_CHECK_H
#define EXCHANGEFS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed, check_run;

#define CHECK(cond) do { \
	check_run++; \
	if (!(cond)) { \
		check_failed++; \
		printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	check_run++; \
	if (!g_ || strcmp(g_, w_)) { \
		check_failed++; \
		printf("FAIL %s:%d: got \"%s\", want \"%s\"\n", __FILE__, \
		       __LINE__, g_ ? g_ : "(null)", w_); \
	} \
} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_run, check_failed);
	return check_failed ? 1 : 0;
}

#endif
