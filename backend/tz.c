/*
 * tz.c - Windows zone ids <-> IANA ids, and ActiveSync's
 * TIME_ZONE_INFORMATION blob <-> IANA zones (see tz.h).
 *
 * Why ICU rather than a table of our own: the mapping is CLDR's
 * windowsZones.xml, which changes a few times a year (new Windows zones,
 * moved "001" zones).  ICU (Debian's libicu-dev) ships that data and
 * answers it through ucal_getTimeZoneIDForWindowsID() and
 * ucal_getWindowsTimeZoneID(); Debian updates it with ICU's security
 * updates.  We need ICU anyway: libical-dev, which parses our iCalendar,
 * depends on it, so this adds no package.  A table generated at build time
 * would need the CLDR XML, which no Debian package installs as such.  ICU
 * also has the tz rules (ucal_getTimeZoneTransitionDate()) that matching
 * a blob's rules against the zones needs.
 */
#include "backend/tz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unicode/ucal.h>
#include <unicode/uenum.h>
#include <unicode/ustring.h>

#include "backend/util.h"
#include "backend/xml.h"

/* ASCII only (zone ids are); -1 on anything else or too long. */
static int to_uchars(const char *s, UChar *u, size_t ulen)
{
	size_t i;
	for (i = 0; s[i]; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ||
		    i + 1 >= ulen)
			return -1;
		u[i] = (UChar)s[i];
	}
	u[i] = 0;
	return (int)i;
}

static int from_uchars(const UChar *u, int32_t n, char *out, size_t outlen)
{
	if (n <= 0 || (size_t)n >= outlen)
		return -1;
	for (int32_t i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] > 0x7e)
			return -1;
		out[i] = (char)u[i];
	}
	out[n] = 0;
	return 0;
}

/* ---- CLDR ids -> today's tz database names ----
 * CLDR (so ICU) keeps the first name a zone had ("Asia/Calcutta"); the tz
 * database has since renamed some ("Asia/Kolkata") and keeps the old ones
 * as links, which libical's zone list (zone.tab) does not carry.  The
 * links come from the tz database itself (tzdata.zi, "L target link"),
 * read once. */
#define TZ_LINKS_MAX 1024
static struct { char link[TZ_NAME_MAX], target[TZ_NAME_MAX]; } *tz_links;
static size_t tz_nlinks;
static pthread_once_t tz_links_once = PTHREAD_ONCE_INIT;

static void load_links(void)
{
	const char *dir = getenv("TZDIR");
	char path[512], line[256];
	snprintf(path, sizeof(path), "%s/tzdata.zi",
		 dir && *dir ? dir : "/usr/share/zoneinfo");
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	tz_links = xcalloc(TZ_LINKS_MAX, sizeof(*tz_links));
	while (tz_nlinks < TZ_LINKS_MAX && fgets(line, sizeof(line), f)) {
		char t[TZ_NAME_MAX], l[TZ_NAME_MAX];
		if (line[0] != 'L' ||
		    sscanf(line, "L %63s %63s", t, l) != 2)
			continue;
		memcpy(tz_links[tz_nlinks].link, l, sizeof(l));
		memcpy(tz_links[tz_nlinks].target, t, sizeof(t));
		tz_nlinks++;
	}
	fclose(f);
}

static void modern_name(char name[TZ_NAME_MAX])
{
	pthread_once(&tz_links_once, load_links);
	for (size_t i = 0; i < tz_nlinks; i++)
		if (!strcmp(tz_links[i].link, name)) {
			memcpy(name, tz_links[i].target, TZ_NAME_MAX);
			return;
		}
}

static int cldr_windows_to_iana(const char *win, char out[TZ_NAME_MAX])
{
	UChar w[TZ_NAME_MAX], r[TZ_NAME_MAX];
	UErrorCode st = U_ZERO_ERROR;
	int n = win ? to_uchars(win, w, TZ_NAME_MAX) : -1;
	if (n <= 0)
		return -1;
	int32_t rn = ucal_getTimeZoneIDForWindowsID(w, n, NULL, r,
						    TZ_NAME_MAX, &st);
	if (U_FAILURE(st))
		return -1;
	return from_uchars(r, rn, out, TZ_NAME_MAX);
}

int tz_windows_to_iana(const char *win, char out[TZ_NAME_MAX])
{
	if (cldr_windows_to_iana(win, out))
		return -1;
	modern_name(out);
	return 0;
}

