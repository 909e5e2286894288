/*
 * test_vcard.c - the vCard parser and writer (backend/vcard.c): a 3.0
 * card with a photo and non-ASCII names, folding (also inside a UTF-8
 * character), escaping, structured values, 2.1 leftovers
 * (quoted-printable, bare parameters), 3.0 <-> 4.0 photos, round trips
 * that are stable, and tables of invalid cards with their reasons.
 */
#include "backend/vcard.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "backend/util.h"

static const char *card30 =
	"BEGIN:VCARD\r\n"
	"VERSION:3.0\r\n"
	"UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\n"
	"FN:Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m\r\n"
	"N:\xc3\x85ngstr\xc3\xb6m;Zo\xc3\xab;;Dr.;\r\n"
	"NICKNAME:\xe5\xb1\xb1\xe7\x94\xb0\r\n"
	"EMAIL;TYPE=INTERNET,PREF:zoe@example.org\r\n"
	"EMAIL;TYPE=INTERNET,HOME:zoe@home.example\r\n"
	"TEL;TYPE=CELL:+46 70 123 45 67\r\n"
	"item1.ADR;TYPE=WORK:;;Drottninggatan 1\\, 3 tr;Stockholm;;111 51;Sweden\r\n"
	"item1.X-ABLABEL:Office\r\n"
	"ORG:Acme AB;R&D\r\n"
	"NOTE:line one\\nline two\\, with comma\\; and semicolon \\\\ back\r\n"
	"NOTE;LANGUAGE=\"sv\":a very long note that goes on and on and on so that the wri\r\n"
	" ter has to fold it at seventy-five octets, twice\r\n"
	"BDAY:1980-02-29\r\n"
	"PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ\r\n"
	" EASABIAAD/2wBDAA==\r\n"
	"CATEGORIES:friends,work\r\n"
	"END:VCARD\r\n";

static void test_read(void)
{
	char err[256] = "";
	struct vcard *c = vcard_parse(card30, strlen(card30), false, err,
				      sizeof(err));
	CHECK(c != NULL);
	if (!c) {
		printf("  %s\n", err);
		return;
	}
	CHECK(c->version == 30);
	char *t = vcard_text(vcard_get(c, "fn"));
	CHECK_STR(t, "Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m");
	free(t);
	const struct vcard_prop *n = vcard_get(c, "N");
	char *fam = vcard_part(n, 0), *giv = vcard_part(n, 1),
	     *pre = vcard_part(n, 3), *past = vcard_part(n, 9);
	CHECK_STR(fam, "\xc3\x85ngstr\xc3\xb6m");
	CHECK_STR(giv, "Zo\xc3\xab");
	CHECK_STR(pre, "Dr.");
	CHECK_STR(past, "");
	free(fam); free(giv); free(pre); free(past);
	const struct vcard_prop *adr = vcard_get(c, "ADR");
	CHECK_STR(adr->group, "item1");
	CHECK(vcard_has_type(adr, "work") && !vcard_has_type(adr, "home"));
	char *street = vcard_part(adr, 2);
	CHECK_STR(street, "Drottninggatan 1, 3 tr");
	free(street);
	const struct vcard_prop *e = vcard_get(c, "EMAIL");
	CHECK(vcard_has_type(e, "PREF"));
	e = vcard_next(c, e);
	CHECK(e && vcard_has_type(e, "HOME") && !vcard_has_type(e, "PREF"));
	CHECK(vcard_next(c, e) == NULL);
	t = vcard_text(vcard_get(c, "NOTE"));
	CHECK_STR(t, "line one\nline two, with comma; and semicolon \\ back");
	free(t);
	const struct vcard_prop *note2 = vcard_next(c, vcard_get(c, "NOTE"));
	CHECK_STR(vcard_param(note2, "language"), "sv");
	CHECK(strstr(note2->value, "the writer has to") != NULL);
	unsigned char *img;
	size_t len;
	char mt[64];
	CHECK(vcard_photo(c, &img, &len, mt) == 0);
	CHECK_STR(mt, "image/jpeg");
	CHECK(len >= 4 && img[0] == 0xff && img[1] == 0xd8);
	free(img);
	vcard_free(c);
}

