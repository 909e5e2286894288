/*
 * test_ews_util.h - what the EWS unit tests share on top of check.h: one
 * line per case ("ok - name" / "FAIL - name"), and reading recorded
 * answers from tests/unit/data/ews/ (TEST_DATA_DIR is set by meson, so the
 * tests run from any directory).
 */
#ifndef EXCHANGEFS_TEST_EWS_UTIL_H
#define EXCHANGEFS_TEST_EWS_UTIL_H

#include "check.h"
#include "backend/ews/ews.h"
#include "backend/util.h"
#include "backend/xml.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

/* A listening TCP socket on 127.0.0.1 and a free port, for the tests'
 * small HTTP servers; exits the test on failure. */
static inline int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, 8) || getsockname(fd, (struct sockaddr *)&a, &al)) {
		perror("test server");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* Parse a request we built; the operation element inside soap:Body, with
 * RequestServerVersion checked to be version (unless NULL).  *doc is the
 * caller's to free. */
static inline xmlNode *request_op_v(const struct buf *b, xmlDoc **doc,
				    const char *version)
{
	char err[200];
	*doc = xml_parse(b->data, b->len, (size_t)1 << 28, err, sizeof(err));
	CHECK(*doc != NULL);
	if (!*doc) {
		printf("  %s\n", err);
		return NULL;
	}
	xmlNode *env = xmlDocGetRootElement(*doc);
	CHECK(xml_is(env, EWS_NS_SOAP, "Envelope"));
	if (version) {
		xmlNode *ver = xml_child(xml_child(env, EWS_NS_SOAP, "Header"),
					 EWS_NS_T, "RequestServerVersion");
		char *v = NULL;
		CHECK(ver && !xml_attr(ver, "Version", 64, &v));
		CHECK_STR(v, version);
		free(v);
	}
	return xml_child(xml_child(env, EWS_NS_SOAP, "Body"), NULL, NULL);
}

/* Text and attributes of a request element read back (owned; NULL when n
 * is NULL or has none). */
static inline char *text(const xmlNode *n)
{
	char *s = NULL;
	if (n)
		xml_text(n, (size_t)1 << 28, &s);
	return s;
}

static inline char *attr(const xmlNode *n, const char *name)
{
	char *s = NULL;
	if (n)
		xml_attr(n, name, 1 << 20, &s);
	return s;
}

#define CHECK_OWNED_STR(expr, want) do { \
	char *s_ = (expr); \
	CHECK_STR(s_, want); \
	free(s_); \
} while (0)

/* request_op_v() asking for the default version. */
static inline xmlNode *op_of(const struct buf *b, xmlDoc **doc)
{
	return request_op_v(b, doc, EWS_VERSION_DEFAULT);
}

/* One case per answer file: every truncation of it (up to its last '>')
 * given to bad_cut as an exactly sized copy (so ASan sees reads past it),
 * which returns how many things went wrong with that cut (0: it failed
 * cleanly). */
static inline void check_truncations(const char *file,
				     int (*bad_cut)(const char *data,
						    size_t len, void *arg),
				     void *arg)
{
	char name[128];
	size_t len;
	char *d = data_file(file, &len);
	size_t end = (size_t)(strrchr(d, '>') - d) + 1;
	int bad = 0;
	snprintf(name, sizeof(name), "every truncation of %s (%zu cuts)", file,
		 end);
	case_begin(name);
	for (size_t cut = 0; cut < end; cut++) {
		char *copy = xmalloc(cut + 1);  /* exact size: ASan */
		memcpy(copy, d, cut);
		copy[cut] = 0;
		bad += bad_cut(copy, cut, arg);
		free(copy);
	}
	CHECK_INT(bad, 0);
	free(d);
	case_end();
}

/* A string field that may be NULL. */
#define CHECK_OPT_STR(got, want) do { \
	const char *w2_ = (want); \
	if (w2_) \
		CHECK_STR((got), w2_); \
	else \
		CHECK((got) == NULL); \
} while (0)

#endif
