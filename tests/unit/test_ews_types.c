/*
 * test_ews_types.c - the XML Schema simple types of backend/xml.c that EWS
 * answers carry: xs:dateTime (fractions, offsets, leap years, invalid
 * rows), xs:boolean, non-negative xs:long, and the incremental
 * xs:base64Binary decoder cut at every position.
 */
#include "backend/xml.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <stdint.h>

static const struct {
	const char *in;
	int64_t want;
} dates_ok[] = {
	{ "1970-01-01T00:00:00Z", 0 },
	{ "2026-11-20T09:31:07Z", 1795167067 },
	{ "2026-11-20T09:31:07", 1795167067 },            /* no zone = UTC */
	{ "2026-11-20T09:31:07.9999999Z", 1795167067 },   /* floor */
	{ "2026-11-20T10:31:07+01:00", 1795167067 },
	{ "2026-11-20T09:01:07-00:30", 1795167067 },
	{ "2026-11-20T23:31:07+14:00", 1795167067 },
	{ "2026-11-19T19:31:07-14:00", 1795167067 },
	{ "2026-11-20T09:31:07.5+00:00", 1795167067 },
	{ " \n2026-11-20T09:31:07Z\t ", 1795167067 },     /* xs whitespace */
	{ "2024-02-29T12:00:00Z", 1709208000 },           /* leap day */
	{ "2000-02-29T00:00:00Z", 951782400 },            /* 400-year leap */
	{ "1999-12-31T24:00:00Z", 946684800 },            /* end of day */
	{ "1969-12-31T23:59:59Z", -1 },
	{ "1601-01-01T00:00:00Z", -11644473600LL },       /* Windows epoch */
	{ "0001-01-01T00:00:00Z", -62135596800LL },
	{ "9999-12-31T23:59:59Z", 253402300799LL },
	{ "2016-12-31T23:59:60Z", 1483228800 },           /* leap second */
};

static const char *const dates_bad[] = {
	"", " ", "yesterday", "2026-11-20", "2026-11-20T09:31Z",
	"2026-11-20 09:31:07Z", "2026-11-20t09:31:07Z", "26-11-20T09:31:07Z",
	"20261-11-20T09:31:07Z", "-2026-11-20T09:31:07Z", "0000-01-01T00:00:00Z",
	"2026-00-20T09:31:07Z", "2026-13-20T09:31:07Z", "2026-11-00T09:31:07Z",
	"2026-11-31T09:31:07Z", "2026-02-29T09:31:07Z", "1900-02-29T00:00:00Z",
	"2026-11-20T25:00:00Z", "2026-11-20T24:00:01Z", "2026-11-20T24:00:00.1Z",
	"2026-11-20T09:60:07Z", "2026-11-20T09:31:61Z", "2026-11-20T09:31:07.Z",
	"2026-11-20T09:31:07.12a", "2026-11-20T09:31:07+1:00",
	"2026-11-20T09:31:07+15:00", "2026-11-20T09:31:07+14:30",
	"2026-11-20T09:31:07+01:60", "2026-11-20T09:31:07+0100",
	"2026-11-20T09:31:07ZZ", "2026-11-20T09:31:07Z x", "2026-1a-20T09:31:07Z",
	"2026-11-20T09:31:07\xc2\xa0", "\0012026-11-20T09:31:07Z", /* \001 + date */
};

static void test_dates(void)
{
	case_begin("xs:dateTime valid rows");
	for (size_t i = 0; i < sizeof(dates_ok) / sizeof(dates_ok[0]); i++) {
		int64_t t = 12345;
		int rc = xs_datetime(dates_ok[i].in, &t);
		if (rc || t != dates_ok[i].want)
			printf("  row '%s': rc %d, got %lld\n", dates_ok[i].in,
			       rc, (long long)t);
		CHECK(rc == 0 && t == dates_ok[i].want);
	}
	case_end();

	case_begin("xs:dateTime invalid rows");
	for (size_t i = 0; i < sizeof(dates_bad) / sizeof(dates_bad[0]); i++) {
		int64_t t = 12345;
		int rc = xs_datetime(dates_bad[i], &t);
		if (rc != -1)
			printf("  row '%s' accepted: %lld\n", dates_bad[i],
			       (long long)t);
		CHECK(rc == -1 && t == 12345);
	}
	case_end();

	/* every day of 1900..2100 against a running day count */
	case_begin("xs:dateTime every day 1900-2100");
	int64_t day = -25567;  /* 1900-01-01 */
	int bad = 0;
	for (int y = 1900; y <= 2100; y++)
		for (int m = 1; m <= 12; m++) {
			static const int md[] = { 31, 28, 31, 30, 31, 30, 31,
						  31, 30, 31, 30, 31 };
			int leap = (y % 4 == 0 && y % 100) || y % 400 == 0;
			int last = md[m - 1] + (m == 2 && leap);
			for (int d = 1; d <= last; d++, day++) {
				char s[40];
				int64_t t;
				snprintf(s, sizeof(s),
					 "%04d-%02d-%02dT12:34:56-01:00", y, m, d);
				if (xs_datetime(s, &t) ||
				    t != day * 86400 + 13 * 3600 + 34 * 60 + 56)
					bad++;
			}
		}
	CHECK_INT(bad, 0);
	case_end();
}