int tz_iana_to_windows(const char *iana, char out[TZ_NAME_MAX])
{
	UChar z[TZ_NAME_MAX], r[TZ_NAME_MAX];
	UErrorCode st = U_ZERO_ERROR;
	int n = iana ? to_uchars(iana, z, TZ_NAME_MAX) : -1;
	if (n <= 0)
		return -1;
	int32_t rn = ucal_getWindowsTimeZoneID(z, n, r, TZ_NAME_MAX, &st);
	if (U_FAILURE(st))
		return -1;
	return from_uchars(r, rn, out, TZ_NAME_MAX);
}

bool tz_is_iana(const char *name)
{
	UChar z[TZ_NAME_MAX], r[TZ_NAME_MAX];
	UErrorCode st = U_ZERO_ERROR;
	UBool sys = 0;
	int n = name ? to_uchars(name, z, TZ_NAME_MAX) : -1;
	if (n <= 0)
		return false;
	ucal_getCanonicalTimeZoneID(z, n, r, TZ_NAME_MAX, &sys, &st);
	return U_SUCCESS(st) && sys;
}

int tz_canonical_iana(const char *name, char out[TZ_NAME_MAX])
{
	UChar z[TZ_NAME_MAX], r[TZ_NAME_MAX];
	UErrorCode st = U_ZERO_ERROR;
	UBool sys = 0;
	int n = name ? to_uchars(name, z, TZ_NAME_MAX) : -1;
	if (n <= 0)
		return -1;
	int32_t rn = ucal_getCanonicalTimeZoneID(z, n, r, TZ_NAME_MAX, &sys,
						 &st);
	if (U_FAILURE(st) || !sys || from_uchars(r, rn, out, TZ_NAME_MAX))
		return -1;
	modern_name(out);
	return 0;
}

/* ---- The blob ---- */

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static int32_t rd32(const unsigned char *p)
{
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 |
			 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}
static void wr16(unsigned char *p, unsigned v) { p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; }
static void wr32(unsigned char *p, int32_t v)
{
	uint32_t u = (uint32_t)v;
	for (int i = 0; i < 4; i++)
		p[i] = (u >> (8 * i)) & 0xff;
}

static void rd_systemtime(const unsigned char *p, struct tz_systemtime *s)
{
	s->year = rd16(p); s->month = rd16(p + 2); s->dow = rd16(p + 4);
	s->day = rd16(p + 6); s->hour = rd16(p + 8); s->minute = rd16(p + 10);
	s->second = rd16(p + 12); s->ms = rd16(p + 14);
}

static void wr_systemtime(unsigned char *p, const struct tz_systemtime *s)
{
	wr16(p, s->year); wr16(p + 2, s->month); wr16(p + 4, s->dow);
	wr16(p + 6, s->day); wr16(p + 8, s->hour); wr16(p + 10, s->minute);
	wr16(p + 12, s->second); wr16(p + 14, s->ms);
}

/* 32 UTF-16LE units, NUL-ended or not, to UTF-8 (bad surrogates become
 * U+FFFD; control characters are dropped). */
static void rd_name(const unsigned char *p, char *out, size_t outlen)
{
	UChar u[32];
	int32_t n = 0, len = 0;
	UErrorCode st = U_ZERO_ERROR;
	for (int i = 0; i < 32; i++) {
		UChar c = rd16(p + 2 * i);
		if (!c)
			break;
		if (c >= 0x20)
			u[n++] = c;
	}
	u_strToUTF8WithSub(out, (int32_t)outlen - 1, &len, u, n, 0xfffd, NULL,
			   &st);
	if (U_FAILURE(st) || len < 0 || (size_t)len >= outlen)
		len = 0;
	out[len] = 0;
}

static void wr_name(unsigned char *p, const char *s)
{
	UChar u[64];
	int32_t n = 0;
	UErrorCode st = U_ZERO_ERROR;
	memset(p, 0, 64);
	u_strFromUTF8WithSub(u, 64, &n, s, -1, 0xfffd, NULL, &st);
	if (U_FAILURE(st) && st != U_BUFFER_OVERFLOW_ERROR)
		return;
	if (n > 31)
		n = 31;                    /* keep the terminating NUL */
	if (n > 0 && U16_IS_LEAD(u[n - 1]))
		n--;                       /* never half a pair */
	for (int32_t i = 0; i < n; i++)
		wr16(p + 2 * i, u[i]);
}