/* write(parse(x)) is a fixed point, for 3.0 and for 4.0; photos cross */
static void test_round_trip(void)
{
	char err[256] = "";
	struct vcard *c = vcard_parse(card30, strlen(card30), false, err,
				      sizeof(err));
	struct buf a, b, d;
	buf_init(&a, 0); buf_init(&b, 0); buf_init(&d, 0);
	CHECK(vcard_write(c, 30, &a) == 0);
	struct vcard *c2 = vcard_parse(a.data, a.len, false, err, sizeof(err));
	CHECK(c2 && vcard_write(c2, 30, &b) == 0);
	CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	/* every line at most 75 octets, CRLF */
	for (char *s = a.data; *s;) {
		char *e = strstr(s, "\r\n");
		CHECK(e && e - s <= 75);
		s = e ? e + 2 : s + strlen(s);
	}
	/* 4.0: a data: URI; and back to 3.0, the same bytes */
	CHECK(vcard_write(c, 40, &d) == 0);
	CHECK(strstr(d.data, "VERSION:4.0\r\n") != NULL);
	CHECK(strstr(d.data, "PHOTO:data:image/jpeg;base64,/9j/") != NULL);
	struct vcard *c4 = vcard_parse(d.data, d.len, false, err, sizeof(err));
	CHECK(c4 && c4->version == 40);
	unsigned char *i1 = NULL, *i2 = NULL;
	size_t l1 = 0, l2 = 0;
	char mt[64];
	CHECK(c4 && vcard_photo(c4, &i2, &l2, mt) == 0);
	CHECK(vcard_photo(c, &i1, &l1, mt) == 0);
	CHECK(l1 == l2 && i1 && i2 && !memcmp(i1, i2, l1));
	buf_reset(&b);
	CHECK(c4 && vcard_write(c4, 30, &b) == 0);
	CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	free(i1); free(i2);
	vcard_free(c); vcard_free(c2); vcard_free(c4);
	buf_free(&a); buf_free(&b); buf_free(&d);
}

static void test_build(void)
{
	char err[256] = "";
	struct vcard *c = xcalloc(1, sizeof(*c));
	c->version = 30;
	vcard_add_text(c, "UID", "x1");
	vcard_add_text(c, "FN", "M\xc3\xbcller, Hans; Jr.\nsecond line");
	const char *parts[] = { "M\xc3\xbcller", "Hans", "", "", "Jr." };
	vcard_add_parts(c, "N", parts, 5);
	struct vcard_prop *p = vcard_add_text(c, "TEL", "+49 30 1234");
	vcard_add_param(p, "type", "work,voice");
	vcard_add_param(p, "X-ODD", "a:b;c\"d");
	unsigned char png[300];
	for (size_t i = 0; i < sizeof(png); i++)
		png[i] = (unsigned char)i;
	vcard_set_photo(c, png, sizeof(png), "image/png");
	vcard_set_photo(c, png, 10, "image/png");   /* replaces */
	struct buf b;
	buf_init(&b, 0);
	CHECK(vcard_write(c, 30, &b) == 0);
	CHECK(strstr(b.data, "FN:M\xc3\xbcller\\, Hans\\; Jr.\\nsecond line\r\n") != NULL);
	CHECK(strstr(b.data, "TEL;TYPE=work,voice;X-ODD=\"a:b;cd\":+49 30 1234\r\n") != NULL);
	CHECK(strstr(b.data, "PHOTO;ENCODING=b;TYPE=PNG:") != NULL);
	struct vcard *r = vcard_parse(b.data, b.len, false, err, sizeof(err));
	CHECK(r != NULL);
	if (r) {
		char *fn = vcard_text(vcard_get(r, "FN"));
		CHECK_STR(fn, "M\xc3\xbcller, Hans; Jr.\nsecond line");
		free(fn);
		char *sfx = vcard_part(vcard_get(r, "N"), 4);
		CHECK_STR(sfx, "Jr.");
		free(sfx);
		unsigned char *img;
		size_t len;
		char mt[64];
		CHECK(vcard_photo(r, &img, &len, mt) == 0);
		CHECK(len == 10 && !memcmp(img, png, 10));
		CHECK_STR(mt, "image/png");
		free(img);
		CHECK(vcard_get(r, "PHOTO") && !vcard_next(r, vcard_get(r, "PHOTO")));
		CHECK_STR(vcard_param(vcard_get(r, "TEL"), "X-ODD"), "a:b;cd");
	}
	vcard_free(r);
	vcard_free(c);
	buf_free(&b);
}