static void test_bool_long(void)
{
	bool b;
	int64_t v;

	case_begin("xs:boolean");
	CHECK(xs_boolean("true", &b) == 0 && b);
	CHECK(xs_boolean(" 1 ", &b) == 0 && b);
	CHECK(xs_boolean("false", &b) == 0 && !b);
	CHECK(xs_boolean("\n0", &b) == 0 && !b);
	CHECK(xs_boolean("True", &b) == -1);
	CHECK(xs_boolean("yes", &b) == -1);
	CHECK(xs_boolean("", &b) == -1);
	CHECK(xs_boolean("10", &b) == -1);
	case_end();

	case_begin("non-negative xs:long");
	CHECK(xs_nonneg_long("0", &v) == 0 && v == 0);
	CHECK(xs_nonneg_long(" +42 ", &v) == 0 && v == 42);
	CHECK(xs_nonneg_long("007", &v) == 0 && v == 7);
	CHECK(xs_nonneg_long("9223372036854775807", &v) == 0 &&
	      v == INT64_MAX);
	CHECK(xs_nonneg_long("9223372036854775808", &v) == -1);
	CHECK(xs_nonneg_long("-1", &v) == -1);
	CHECK(xs_nonneg_long("", &v) == -1);
	CHECK(xs_nonneg_long("+", &v) == -1);
	CHECK(xs_nonneg_long("1 2", &v) == -1);
	CHECK(xs_nonneg_long("1e3", &v) == -1);
	CHECK(xs_nonneg_long("0x10", &v) == -1);
	case_end();
}

/* ---- base64 ---- */

struct sinkbuf {
	struct buf b;
	int calls;
	int fail_at;  /* fail on this call (1-based), 0 never */
};

static int sink(void *arg, const void *data, size_t len)
{
	struct sinkbuf *s = arg;
	if (++s->calls == s->fail_at)
		return -1;
	buf_append(&s->b, data, len);
	return 0;
}

/* Decode in the given pieces; returns 0/-1 and the output. */
static int decode(const char *in, const size_t *cuts, size_t ncuts,
		  struct sinkbuf *out)
{
	struct b64_stream d;
	size_t len = strlen(in), at = 0;
	buf_init(&out->b, 0);
	buf_append(&out->b, "", 0);
	b64_stream_init(&d, sink, out);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		if (b64_stream_feed(&d, in + at, to - at))
			return -1;
		at = to;
	}
	return b64_stream_finish(&d);
}

static const struct {
	const char *in, *out;
	size_t outlen;
} b64_ok[] = {
	{ "", "", 0 },
	{ "  \r\n ", "", 0 },
	{ "TQ==", "M", 1 },
	{ "TWE=", "Ma", 2 },
	{ "TWFu", "Man", 3 },
	{ "TQ", "M", 1 },               /* padding left out */
	{ "TWE", "Ma", 2 },
	{ "TW\r\nFu\tTWFu", "ManMan", 6 },
	{ "T W F u", "Man", 3 },
	{ "AAEC/f7/", "\x00\x01\x02\xfd\xfe\xff", 6 },
	{ "++//", "\xfb\xef\xff", 3 },
	{ "TQ= =", "M", 1 },            /* space inside the padding */
	{ "TWE=\r\n", "Ma", 2 },
	{ "SGVsbG8sIHdvcmxkIQ==", "Hello, world!", 13 },
};