static int bad_rule(const struct tz_systemtime *s)
{
	if (s->month == 0)
		return 0;
	return s->month > 12 || s->dow > 6 || s->day < 1 || s->day > 31 ||
	       (s->year == 0 && s->day > 5) || s->hour > 23 || s->minute > 59 ||
	       s->second > 59 || s->ms > 999;
}

struct capbuf { unsigned char b[TZ_EAS_BLOB_LEN + 1]; size_t n; bool over; };
static int collect(void *arg, const void *p, size_t n)
{
	struct capbuf *c = arg;
	if (c->n + n > sizeof(c->b)) {
		c->over = true;
		return -1;
	}
	memcpy(c->b + c->n, p, n);
	c->n += n;
	return 0;
}

int tz_eas_decode(const char *b64, struct tz_info *tz, char *err,
		  size_t errlen)
{
	struct capbuf c = { .n = 0, .over = false };
	struct b64_stream d;
	memset(tz, 0, sizeof(*tz));
	if (!b64) {
		snprintf(err, errlen, "no Timezone");
		return -1;
	}
	b64_stream_init(&d, collect, &c);
	if (b64_stream_feed(&d, b64, strlen(b64)) || b64_stream_finish(&d)) {
		snprintf(err, errlen, "Timezone: %s",
			 c.over ? "longer than 172 bytes"
					       : "bad base64");
		return -1;
	}
	if (c.n != TZ_EAS_BLOB_LEN) {
		snprintf(err, errlen, "Timezone: %zu bytes, not 172", c.n);
		return -1;
	}
	tz->bias = rd32(c.b);
	rd_name(c.b + 4, tz->std_name, sizeof(tz->std_name));
	rd_systemtime(c.b + 68, &tz->std_date);
	tz->std_bias = rd32(c.b + 84);
	rd_name(c.b + 88, tz->dst_name, sizeof(tz->dst_name));
	rd_systemtime(c.b + 152, &tz->dst_date);
	tz->dst_bias = rd32(c.b + 168);
	/* Offsets beyond +-18 h exist nowhere. */
	if (tz->bias < -18 * 60 || tz->bias > 18 * 60 ||
	    tz->std_bias < -18 * 60 || tz->std_bias > 18 * 60 ||
	    tz->dst_bias < -18 * 60 || tz->dst_bias > 18 * 60) {
		snprintf(err, errlen, "Timezone: bias out of range");
		return -1;
	}
	if (bad_rule(&tz->std_date) || bad_rule(&tz->dst_date) ||
	    (!tz->std_date.month) != (!tz->dst_date.month)) {
		snprintf(err, errlen, "Timezone: invalid transition date");
		return -1;
	}
	return 0;
}

int tz_eas_encode(const struct tz_info *tz, struct buf *b)
{
	unsigned char p[TZ_EAS_BLOB_LEN];
	memset(p, 0, sizeof(p));
	wr32(p, tz->bias);
	wr_name(p + 4, tz->std_name);
	wr_systemtime(p + 68, &tz->std_date);
	wr32(p + 84, tz->std_bias);
	wr_name(p + 88, tz->dst_name);
	wr_systemtime(p + 152, &tz->dst_date);
	wr32(p + 168, tz->dst_bias);
	return b64_encode(b, p, sizeof(p));
}

/* ---- Rules ---- */

static bool leap(int y) { return (y % 4 == 0 && y % 100) || y % 400 == 0; }
static int month_days(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : d[m - 1];
}
/* 0 = Sunday (Sakamoto's method). */
static int weekday(int y, int m, int d)
{
	static const int t[] = { 0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4 };
	if (m < 3)
		y--;
	return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

int tz_rule_day(const struct tz_systemtime *st, int year)
{
	if (st->month < 1 || st->month > 12 || bad_rule(st))
		return 0;
	int len = month_days(year, st->month);
	if (st->year)
		return st->day <= len ? st->day : 0;
	int first = 1 + (st->dow - weekday(year, st->month, 1) + 7) % 7;
	int d = first + (st->day - 1) * 7;
	while (d > len)
		d -= 7;
	return d;
}

/* Minutes since the start of the year of a rule's local time. */
static long rule_minute(const struct tz_systemtime *st, int year)
{
	int d = tz_rule_day(st, year);
	if (!d)
		return -1;
	long days = d - 1;
	for (int m = 1; m < st->month; m++)
		days += month_days(year, m);
	/* 23:59:59.999 is how Windows writes midnight */
	long min = days * 1440 + st->hour * 60 + st->minute;
	if (st->second == 59 && st->ms == 999)
		min++;
	return min;
}

static UCalendar *open_zone(const char *iana)
{
	UChar z[TZ_NAME_MAX];
	UErrorCode st = U_ZERO_ERROR;
	int n = to_uchars(iana, z, TZ_NAME_MAX);
	if (n <= 0 || !tz_is_iana(iana))
		return NULL;
	UCalendar *c = ucal_open(z, n, "en_US_POSIX", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st)) {
		if (c)
			ucal_close(c);
		return NULL;
	}
	return c;
}

