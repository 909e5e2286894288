/*
 * message.c - is this file a message?  The header-section check and the
 * Date parser behind uploads (see message.h).
 */
#include "message.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

static bool ftext(unsigned char ch)
{
	/* field-name characters: printable US-ASCII except ':' */
	return ch >= 33 && ch <= 126 && ch != ':';
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* days since 1970-01-01 of a proleptic Gregorian date */
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void skip_cfws(const char **p, const char *end)
{
	int depth = 0;
	while (*p < end) {
		char ch = **p;
		if (ch == '(')
			depth++;
		else if (ch == ')' && depth > 0)
			depth--;
		else if (!depth && ch != ' ' && ch != '\t' && ch != '\r' &&
			 ch != '\n' && ch != ',')
			return;
		(*p)++;
	}
}

static bool number(const char **p, const char *end, int maxdigits, long *out)
{
	long v = 0;
	int n = 0;
	while (*p < end && n < maxdigits && isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n > 0;
}

int64_t message_parse_date(const char *s, size_t len)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	const char *p = s, *end = s + len;
	skip_cfws(&p, end);
	/* optional day of week */
	if (end - p >= 3 && isalpha((unsigned char)*p)) {
		while (p < end && isalpha((unsigned char)*p))
			p++;
		skip_cfws(&p, end);
	}
	long day, year, hh, mm, ss = 0;
	if (!number(&p, end, 2, &day))
		return 0;
	skip_cfws(&p, end);
	if (end - p < 3)
		return 0;
	int mon = -1;
	for (int i = 0; i < 12; i++)
		if (!strncasecmp(p, months[i], 3))
			mon = i;
	if (mon < 0)
		return 0;
	while (p < end && isalpha((unsigned char)*p))
		p++;
	skip_cfws(&p, end);
	const char *ys = p;
	if (!number(&p, end, 4, &year))
		return 0;
	if (p - ys == 2)
		year += year < 50 ? 2000 : 1900;
	else if (p - ys == 3)
		year += 1900;
	skip_cfws(&p, end);
	if (!number(&p, end, 2, &hh) || p >= end || *p != ':')
		return 0;
	p++;
	if (!number(&p, end, 2, &mm))
		return 0;
	if (p < end && *p == ':') {
		p++;
		if (!number(&p, end, 2, &ss))
			return 0;
	}
	skip_cfws(&p, end);
	long off = 0;
	if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p == '-' ? -1 : 1;
		p++;
		long z;
		const char *zs = p;
		if (!number(&p, end, 4, &z) || p - zs != 4)
			return 0;
		off = sign * ((z / 100) * 3600 + (z % 100) * 60);
	} else if (end - p >= 3) {
		static const struct { const char *n; int h; } zones[] = {
			{ "EDT", -4 }, { "EST", -5 }, { "CDT", -5 }, { "CST", -6 },
			{ "MDT", -6 }, { "MST", -7 }, { "PDT", -7 }, { "PST", -8 },
		};
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (!strncasecmp(p, zones[i].n, 3))
				off = zones[i].h * 3600L;
	}
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900 ||
	    year > 9999)
		return 0;
	return days_from_civil(year, (unsigned)mon + 1, (unsigned)day) * 86400 +
	       hh * 3600 + mm * 60 + ss - off;
}

bool message_file_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 4 && !strcasecmp(name + n - 4, ".eml");
}

bool message_check_fd(int fd, int64_t *date, char *why, size_t whylen)
{
	struct stat sb;
	*date = 0;
	if (fstat(fd, &sb) < 0) {
		snprintf(why, whylen, "cannot read it back");
		return false;
	}
	size_t want = (size_t)sb.st_size < MESSAGE_HEADER_MAX
		? (size_t)sb.st_size : MESSAGE_HEADER_MAX;
	char *head = malloc(want + 1);
	bool ok = head && pread(fd, head, want, 0) == (ssize_t)want;
	if (!ok)
		snprintf(why, whylen, "cannot read it back");
	else
		ok = message_check(head, want, want == (size_t)sb.st_size, date,
				   why, whylen);
	free(head);
	return ok;
}

bool message_check(const char *data, size_t len, bool complete,
		   int64_t *date, char *why, size_t whylen)
{
	*date = 0;
	const char *p = data, *end = data + len;
	size_t fields = 0;
	unsigned line = 0;
	if (len == 0) {
		snprintf(why, whylen, "the file is empty");
		return false;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol && !complete) {
			snprintf(why, whylen, "header section longer than %zu bytes",
				 MESSAGE_HEADER_MAX);
			return false;
		}
		const char *le = eol ? eol : end;
		size_t n = (size_t)(le - p);
		if (n && p[n - 1] == '\r')
			n--;
		line++;
		if (n == 0) {
			/* the empty line: end of the header section */
			if (!fields) {
				snprintf(why, whylen, "no header fields before the "
					 "first empty line");
				return false;
			}
			return true;
		}
		if (memchr(p, 0, n)) {
			snprintf(why, whylen, "NUL byte in header line %u", line);
			return false;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			if (!fields) {
				snprintf(why, whylen, "line 1 starts with white "
					 "space: not a header field");
				return false;
			}
		} else {
			size_t i = 0;
			while (i < n && ftext((unsigned char)p[i]))
				i++;
			/* obsolete syntax allows white space before the colon */
			size_t j = i;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (i == 0 || j >= n || p[j] != ':') {
				snprintf(why, whylen, "line %u is not a header field "
					 "(\"Name: value\")", line);
				return false;
			}
			fields++;
			if (i == 4 && !strncasecmp(p, "Date", 4)) {
				const char *v = p + j + 1;
				size_t vl = n - j - 1;
				/* folded continuation lines are not read: dates
				 * fit on one line in practice */
				*date = message_parse_date(v, vl);
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	/* the whole file is a header section (a message without a body) */
	return true;
}