/* A PHOTO TYPE that is no media type: the 4.0 data: URI says
 * application/octet-stream, and the card still parses (a TYPE of 64
 * bytes of "\xc3\xa9" was cut inside a character: found by fuzz_pim). */
static void test_odd_photo_type(void)
{
	char err[256] = "";
	struct buf in, out;
	buf_init(&in, 0);
	buf_init(&out, 0);
	buf_puts(&in, "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\nPHOTO;ENCODING=b;TYPE=");
	for (int i = 0; i < 40; i++)
		buf_puts(&in, "\xc3\xa9");
	buf_puts(&in, ":/9j/4AAQ\r\nEND:VCARD\r\n");
	struct vcard *c = vcard_parse(in.data, in.len, false, err, sizeof(err));
	CHECK(c != NULL);
	CHECK(c && vcard_write(c, 40, &out) == 0);
	CHECK(strstr(out.data, "PHOTO:data:application/octet-stream;base64,/9j/4AAQ") != NULL);
	struct vcard *r = vcard_parse(out.data, out.len, false, err, sizeof(err));
	CHECK(r != NULL);
	unsigned char *img;
	size_t len;
	char mt[64];
	int got = r ? vcard_photo(r, &img, &len, mt) : -1;
	CHECK(got == 0 && len == 6);
	if (!got)
		free(img);
	vcard_free(c);
	vcard_free(r);
	/* a data: URI whose media type is no media type stays a URI in
	 * 3.0 (it became TYPE=PNG", which does not parse: found by
	 * fuzz_pim) */
	const char *odd = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:a\r\n"
			  "PHOTO:data:image/png\";base64,/9j/\r\nEND:VCARD\r\n";
	c = vcard_parse(odd, strlen(odd), false, err, sizeof(err));
	buf_reset(&out);
	CHECK(c && vcard_write(c, 30, &out) == 0);
	CHECK(strstr(out.data, "PHOTO:data:image/png\";base64,/9j/\r\n") != NULL);
	r = vcard_parse(out.data, out.len, false, err, sizeof(err));
	CHECK(r != NULL);
	vcard_free(c);
	vcard_free(r);
	buf_free(&in);
	buf_free(&out);
}

/* A parameter with an empty value stays one (it was written bare, which
 * reads back as a TYPE: found by fuzz_pim). */
static void test_empty_param(void)
{
	char err[256] = "";
	const char *in = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;X-EMPTY=:a\r\nEND:VCARD\r\n";
	struct vcard *c = vcard_parse(in, strlen(in), false, err, sizeof(err));
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	CHECK(c && vcard_write(c, 30, &a) == 0);
	CHECK(strstr(a.data, "FN;X-EMPTY=:a\r\n") != NULL);
	struct vcard *r = vcard_parse(a.data, a.len, false, err, sizeof(err));
	CHECK(r && vcard_write(r, 30, &b) == 0);
	CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	CHECK(r && !vcard_param(vcard_get(r, "FN"), "TYPE"));
	/* a stray CR inside a parameter: ENCODING=b<CR> is ENCODING=b, as
	 * the writer writes it (found by fuzz_pim) */
	const char *cr = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\n"
			 "PHOTO;ENCODING=b\r;TYPE=JPEG:/9j/\r\nEND:VCARD\r\n";
	struct vcard *k = vcard_parse(cr, strlen(cr), false, err, sizeof(err));
	CHECK(k && !strcmp(vcard_param(vcard_get(k, "PHOTO"), "ENCODING"), "b"));
	vcard_free(k);
	vcard_free(c);
	vcard_free(r);
	buf_free(&a);
	buf_free(&b);
}

/* A VERSION with parameters (found by fuzz_pim): the writer puts its own
 * VERSION, so the card kept a second one that did not read back.  Lenient
 * reading drops it; strict reading refuses it. */
