/*
 * test_tz.c - time zones (backend/tz.c): Windows ids <-> IANA ids as a
 * table with unknown rows, ActiveSync Timezone blobs decoded, encoded and
 * matched against the tz database by rules (both hemispheres, no DST,
 * half hours), and a table of broken blobs each refused with its reason.
 * Years are fixed, never today's.
 */
#include "backend/tz.h"
#include "backend/util.h"
#include "backend/xml.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static void test_names(void)
{
	static const struct { const char *win, *iana; } t[] = {
		{ "W. Europe Standard Time", "Europe/Berlin" },
		{ "Eastern Standard Time", "America/New_York" },
		{ "Pacific Standard Time", "America/Los_Angeles" },
		{ "GMT Standard Time", "Europe/London" },
		{ "Tokyo Standard Time", "Asia/Tokyo" },
		{ "India Standard Time", "Asia/Kolkata" },   /* not Calcutta */
		{ "AUS Eastern Standard Time", "Australia/Sydney" },
		{ "UTC", "Etc/UTC" },
		/* invalid rows */
		{ "Mars Standard Time", NULL },
		{ "", NULL },
		{ "W. Europe Standard Time\xc3\xa9", NULL },
		{ "Europe/Berlin", NULL },
	};
	char out[TZ_NAME_MAX];
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = tz_windows_to_iana(t[i].win, out);
		if (t[i].iana) {
			CHECK(r == 0);
			CHECK_STR(r ? NULL : out, t[i].iana);
		} else {
			CHECK(r == -1);
		}
	}
	static const struct { const char *iana, *win; } u[] = {
		{ "Europe/Paris", "Romance Standard Time" },
		{ "Europe/Berlin", "W. Europe Standard Time" },
		{ "Asia/Kolkata", "India Standard Time" },
		{ "US/Eastern", "Eastern Standard Time" },
		{ "Nowhere/City", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		int r = tz_iana_to_windows(u[i].iana, out);
		if (u[i].win)
			CHECK_STR(r ? NULL : out, u[i].win);
		else
			CHECK(r == -1);
	}
	static const struct { const char *in, *out; } c[] = {
		{ "US/Eastern", "America/New_York" },
		{ "Asia/Calcutta", "Asia/Kolkata" },
		{ "Europe/Berlin", "Europe/Berlin" },
		{ "UTC", "Etc/UTC" },
		{ "W. Europe Standard Time", NULL },
		{ "Europe/Nowhere", NULL },
		{ "Europe/Berlin\n", NULL },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int r = tz_canonical_iana(c[i].in, out);
		if (c[i].out)
			CHECK_STR(r ? NULL : out, c[i].out);
		else
			CHECK(r == -1);
	}
	CHECK(tz_is_iana("Europe/Berlin"));
	CHECK(tz_is_iana("US/Eastern"));
	CHECK(!tz_is_iana("W. Europe Standard Time"));
	CHECK(!tz_is_iana(NULL));
	CHECK(tz_windows_to_iana(NULL, out) == -1);
}

static void test_rule_day(void)
{
	/* last Sunday of March 2024 = 31, of October 2024 = 27; first
	 * Sunday of November 2024 = 3; second Sunday of March 2024 = 10 */
	struct tz_systemtime a = { .month = 3, .dow = 0, .day = 5 };
	struct tz_systemtime b = { .month = 10, .dow = 0, .day = 5 };
	struct tz_systemtime c = { .month = 11, .dow = 0, .day = 1 };
	struct tz_systemtime d = { .month = 3, .dow = 0, .day = 2 };
	struct tz_systemtime e = { .year = 2024, .month = 2, .day = 30 };
	struct tz_systemtime f = { .month = 13, .day = 1 };
	CHECK(tz_rule_day(&a, 2024) == 31);
	CHECK(tz_rule_day(&b, 2024) == 27);
	CHECK(tz_rule_day(&c, 2024) == 3);
	CHECK(tz_rule_day(&d, 2024) == 10);
	CHECK(tz_rule_day(&e, 2024) == 0);
	CHECK(tz_rule_day(&f, 2024) == 0);
}

