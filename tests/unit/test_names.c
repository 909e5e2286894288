/*
 * test_names.c - table tests of the naming contract (cache/names.c):
 * message and folder names, hostile subjects, UTF-8 cuts, reversibility.
 */
#include "backend/util.h"
#include "cache/names.h"
#include "check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 :
			(*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!n)
			return false;
		for (int i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

/* A name any file system accepts and our contract allows. */
static bool safe_name(const char *s)
{
	if (!*s || strlen(s) > 255 || s[0] == '.' || strchr(s, '/'))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return valid_utf8(s);
}

static const struct {
	const char *subject;
	unsigned n;
	const char *want;
} messages[] = {
	{ "Quarterly numbers", 1, "2026-11-20 0931 Quarterly numbers.eml" },
	{ "Quarterly numbers", 2, "2026-11-20 0931 Quarterly numbers (2).eml" },
	{ "Quarterly numbers", 13, "2026-11-20 0931 Quarterly numbers (13).eml" },
	{ "../x", 1, "2026-11-20 0931 ..\xe2\x88\x95x.eml" },
	{ "a/b", 1, "2026-11-20 0931 a\xe2\x88\x95" "b.eml" },
	{ ".hidden", 1, "2026-11-20 0931 .hidden.eml" },
	{ "a\x01" "b\tc\x7f" "d\r\ne", 1, "2026-11-20 0931 a b c d e.eml" },
	{ "  lots   of   space  ", 1, "2026-11-20 0931 lots of space.eml" },
	{ "", 1, "2026-11-20 0931 (no subject).eml" },
	{ NULL, 1, "2026-11-20 0931 (no subject).eml" },
	{ "   ", 1, "2026-11-20 0931 (no subject).eml" },
	{ "\xff\xfe" "bad", 1, "2026-11-20 0931 \xef\xbf\xbd\xef\xbf\xbd" "bad.eml" },
	{ "over\xc0\xaflong", 1, "2026-11-20 0931 over\xef\xbf\xbd\xef\xbf\xbdlong.eml" },
	{ "Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac", 1,
	  "2026-11-20 0931 Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac.eml" },
	{ "line\xe2\x80\xa8sep", 1, "2026-11-20 0931 line sep.eml" },
};

static const struct {
	const char *server;
	unsigned n;
	const char *want;
} folders[] = {
	{ "Inbox", 1, "Inbox" },
	{ "Sent Items", 1, "Sent Items" },
	{ "a/b", 1, "a\xe2\x88\x95" "b" },
	{ ".hidden", 1, "\xef\xbc\x8ehidden" },
	{ ".", 1, "\xef\xbc\x8e" },
	{ "..", 1, "\xef\xbc\x8e." },
	{ "", 1, "(unnamed)" },
	{ "Projects", 2, "Projects (2)" },
	{ "tab\there", 1, "tab\xef\xbf\xbdhere" },
};

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	int64_t t = 1795167060; /* 2026-11-20 09:31 UTC */

	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		char *name = names_message(t, messages[i].subject, messages[i].n);
		CHECK_STR(name, messages[i].want);
		CHECK(safe_name(name));
		free(name);
	}

	/* long subjects: cut to 255 bytes on a UTF-8 boundary, suffix kept */
	char longs[1001];
	memset(longs, 'x', 1000);
	longs[1000] = 0;
	for (unsigned n = 1; n <= 1000; n *= 10) {
		char *name = names_message(t, longs, n);
		CHECK(strlen(name) <= 255);
		CHECK(safe_name(name));
		CHECK(!strcmp(name + strlen(name) - 4, ".eml"));
		free(name);
	}
	char euros[3 * 200 + 1] = "";
	for (int i = 0; i < 200; i++)
		strcat(euros, "\xe2\x82\xac");
	for (unsigned n = 1; n <= 3; n++) {
		char *name = names_message(t, euros, n);
		CHECK(strlen(name) <= 255);
		CHECK(valid_utf8(name));
		free(name);
	}
	/* other kinds (cache/kinds.h): an event dated, a card by name */
	static const struct { const char *subject; unsigned n; const char *ext;
			      bool dated; const char *want; } items[] = {
		{ "Design review", 1, ".ics", true,
		  "2026-11-20 0931 Design review.ics" },
		{ "J\xc3\xbcrgen M\xc3\xbcller", 1, ".vcf", false,
		  "J\xc3\xbcrgen M\xc3\xbcller.vcf" },
		{ "Bob", 2, ".vcf", false, "Bob (2).vcf" },
		{ ".hidden", 1, ".vcf", false, "_hidden.vcf" },
		{ "a/b", 1, ".vcf", false, "a\xe2\x88\x95" "b.vcf" },
		{ "", 1, ".vcf", false, "(no name).vcf" },
		{ NULL, 1, ".ics", true, "2026-11-20 0931 (no subject).ics" },
	};
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
		char *name = names_item(t, items[i].subject, items[i].n,
					items[i].ext, items[i].dated);
		CHECK_STR(name, items[i].want);
		CHECK(safe_name(name));
		free(name);
	}
	char *lv = names_item(t, longs, 1, ".vcf", false);
	CHECK(strlen(lv) <= 255 && !strcmp(lv + strlen(lv) - 4, ".vcf"));
	free(lv);

	/* distinct collision numbers give distinct names */
	char *a = names_message(t, longs, 2), *b = names_message(t, longs, 3);
	CHECK(strcmp(a, b) != 0);
	free(a);
	free(b);

	for (size_t i = 0; i < sizeof(folders) / sizeof(folders[0]); i++) {
		char *name = names_folder(folders[i].server, folders[i].n);
		CHECK_STR(name, folders[i].want);
		CHECK(safe_name(name));
		if (folders[i].n == 1 && *folders[i].server &&
		    !strchr(folders[i].server, '\t')) {
			char *back = names_folder_to_server(name);
			CHECK_STR(back, folders[i].server);
			free(back);
		}
		free(name);
	}
	char *big = names_folder(longs, 1);
	CHECK(strlen(big) == 255);
	free(big);

	/* display width, for lining up names in the status */
	static const struct { const char *s; size_t w; } widths[] = {
		{ "", 0 }, { "Inbox", 5 }, { "\xC3\x9C" "berweisungen", 13 },
		{ "Q1\xE2\x88\x95Q2 Plans", 11 },         /* U+2215 */
		{ "e\xCC\x81", 1 },                        /* e + U+0301 */
		{ "\xE6\x97\xA5\xE6\x9C\xAC", 4 },      /* two CJK */
		{ "\xF0\x9F\x93\xA7", 2 },                /* U+1F4E7 */
		{ "a\xFF" "b", 3 }, { "\xC3", 1 },             /* not UTF-8 */
	};
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++)
		CHECK(utf8_width(widths[i].s) == widths[i].w);
	return check_done("test_names");
}