/* Offsets (minutes) of the zone at instant t (ms). */
static int offsets_at(UCalendar *c, UDate t, int *raw, int *dst)
{
	UErrorCode st = U_ZERO_ERROR;
	ucal_setMillis(c, t, &st);
	*raw = ucal_get(c, UCAL_ZONE_OFFSET, &st) / 60000;
	*dst = ucal_get(c, UCAL_DST_OFFSET, &st) / 60000;
	return U_FAILURE(st) ? -1 : 0;
}

static UDate year_start_utc(int year)
{
	struct tm tm = { .tm_year = year - 1900, .tm_mday = 1 };
	return (UDate)timegm(&tm) * 1000.0;
}

/* A transition at UTC instant t, before which the offset was off minutes,
 * as a yearly SYSTEMTIME rule of local wall time. */
static void rule_of(UDate t, int off, struct tz_systemtime *s)
{
	time_t lt = (time_t)(t / 1000.0) + (time_t)off * 60;
	struct tm tm;
	gmtime_r(&lt, &tm);
	memset(s, 0, sizeof(*s));
	s->month = (uint16_t)(tm.tm_mon + 1);
	s->dow = (uint16_t)tm.tm_wday;
	s->day = (uint16_t)((tm.tm_mday - 1) / 7 + 1);
	if (tm.tm_mday + 7 > month_days(tm.tm_year + 1900, tm.tm_mon + 1))
		s->day = 5;
	s->hour = (uint16_t)tm.tm_hour;
	s->minute = (uint16_t)tm.tm_min;
}

/* The zone's rules in year, names left empty.  -1 if unknown. */
static int zone_rules(UCalendar *c, int year, struct tz_info *tz)
{
	UDate t = year_start_utc(year), end = year_start_utc(year + 1);
	int raw, dst;
	memset(tz, 0, sizeof(*tz));
	if (offsets_at(c, t, &raw, &dst))
		return -1;
	/* the standard offset is the raw one mid-year in either hemisphere */
	tz->bias = -raw;
	for (int i = 0; i < 8; i++) {
		UErrorCode st = U_ZERO_ERROR;
		UDate next;
		ucal_setMillis(c, t, &st);
		if (!ucal_getTimeZoneTransitionDate(c, UCAL_TZ_TRANSITION_NEXT,
						    &next, &st) ||
		    U_FAILURE(st) || next >= end)
			break;
		int raw2, dst2;
		if (offsets_at(c, next, &raw2, &dst2))
			return -1;
		if (!dst && dst2) {
			rule_of(next, raw + dst, &tz->dst_date);
			tz->dst_bias = -dst2;
		} else if (dst && !dst2) {
			rule_of(next, raw + dst, &tz->std_date);
		}
		raw = raw2;
		dst = dst2;
		t = next;
		if (raw != -tz->bias)   /* the standard offset itself moved */
			tz->bias = -raw;
	}
	if (!tz->std_date.month || !tz->dst_date.month) {
		/* no full DST cycle in this year */
		memset(&tz->std_date, 0, sizeof(tz->std_date));
		memset(&tz->dst_date, 0, sizeof(tz->dst_date));
		tz->dst_bias = 0;
	}
	return 0;
}

int tz_iana_to_info(const char *iana, int year, struct tz_info *tz)
{
	UCalendar *c = iana ? open_zone(iana) : NULL;
	char win[TZ_NAME_MAX];
	if (!c)
		return -1;
	int r = zone_rules(c, year, tz);
	ucal_close(c);
	if (r)
		return -1;
	if (!tz_iana_to_windows(iana, win)) {
		snprintf(tz->std_name, sizeof(tz->std_name), "%s", win);
		char *p = strstr(win, "Standard Time");
		if (p) {
			*p = 0;
			snprintf(tz->dst_name, sizeof(tz->dst_name),
				 "%sDaylight Time", win);
		} else {
			snprintf(tz->dst_name, sizeof(tz->dst_name), "%s",
				 tz->std_name);
		}
	} else {
		snprintf(tz->std_name, sizeof(tz->std_name), "%s", iana);
		snprintf(tz->dst_name, sizeof(tz->dst_name), "%s", iana);
	}
	return 0;
}