static const char *const b64_bad[] = {
	"T", "TWFuT", "T===", "=", "==", "TQ==TQ==", "TQ=x", "TWE=a",
	"TW-u", "TW_u", "TWFu\x80", "TQ=", "TWFu=",
};

static void test_base64(void)
{
	case_begin("base64 valid rows, cut at every position");
	for (size_t i = 0; i < sizeof(b64_ok) / sizeof(b64_ok[0]); i++) {
		size_t len = strlen(b64_ok[i].in);
		/* whole, then every single cut, then byte by byte */
		for (size_t cut = 0; cut <= len + 1; cut++) {
			struct sinkbuf s = { .fail_at = 0 };
			size_t cuts[64], nc = 0;
			if (cut <= len) {
				cuts[nc++] = cut;
			} else {
				for (size_t k = 1; k < len && nc < 64; k++)
					cuts[nc++] = k;
			}
			int rc = decode(b64_ok[i].in, cuts, nc, &s);
			bool ok = rc == 0 && s.b.len == b64_ok[i].outlen &&
				  !memcmp(s.b.data, b64_ok[i].out, s.b.len);
			if (!ok)
				printf("  row '%s' cut %zu: rc %d len %zu\n",
				       b64_ok[i].in, cut, rc, s.b.len);
			CHECK(ok);
			buf_free(&s.b);
		}
	}
	case_end();

	case_begin("base64 invalid rows");
	for (size_t i = 0; i < sizeof(b64_bad) / sizeof(b64_bad[0]); i++) {
		struct sinkbuf s = { .fail_at = 0 };
		int rc = decode(b64_bad[i], NULL, 0, &s);
		if (!strcmp(b64_bad[i], "TQ=")) {
			/* liberal: missing last '=' still decodes */
			CHECK(rc == 0);
		} else {
			if (rc != -1)
				printf("  row '%s' accepted\n", b64_bad[i]);
			CHECK(rc == -1);
		}
		buf_free(&s.b);
	}
	case_end();

	case_begin("base64 large input in odd pieces, output flushed in blocks");
	{
		static const char alphabet[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t n = 300000;
		char *raw = xmalloc(n);
		struct buf enc;
		buf_init(&enc, 0);
		uint32_t x = 1;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245 + 12345;
			raw[i] = (char)(x >> 16);
		}
		for (size_t i = 0; i < n; i += 3) {
			unsigned v = (unsigned char)raw[i] << 16 |
				     (unsigned char)raw[i + 1] << 8 |
				     (unsigned char)raw[i + 2];
			char q[4] = { alphabet[v >> 18], alphabet[(v >> 12) & 63],
				      alphabet[(v >> 6) & 63], alphabet[v & 63] };
			buf_append(&enc, q, 4);
			if (i % 57 == 54)
				buf_puts(&enc, "\r\n");
		}
		struct sinkbuf s = { .fail_at = 0 };
		struct b64_stream d;
		buf_init(&s.b, 0);
		b64_stream_init(&d, sink, &s);
		size_t at = 0, step = 1;
		int rc = 0;
		while (at < enc.len && !rc) {
			size_t k = enc.len - at < step ? enc.len - at : step;
			rc = b64_stream_feed(&d, enc.data + at, k);
			at += k;
			step = step * 7 % 1009 + 1;
		}
		rc |= b64_stream_finish(&d);
		CHECK(rc == 0);
		CHECK_INT(s.b.len, n);
		CHECK(s.b.len == n && !memcmp(s.b.data, raw, n));
		CHECK(s.calls > 1 && s.calls <= (int)(n / 3072) + 2);
		free(raw);
		buf_free(&enc);
		buf_free(&s.b);
	}
	case_end();

	case_begin("base64 sink refusal stops the decoder");
	{
		struct sinkbuf s = { .fail_at = 1 };
		struct b64_stream d;
		buf_init(&s.b, 0);
		b64_stream_init(&d, sink, &s);
		CHECK(b64_stream_feed(&d, "TWFu", 4) == 0);  /* buffered */
		CHECK(b64_stream_finish(&d) == -1);
		CHECK(b64_stream_feed(&d, "TWFu", 4) == -1);
		buf_free(&s.b);
	}
	case_end();
}

int main(void)
{
	test_dates();
	test_bool_long();
	test_base64();
	return check_done("test_ews_types");
}
