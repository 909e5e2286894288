/*
 * fuzz_pim.c - libFuzzer target for the content layer (calendar, contacts,
 * tasks): the first byte picks the parser, the rest is its input.
 *   0  ical_normalize() (and, of what it accepts, a second pass that must
 *      give the same bytes) and ical_validate() for events and tasks
 *   1  tz_eas_decode() of ActiveSync's Timezone, and the zone it matches
 *   2  vcard_parse(), lenient and strict; what it accepts is written as 3.0
 *      and 4.0, and each must parse strictly and write the same bytes again
 *   3  a WBXML ApplicationData read as a Calendar, Tasks and Contacts item
 *      (eas_pim.c), and each file made of it converted back
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/eas/eas_pim.h"
#include "backend/ical.h"
#include "backend/tz.h"
#include "backend/util.h"
#include "backend/vcard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_ical(const char *p, size_t n)
{
	char err[256];
	size_t len;
	char *a = ical_normalize(p, n, "fuzz-fallback", &len, err, sizeof(err));
	if (a) {
		size_t len2;
		char *b = ical_normalize(a, len, NULL, &len2, err, sizeof(err));
		if (!b || len2 != len || memcmp(a, b, len))
			abort();   /* normalising is idempotent */
		free(b);
		free(a);
	}
	ical_validate(p, n, ICAL_KIND_EVENT, err, sizeof(err));
	ical_validate(p, n, ICAL_KIND_TODO, err, sizeof(err));
}

static void fuzz_tz(const char *p, size_t n)
{
	char *s = xstrndup(p, n);
	char err[128], zone[TZ_NAME_MAX];
	struct tz_info tz;
	if (!tz_eas_decode(s, &tz, err, sizeof(err)))
		tz_info_to_iana(&tz, 2024, zone);
	free(s);
}

static void write_twice(const struct vcard *c, int version)
{
	char err[256];
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	if (vcard_write(c, version, &a))
		abort();
	struct vcard *r = vcard_parse(a.data, a.len, false, err, sizeof(err));
	if (!r || vcard_write(r, version, &b) || a.len != b.len ||
	    memcmp(a.data, b.data, a.len))
		abort();   /* the writer's output is stable */
	vcard_free(r);
	buf_free(&a);
	buf_free(&b);
}

static void fuzz_vcard(const char *p, size_t n)
{
	char err[256];
	struct vcard *c = vcard_parse(p, n, true, err, sizeof(err));
	if (c) {
		write_twice(c, 30);
		write_twice(c, 40);
		unsigned char *img;
		size_t len;
		char mt[64];
		if (!vcard_photo(c, &img, &len, mt))
			free(img);
		vcard_free(c);
	}
	vcard_free(vcard_parse(p, n, false, err, sizeof(err)));
	vcard_validate(p, n, NULL, err, sizeof(err));
}

static void back(int kind, const char *text, size_t len)
{
	struct buf b;
	struct wbxml_enc e;
	char err[256];
	buf_init(&b, 1 << 24);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	if (kind == 0)
		eas_ical_to_calendar(text, len, "Europe/Berlin", &e, err, sizeof(err));
	else if (kind == 1)
		eas_ical_to_task(text, len, "Europe/Berlin", &e, err, sizeof(err));
	else
		eas_vcard_to_contact(text, len, &e, err, sizeof(err));
	buf_free(&b);
}

static void fuzz_eas(const char *p, size_t n)
{
	char err[256];
	struct wbxml_node *t = wbxml_parse(p, n, 1 << 20, 2000, err, sizeof(err));
	if (!t || !t->child) {
		wbxml_free(t);
		return;
	}
	size_t len;
	char *s = eas_calendar_to_ical(t->child, "fuzz", "Europe/Berlin", &len,
				       err, sizeof(err));
	if (s)
		back(0, s, len);
	free(s);
	s = eas_task_to_ical(t->child, "fuzz", NULL, &len, err, sizeof(err));
	if (s)
		back(1, s, len);
	free(s);
	s = eas_contact_to_vcard(t->child, "fuzz", 30, &len, err, sizeof(err));
	if (s)
		back(2, s, len);
	free(s);
	wbxml_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 4) {
	case 0: fuzz_ical(p, n); break;
	case 1: fuzz_tz(p, n); break;
	case 2: fuzz_vcard(p, n); break;
	case 3: fuzz_eas(p, n); break;
	}
	return 0;
}