static void test_version_with_params(void)
{
	char err[256] = "";
	const char *in = "BEGIN:VCARD\r\nVERSION;QUOTED-PRINTABLE:J=C3=B6rg M=\r\n"
			 "=C3=BCller\r\nFN:a\r\nEND:VCARD\r\n";
	struct vcard *c = vcard_parse(in, strlen(in), true, err, sizeof(err));
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	CHECK(c && vcard_write(c, 30, &a) == 0);
	CHECK(a.data && strstr(a.data, "VERSION:3.0\r\nFN:a\r\n") != NULL);
	struct vcard *r = vcard_parse(a.data, a.len, false, err, sizeof(err));
	CHECK(r && vcard_write(r, 30, &b) == 0);
	CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	struct vcard *k = vcard_parse(in, strlen(in), false, err, sizeof(err));
	CHECK(!k && strstr(err, "VERSION") != NULL);
	vcard_free(k);
	vcard_free(c);
	vcard_free(r);
	buf_free(&a);
	buf_free(&b);
}

static void test_legacy(void)
{
	char err[256] = "";
	/* vCard 2.1: bare parameters, quoted-printable with a soft break */
	const char *v21 =
		"BEGIN:VCARD\r\nVERSION:2.1\r\n"
		"N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=B6rg\r\n"
		"FN;QUOTED-PRINTABLE:J=C3=B6rg M=\r\n=C3=BCller\r\n"
		"NOTE;ENCODING=QUOTED-PRINTABLE:a=0D=0Ab\r\n"
		"TEL;WORK;VOICE:+49 1\r\n"
		"END:VCARD\r\n";
	struct vcard *c = vcard_parse(v21, strlen(v21), false, err, sizeof(err));
	CHECK(c != NULL);
	if (c) {
		char *fam = vcard_part(vcard_get(c, "N"), 0);
		CHECK_STR(fam, "M\xc3\xbcller");
		free(fam);
		char *fn = vcard_text(vcard_get(c, "FN"));
		CHECK_STR(fn, "J\xc3\xb6rg M\xc3\xbcller");
		free(fn);
		char *note = vcard_text(vcard_get(c, "NOTE"));
		CHECK_STR(note, "a\nb");
		free(note);
		CHECK(vcard_has_type(vcard_get(c, "TEL"), "WORK"));
		CHECK(vcard_param(vcard_get(c, "N"), "ENCODING") == NULL);
		CHECK(c->version == 30);
	}
	vcard_free(c);
	/* a soft break splitting a character; and a line that only names
	 * QUOTED-PRINTABLE in a TYPE is not joined to the next (found by
	 * fuzz_pim) */
	const char *split_qp = "BEGIN:VCARD\r\nVERSION:2.1\r\n"
		"FN;ENCODING=QUOTED-PRINTABLE:M=C3=\r\n=BCller\r\n"
		"NOTE;TYPE=X-QUOTED-PRINTABLE:ends in =\r\nTITLE:t\r\nEND:VCARD\r\n";
	c = vcard_parse(split_qp, strlen(split_qp), false, err, sizeof(err));
	CHECK(c != NULL);
	if (c) {
		char *fn = vcard_text(vcard_get(c, "FN"));
		CHECK_STR(fn, "M\xc3\xbcller");
		free(fn);
		CHECK_STR(vcard_get(c, "NOTE") ? vcard_get(c, "NOTE")->value : NULL,
			  "ends in =");
		CHECK(vcard_get(c, "TITLE") != NULL);
	}
	vcard_free(c);
	/* a fold inside a UTF-8 character (RFC 6350 3.2), LF line ends */
	const char *split = "BEGIN:VCARD\nVERSION:4.0\nFN:Zo\xc3\n \xab\nEND:VCARD\n";
	c = vcard_parse(split, strlen(split), false, err, sizeof(err));
	CHECK(c != NULL);
	if (c) {
		char *fn = vcard_text(vcard_get(c, "FN"));
		CHECK_STR(fn, "Zo\xc3\xab");
		free(fn);
	}
	vcard_free(c);
	/* lenient: bad bytes repaired, a junk line skipped */
	const char *junk = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:caf\xe9\r\n"
			   "this is not a property\r\nEMAIL:a@b\r\nEND:VCARD\r\n";
	c = vcard_parse(junk, strlen(junk), true, err, sizeof(err));
	CHECK(c && c->nprops == 2);
	if (c) {
		char *fn = vcard_text(vcard_get(c, "FN"));
		CHECK_STR(fn, "caf\xef\xbf\xbd");
		free(fn);
	}
	vcard_free(c);
	CHECK(vcard_parse(junk, strlen(junk), false, err, sizeof(err)) == NULL);
}

