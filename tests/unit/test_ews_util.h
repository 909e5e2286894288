/*
 * test_ews_util.h - what the EWS unit tests share on top of check.h: one
 * line per case ("ok - name" / "FAIL - name"), and reading recorded
 * answers from tests/unit/data/ews/ (TEST_DATA_DIR is set by meson, so the
 * tests run from any directory).
 */
#ifndef EXCHANGEFS_TEST_EWS_UTIL_H
#define EXCHANGEFS_TEST_EWS_UTIL_H

#include "check.h"
#include "backend/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *case_name;
static int case_failed_before;

static inline void case_begin(const char *name)
{
	case_name = name;
	case_failed_before = check_failed;
}

static inline void case_end(void)
{
	printf("%s - %s\n", check_failed == case_failed_before ? "ok" : "FAIL",
	       case_name);
}

/* Whole file from data/ews/, NUL-terminated; aborts if missing. */
static inline char *data_file(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/ews/%s", TEST_DATA_DIR, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("FAIL cannot open %s\n", path);
		exit(2);
	}
	struct buf b;
	buf_init(&b, 0);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	if (!b.data)
		buf_append(&b, "", 0);
	*len = b.len;
	return b.data;
}

#define CHECK_CONTAINS(hay, needle) do { \
	const char *h_ = (hay); \
	check_run++; \
	if (!h_ || !strstr(h_, (needle))) { \
		check_failed++; \
		printf("FAIL %s:%d: \"%s\" does not contain \"%s\"\n", \
		       __FILE__, __LINE__, h_ ? h_ : "(null)", (needle)); \
	} \
} while (0)

#define CHECK_INT(got, want) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	check_run++; \
	if (g_ != w_) { \
		check_failed++; \
		printf("FAIL %s:%d: %s is %lld, want %lld\n", __FILE__, \
		       __LINE__, #got, g_, w_); \
	} \
} while (0)

/* A string field that may be NULL. */
#define CHECK_OPT_STR(got, want) do { \
	const char *w2_ = (want); \
	if (w2_) \
		CHECK_STR((got), w2_); \
	else \
		CHECK((got) == NULL); \
} while (0)

#endif