static void test_iana_to_info(void)
{
	struct tz_info tz;
	CHECK(tz_iana_to_info("Europe/Berlin", 2024, &tz) == 0);
	CHECK(tz.bias == -60 && tz.std_bias == 0 && tz.dst_bias == -60);
	CHECK(tz.dst_date.month == 3 && tz.dst_date.day == 5 &&
	      tz.dst_date.dow == 0 && tz.dst_date.hour == 2);
	CHECK(tz.std_date.month == 10 && tz.std_date.day == 5 &&
	      tz.std_date.dow == 0 && tz.std_date.hour == 3);
	CHECK_STR(tz.std_name, "W. Europe Standard Time");
	CHECK_STR(tz.dst_name, "W. Europe Daylight Time");

	CHECK(tz_iana_to_info("America/New_York", 2024, &tz) == 0);
	CHECK(tz.bias == 300 && tz.dst_bias == -60);
	CHECK(tz.dst_date.month == 3 && tz.dst_date.day == 2 &&
	      tz.dst_date.hour == 2);
	CHECK(tz.std_date.month == 11 && tz.std_date.day == 1 &&
	      tz.std_date.hour == 2);

	CHECK(tz_iana_to_info("Australia/Sydney", 2024, &tz) == 0);
	CHECK(tz.bias == -600 && tz.dst_bias == -60);
	CHECK(tz.dst_date.month == 10 && tz.dst_date.day == 1 &&
	      tz.dst_date.hour == 2);
	CHECK(tz.std_date.month == 4 && tz.std_date.day == 1 &&
	      tz.std_date.hour == 3);

	CHECK(tz_iana_to_info("Asia/Kolkata", 2024, &tz) == 0);
	CHECK(tz.bias == -330 && tz.dst_date.month == 0 &&
	      tz.std_date.month == 0);
	CHECK(tz_iana_to_info("Nowhere/City", 2024, &tz) == -1);
}

/* A zone -> its blob -> base64 -> decoded -> a zone again; also with the
 * names blanked, so the rules alone must find it. */
