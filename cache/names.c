/*
 * names.c - turns subjects and folder display names into safe, stable file
 * names (see names.h for the contract).
 */
#include "names.h"
#include "backend/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Decode one UTF-8 sequence at s (n bytes available).  Returns its length
 * and the code point in *cp, or 0 for an invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t len;
	uint32_t min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2; c &= 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3; c &= 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4; c &= 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
	       cp == 0x2028 || cp == 0x2029;
}

enum clean_mode { CLEAN_SUBJECT, CLEAN_FOLDER };

/* The one scanner behind every name: decode, map, bound. */
static char *clean(const char *s, size_t max, enum clean_mode mode)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);
	char *out = xmalloc(max + 1);
	size_t o = 0;
	bool space_pending = false, first = true;

	while (n > 0) {
		uint32_t cp;
		size_t len = utf8_decode(p, n, &cp);
		if (len == 0) {
			cp = 0xfffd;
			len = 1;
		}
		p += len;
		n -= len;
		if (mode == CLEAN_SUBJECT && (is_control(cp) || cp == ' ')) {
			space_pending = true;
			continue;
		}
		if (is_control(cp))
			cp = 0xfffd;
		if (cp == '/')
			cp = 0x2215;
		if (mode == CLEAN_FOLDER && first && cp == '.')
			cp = 0xff0e;
		char enc[4];
		size_t elen = utf8_encode(cp, enc);
		size_t need = elen + (space_pending && o > 0 ? 1 : 0);
		if (o + need > max)
			break;
		if (space_pending && o > 0)
			out[o++] = ' ';
		space_pending = false;
		memcpy(out + o, enc, elen);
		o += elen;
		first = false;
	}
	out[o] = 0;
	return out;
}

char *names_clean(const char *s, size_t max)
{
	return clean(s, max, CLEAN_SUBJECT);
}

static size_t suffix(unsigned n, char *buf, size_t len)
{
	if (n < 2) {
		buf[0] = 0;
		return 0;
	}
	return (size_t)snprintf(buf, len, " (%u)", n);
}

char *names_item(int64_t t, const char *subject, unsigned n, const char *ext,
		 bool dated)
{
	char date[64] = "", sfx[16];
	time_t tt = (time_t)t;
	struct tm tm;
	/* dates a server may send that no calendar holds become the epoch */
	if (dated && (!localtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 ||
		      tm.tm_year + 1900 < 1)) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	if (dated)
		strftime(date, sizeof(date), "%Y-%m-%d %H%M ", &tm);
	size_t sl = suffix(n, sfx, sizeof(sfx));
	size_t budget = NAMES_MAX - strlen(date) - sl - strlen(ext);
	char *subj = clean(subject, budget, CLEAN_SUBJECT);
	/* a name that would start with a dot (a contact named ".x") */
	if (!dated && subj[0] == '.')
		subj[0] = '_';
	char *name = xasprintf("%s%s%s%s", date,
			       *subj ? subj : dated ? "(no subject)"
						: "(no name)", sfx, ext);
	free(subj);
	return name;
}

char *names_message(int64_t t, const char *subject, unsigned n)
{
	return names_item(t, subject, n, ".eml", true);
}

char *names_folder(const char *server_name, unsigned n)
{
	char sfx[16];
	size_t sl = suffix(n, sfx, sizeof(sfx));
	char *base = clean(server_name, NAMES_MAX - sl, CLEAN_FOLDER);
	char *name = xasprintf("%s%s", *base ? base : "(unnamed)", sfx);
	free(base);
	return name;
}

char *names_folder_to_server(const char *file_name)
{
	struct buf b;
	buf_init(&b, 0);
	const unsigned char *p = (const unsigned char *)file_name;
	size_t n = strlen(file_name);
	bool first = true;
	while (n > 0) {
		uint32_t cp;
		size_t len = utf8_decode(p, n, &cp);
		if (len == 0) {
			buf_append(&b, p, 1);
			p++;
			n--;
			first = false;
			continue;
		}
		if (cp == 0x2215)
			cp = '/';
		else if (first && cp == 0xff0e)
			cp = '.';
		char enc[4];
		buf_append(&b, enc, utf8_encode(cp, enc));
		p += len;
		n -= len;
		first = false;
	}
	if (!b.data)
		buf_append(&b, "", 0);
	return b.data;
}

char *names_suffixed(const char *name, unsigned n)
{
	if (n < 2)
		return xstrdup(name);
	/* before the extension of a file name ("a.eml" -> "a (2).eml"),
	 * never before a leading dot */
	const char *dot = strrchr(name, '.');
	if (!dot || dot == name)
		dot = name + strlen(name);
	char suffix[16];
	int sl = snprintf(suffix, sizeof(suffix), " (%u)", n);
	size_t head = (size_t)(dot - name), tail = strlen(dot);
	/* keep the whole name within NAMES_MAX: shorten the head on a UTF-8
	 * boundary */
	while (head > 0 && head + (size_t)sl + tail > NAMES_MAX) {
		head--;
		while (head > 0 && ((unsigned char)name[head] & 0xc0) == 0x80)
			head--;
	}
	return xasprintf("%.*s%s%s", (int)head, name, suffix, dot);
}