static void test_invalid(void)
{
	struct buf many, big, params;
	buf_init(&many, 0);
	buf_puts(&many, "BEGIN:VCARD\r\nVERSION:3.0\r\n");
	for (int i = 0; i <= VCARD_MAX_PROPS; i++)
		buf_puts(&many, "NOTE:x\r\n");
	buf_puts(&many, "END:VCARD\r\n");
	buf_init(&big, 0);
	buf_puts(&big, "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:");
	for (unsigned i = 0; i < VCARD_MAX_BYTES; i++)
		buf_append(&big, "x", 1);
	buf_puts(&big, "\r\nEND:VCARD\r\n");
	buf_init(&params, 0);
	buf_puts(&params, "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE");
	for (int i = 0; i <= VCARD_MAX_PARAMS; i++)
		buf_puts(&params, ";X=1");
	buf_puts(&params, ":x\r\nEND:VCARD\r\n");
	const struct { const char *in; const char *why; } t[] = {
		{ "", "not a vCard" },
		{ "hello\r\n", "does not start with BEGIN:VCARD" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\n", "no END:VCARD" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\n",
		  "one card per file" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nBEGIN:VCARD\r\nEND:VCARD\r\n", "nested" },
		{ "BEGIN:VCARD\r\nVERSION:5.0\r\nEND:VCARD\r\n", "VERSION 5.0" },
		{ "BEGIN:VCARD\r\nFN:a\r\nEND:VCARD\r\n", "no VERSION" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\xff\r\nEND:VCARD\r\n", "invalid UTF-8" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\xed\xa0\x80\r\nEND:VCARD\r\n", "invalid UTF-8" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\n:novalue\r\nEND:VCARD\r\n", "not a property" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;=x:a\r\nEND:VCARD\r\n", "bad parameter" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;X=\"open:a\r\nEND:VCARD\r\n", "unterminated quote" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;X=a\"b:c\r\nEND:VCARD\r\n", "no ':'" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;CHARSET=ISO-8859-1:a\r\nEND:VCARD\r\n",
		  "CHARSET=ISO-8859-1" },
		/* decodes to bytes that are not UTF-8 (found by fuzz_pim) */
		{ "BEGIN:VCARD\r\nVERSION:2.1\r\nFN;QUOTED-PRINTABLE:J=C1=B6rg\r\nEND:VCARD\r\n",
		  "invalid UTF-8 in quoted-printable" },
		{ many.data, "over 2000 properties" },
		{ big.data, "byte cap" },
		{ params.data, "over 32 parameters" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char err[256] = "";
		struct vcard *c = vcard_parse(t[i].in, strlen(t[i].in), false,
					      err, sizeof(err));
		CHECK(c == NULL);
		CHECK(strstr(err, t[i].why) != NULL);
		if (!strstr(err, t[i].why))
			printf("  row %zu: got \"%s\"\n", i, err);
		vcard_free(c);
	}
	buf_free(&many);
	buf_free(&big);
	buf_free(&params);
}

static void test_validate(void)
{
	const struct { const char *in, *fallback, *why; } t[] = {
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\n", NULL, NULL },
		{ "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nEND:VCARD\r\n", "from-name", NULL },
		{ "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nEND:VCARD\r\n", NULL, "no UID" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nEND:VCARD\r\n", NULL, "no FN" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:\r\nEND:VCARD\r\n", NULL, "no FN" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nUID:b\r\nFN:A\r\nEND:VCARD\r\n", NULL,
		  "more than one UID" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:\xc3\r\nEND:VCARD\r\n", NULL,
		  "invalid UTF-8" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char err[256] = "";
		int r = vcard_validate(t[i].in, strlen(t[i].in), t[i].fallback,
				       err, sizeof(err));
		if (!t[i].why) {
			CHECK(r == 0);
		} else {
			CHECK(r == -1 && strstr(err, t[i].why));
			CHECK(!strchr(err, '\n'));
		}
	}
}

int main(void)
{
	test_read();
	test_round_trip();
	test_build();
	test_legacy();
	test_odd_photo_type();
	test_empty_param();
	test_version_with_params();
	test_invalid();
	test_validate();
	return check_done("test_vcard");
}