static void test_round_trip(void)
{
	static const struct { const char *zone, *by_rules; } t[] = {
		{ "Europe/Berlin", "Europe/Berlin" },
		{ "America/New_York", "America/New_York" },
		{ "America/Los_Angeles", "America/Los_Angeles" },
		/* same rules as Hobart: either is right */
		{ "Australia/Sydney", NULL },
		{ "Asia/Kolkata", "Asia/Kolkata" },
		{ "Asia/Tokyo", "Asia/Tokyo" },
		{ "Europe/London", "Europe/London" },
		/* no DST since 2019: the rules of many zones */
		{ "America/Sao_Paulo", NULL },
		{ "Etc/UTC", "Etc/UTC" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tz_info a, b;
		struct buf bb;
		char err[128], out[TZ_NAME_MAX];
		buf_init(&bb, 1024);
		CHECK(tz_iana_to_info(t[i].zone, 2024, &a) == 0);
		CHECK(tz_eas_encode(&a, &bb) == 0);
		CHECK(bb.len == 232);     /* 172 bytes in base64 */
		CHECK(tz_eas_decode(bb.data, &b, err, sizeof(err)) == 0);
		CHECK(!memcmp(&a.std_date, &b.std_date, sizeof(a.std_date)));
		CHECK(a.bias == b.bias && a.dst_bias == b.dst_bias);
		CHECK_STR(b.std_name, a.std_name);
		CHECK(tz_info_to_iana(&b, 2024, out) == 0);
		CHECK_STR(out, t[i].zone);
		b.std_name[0] = b.dst_name[0] = 0;
		CHECK(tz_info_to_iana(&b, 2024, out) == 0);
		if (t[i].by_rules) {
			CHECK_STR(out, t[i].by_rules);
		} else {    /* whatever it is, it has the same rules */
			struct tz_info c;
			CHECK(tz_iana_to_info(out, 2024, &c) == 0);
			CHECK(c.bias == a.bias && c.dst_bias == a.dst_bias &&
			      !memcmp(&c.dst_date, &a.dst_date,
				      sizeof(c.dst_date)) &&
			      !memcmp(&c.std_date, &a.std_date,
				      sizeof(c.std_date)));
		}
		buf_free(&bb);
	}
}

/* Blobs as servers send them. */
static void test_server_blobs(void)
{
	char out[TZ_NAME_MAX];
	struct tz_info tz;
	/* Exchange's Pacific time with Windows' own names (from MS-ASDTYPE's
	 * example: "Pacific Standard Time" / "Pacific Daylight Time") */
	memset(&tz, 0, sizeof(tz));
	tz.bias = 480;
	tz.dst_bias = -60;
	snprintf(tz.std_name, sizeof(tz.std_name), "(UTC-08:00) Pacific Time");
	tz.std_date = (struct tz_systemtime){ .month = 11, .dow = 0, .day = 1,
					      .hour = 2 };
	tz.dst_date = (struct tz_systemtime){ .month = 3, .dow = 0, .day = 2,
					      .hour = 2 };
	CHECK(tz_info_to_iana(&tz, 2023, out) == 0);
	CHECK_STR(out, "America/Los_Angeles");
	/* midnight written as 23:59:59.999 the day before (Windows' habit
	 * for some zones) still matches a midnight transition: */
	struct tz_info m;
	CHECK(tz_iana_to_info("America/Santiago", 2024, &m) == 0);
	if (m.std_date.month && m.std_date.hour == 0 && m.std_date.minute == 0) {
		m.std_name[0] = 0;
		CHECK(tz_info_to_iana(&m, 2024, out) == 0);
	}
	/* a fixed offset nothing else has: Etc/GMT */
	memset(&tz, 0, sizeof(tz));
	tz.bias = 11 * 60;   /* UTC-11, no DST: Pacific/Pago_Pago, Niue... */
	CHECK(tz_info_to_iana(&tz, 2024, out) == 0);
	tz.bias = -15 * 60;  /* UTC+15: no zone, past Etc/GMT-14 */
	CHECK(tz_info_to_iana(&tz, 2024, out) == -1);
	/* an offset no zone has and not whole hours: none */
	memset(&tz, 0, sizeof(tz));
	tz.bias = 17;
	CHECK(tz_info_to_iana(&tz, 2024, out) == -1);
	/* all zero (some servers send it for UTC) */
	memset(&tz, 0, sizeof(tz));
	CHECK(tz_info_to_iana(&tz, 2024, out) == 0);
	CHECK_STR(out, "Etc/UTC");
}

static void test_bad_blobs(void)
{
	unsigned char raw[400];
	struct { size_t n; int patch_off; int patch_val; const char *why; } t[] = {
		{ 171, -1, 0, "171 bytes, not 172" },
		{ 173, -1, 0, "173 bytes, not 172" },
		{ 400, -1, 0, "longer than 172 bytes" },
		{ 0, -1, 0, "0 bytes, not 172" },
		{ 172, 0, 0x7f, "bias out of range" },       /* bias 127 min */
		{ 172, 70, 13, "invalid transition date" },  /* std month 13 */
		{ 172, 154, 3, "invalid transition date" },  /* dst only */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct buf b;
		struct tz_info tz;
		char err[128] = "";
		memset(raw, 0, sizeof(raw));
		if (t[i].patch_off == 0) {
			raw[0] = 0x10; raw[1] = 0x27;   /* 10000 minutes */
		} else if (t[i].patch_off > 0) {
			raw[t[i].patch_off] = (unsigned char)t[i].patch_val;
		}
		buf_init(&b, 1024);
		CHECK(b64_encode(&b, raw, t[i].n) == 0);
		CHECK(tz_eas_decode(b.data, &tz, err, sizeof(err)) == -1);
		if (!strstr(err, t[i].why))
			printf("FAIL row %zu: %s\n", i, err);
		CHECK(strstr(err, t[i].why) != NULL);
		buf_free(&b);
	}
	struct tz_info tz;
	char err[128];
	CHECK(tz_eas_decode("not*base64", &tz, err, sizeof(err)) == -1);
	CHECK(strstr(err, "bad base64") != NULL);
	CHECK(tz_eas_decode(NULL, &tz, err, sizeof(err)) == -1);
}

int main(void)
{
	test_names();
	test_rule_day();
	test_iana_to_info();
	test_round_trip();
	test_server_blobs();
	test_bad_blobs();
	return check_done("test_tz");
}