/* Whether two sets of rules give the same offsets at the same moments of
 * year (a minute of slack for Windows' 23:59:59.999). */
static bool same_rules(const struct tz_info *a, const struct tz_info *b,
		       int year)
{
	if (a->bias + a->std_bias != b->bias + b->std_bias)
		return false;
	bool ad = a->dst_date.month != 0, bd = b->dst_date.month != 0;
	if (ad != bd)
		return false;
	if (!ad)
		return true;
	if (a->bias + a->dst_bias != b->bias + b->dst_bias)
		return false;
	long x = rule_minute(&a->dst_date, year), y = rule_minute(&b->dst_date, year);
	long u = rule_minute(&a->std_date, year), v = rule_minute(&b->std_date, year);
	return x >= 0 && y >= 0 && u >= 0 && v >= 0 &&
	       labs(x - y) <= 1 && labs(u - v) <= 1;
}

static bool is_main_zone(const char *iana)
{
	char win[TZ_NAME_MAX], back[TZ_NAME_MAX];
	return !tz_iana_to_windows(iana, win) && !cldr_windows_to_iana(win, back) &&
	       !strcmp(back, iana);
}

/* Candidates whose rules match, ranked: the main zone of a Windows id
 * first, then the Windows id most of the candidates share (Eastern
 * Standard Time's New York over Turks and Caicos' Grand Turk), then by
 * name, so the answer never depends on enumeration order. */
#define TZ_CANDIDATES_MAX 256
struct cand { char id[TZ_NAME_MAX], win[TZ_NAME_MAX]; bool main; int share; };

static bool better(const struct cand *a, const struct cand *b)
{
	if (a->main != b->main)
		return a->main;
	if (a->share != b->share)
		return a->share > b->share;
	return strcmp(a->id, b->id) < 0;
}

int tz_info_to_iana(const struct tz_info *tz, int year, char out[TZ_NAME_MAX])
{
	char name[TZ_NAME_MAX];
	if (!tz_windows_to_iana(tz->std_name, name)) {
		memcpy(out, name, TZ_NAME_MAX);
		return 0;
	}
	int off = -(tz->bias + tz->std_bias);
	if (!off && !tz->dst_date.month) {
		snprintf(out, TZ_NAME_MAX, "Etc/UTC");
		return 0;
	}
	int32_t raw_ms = off * 60000;
	UErrorCode st = U_ZERO_ERROR;
	UEnumeration *en = ucal_openTimeZoneIDEnumeration(
		UCAL_ZONE_TYPE_CANONICAL_LOCATION, NULL, &raw_ms, &st);
	struct cand *c = xcalloc(TZ_CANDIDATES_MAX, sizeof(*c));
	size_t n = 0;
	const char *id;
	int32_t len;
	while (U_SUCCESS(st) && n < TZ_CANDIDATES_MAX &&
	       (id = uenum_next(en, &len, &st)) != NULL) {
		if (len <= 0 || len >= TZ_NAME_MAX)
			continue;
		UCalendar *cal = open_zone(id);
		struct tz_info z;
		if (!cal)
			continue;
		int r = zone_rules(cal, year, &z);
		ucal_close(cal);
		if (r || !same_rules(tz, &z, year))
			continue;
		snprintf(c[n].id, TZ_NAME_MAX, "%s", id);
		if (tz_iana_to_windows(id, c[n].win))
			c[n].win[0] = 0;
		c[n].main = is_main_zone(id);
		n++;
	}
	if (en)
		uenum_close(en);
	size_t best = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++)
			if (c[i].win[0] && !strcmp(c[i].win, c[j].win))
				c[i].share++;
		if (better(&c[i], &c[best]))
			best = i;
	}
	if (n) {
		modern_name(c[best].id);
		memcpy(out, c[best].id, TZ_NAME_MAX);
	}
	free(c);
	if (n)
		return 0;
	if (!tz->dst_date.month && off % 60 == 0 && off >= -12 * 60 &&
	    off <= 14 * 60) {
		/* POSIX signs: Etc/GMT-1 is UTC+1 */
		snprintf(out, TZ_NAME_MAX, "Etc/GMT%+d", -off / 60);
		return 0;
	}
	return -1;
}
