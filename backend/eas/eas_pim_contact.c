/*
 * eas_pim_contact.c - ActiveSync Contacts <-> vCard (see eas_pim.h).
 *
 * Mapping (MS-ASCNTC; RFC 2426/6350):
 *   LastName;FirstName;MiddleName;Title;Suffix -> N
 *   FileAs              -> FN (FN only goes back as FileAs when it is not
 *                          just the names in order, which Exchange derives)
 *   Email1-3Address     -> EMAIL;TYPE=INTERNET, in order
 *   phones              -> TEL with TYPE (table below)
 *   Business/Home/Other address fields -> ADR;TYPE=WORK/HOME/OTHER
 *   CompanyName;Department -> ORG, JobTitle -> TITLE, WebPage -> URL
 *   Birthday            -> BDAY (the date; a time after noon UTC is the
 *                          next day's midnight east of UTC)
 *   Body (plain text)   -> NOTE, Picture -> PHOTO (JPEG), Categories ->
 *                          CATEGORIES (one per category)
 * ActiveSync keeps no UID for a contact: the file's UID is the server id.
 */
#include "backend/eas/eas_pim.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/util.h"
#include "backend/vcard.h"
#include "backend/xml.h"

static const char *txt(const struct wbxml_node *n, unsigned tag)
{
	const char *t = n ? wbxml_child_text(n, tag) : NULL;
	return t && *t ? t : NULL;
}

/* Phones: the element, its TYPEs, in the order a TEL is matched. */
static const struct { unsigned tag; const char *types; } phones[] = {
	{ WB_CO_MOBILE_PHONE, "CELL" },
	{ WB_CO_PAGER, "PAGER" },
	{ WB_CO_CAR_PHONE, "CAR" },
	{ WB_CO_RADIO_PHONE, "X-RADIO" },
	{ WB_CO_ASSISTANT_PHONE, "X-ASSISTANT" },
	{ WB_CO_HOME_FAX, "HOME,FAX" },
	{ WB_CO_BUSINESS_FAX, "WORK,FAX" },
	{ WB_CO_HOME_PHONE, "HOME,VOICE" },
	{ WB_CO_HOME2_PHONE, "HOME,VOICE" },
	{ WB_CO_BUSINESS_PHONE, "WORK,VOICE" },
	{ WB_CO_BUSINESS2_PHONE, "WORK,VOICE" },
};
#define N_PHONES (sizeof(phones) / sizeof(phones[0]))

/* Addresses: street, city, state, postal code, country per kind. */
static const struct { const char *type; unsigned f[5]; } addrs[] = {
	{ "WORK", { WB_CO_BUSINESS_STREET, WB_CO_BUSINESS_CITY,
		    WB_CO_BUSINESS_STATE, WB_CO_BUSINESS_POSTAL_CODE,
		    WB_CO_BUSINESS_COUNTRY } },
	{ "HOME", { WB_CO_HOME_STREET, WB_CO_HOME_CITY, WB_CO_HOME_STATE,
		    WB_CO_HOME_POSTAL_CODE, WB_CO_HOME_COUNTRY } },
	{ "OTHER", { WB_CO_OTHER_STREET, WB_CO_OTHER_CITY, WB_CO_OTHER_STATE,
		     WB_CO_OTHER_POSTAL_CODE, WB_CO_OTHER_COUNTRY } },
};

/* "First Middle Last" with the parts there are. */
static char *composed_name(const char *first, const char *middle,
			   const char *last)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "");
	const char *p[] = { first, middle, last };
	for (int i = 0; i < 3; i++)
		if (p[i] && *p[i])
			buf_printf(&b, "%s%s", b.len ? " " : "", p[i]);
	return b.data;
}

static int collect(void *arg, const void *p, size_t n)
{
	return buf_append(arg, p, n);
}

char *eas_contact_to_vcard(const struct wbxml_node *ad, const char *server_id,
			   int version, size_t *len, char *err, size_t errlen)
{
	struct vcard *c = xcalloc(1, sizeof(*c));
	c->version = version == 40 ? 40 : 30;
	vcard_add_text(c, "UID", server_id);
	const char *first = txt(ad, WB_CO_FIRST_NAME),
		   *middle = txt(ad, WB_CO_MIDDLE_NAME),
		   *last = txt(ad, WB_CO_LAST_NAME);
	char *comp = composed_name(first, middle, last);
	const char *fn = txt(ad, WB_CO_FILE_AS);
	if (!fn)
		fn = *comp ? comp : txt(ad, WB_CO_COMPANY_NAME);
	if (!fn)
		fn = txt(ad, WB_CO_EMAIL1);
	vcard_add_text(c, "FN", fn ? fn : server_id);
	free(comp);
	const char *np[] = { last, first, middle, txt(ad, WB_CO_TITLE),
			     txt(ad, WB_CO_SUFFIX) };
	if (np[0] || np[1] || np[2] || np[3] || np[4])
		vcard_add_parts(c, "N", np, 5);
	static const unsigned mails[] = { WB_CO_EMAIL1, WB_CO_EMAIL2, WB_CO_EMAIL3 };
	for (int i = 0; i < 3; i++)
		if (txt(ad, mails[i]))
			vcard_add_param(vcard_add_text(c, "EMAIL", txt(ad, mails[i])),
					"TYPE", "INTERNET");
	for (size_t i = 0; i < N_PHONES; i++)
		if (txt(ad, phones[i].tag))
			vcard_add_param(vcard_add_text(c, "TEL",
				txt(ad, phones[i].tag)), "TYPE", phones[i].types);
	for (size_t i = 0; i < 3; i++) {
		const char *v[7] = { "", "" };
		bool any = false;
		for (int k = 0; k < 5; k++) {
			v[2 + k] = txt(ad, addrs[i].f[k]);
			any |= v[2 + k] != NULL;
		}
		if (any)
			vcard_add_param(vcard_add_parts(c, "ADR", v, 7), "TYPE",
					addrs[i].type);
	}
	const char *org[] = { txt(ad, WB_CO_COMPANY_NAME), txt(ad, WB_CO_DEPARTMENT) };
	if (org[0] || org[1])
		vcard_add_parts(c, "ORG", org, org[1] ? 2 : 1);
	if (txt(ad, WB_CO_JOB_TITLE))
		vcard_add_text(c, "TITLE", txt(ad, WB_CO_JOB_TITLE));
	if (txt(ad, WB_CO_WEB_PAGE))
		vcard_add_text(c, "URL", txt(ad, WB_CO_WEB_PAGE));
	int y, m, d, h = 0;
	const char *bd = txt(ad, WB_CO_BIRTHDAY);
	if (bd && sscanf(bd, "%4d-%2d-%2dT%2d", &y, &m, &d, &h) >= 3 &&
	    m >= 1 && m <= 12 && d >= 1 && d <= 31) {
		if (h >= 12) {   /* local midnight east of UTC */
			static const int md[] = { 31, 29, 31, 30, 31, 30, 31,
						  31, 30, 31, 30, 31 };
			int ml = md[m - 1] - (m == 2 && !(y % 4 == 0 &&
				(y % 100 || y % 400 == 0)));
			if (++d > ml) {
				d = 1;
				if (++m > 12) {
					m = 1;
					y++;
				}
			}
		}
		char s[16];
		snprintf(s, sizeof(s), c->version == 40 ? "%04d%02d%02d"
							: "%04d-%02d-%02d", y, m, d);
		vcard_add_text(c, "BDAY", s);
	}
	const struct wbxml_node *body = wbxml_child(ad, WB_ASB_BODY);
	const char *note = body ? txt(body, WB_ASB_DATA) : txt(ad, WB_CO_BODY);
	if (note)
		vcard_add_text(c, "NOTE", note);
	const struct wbxml_node *cats = wbxml_child(ad, WB_CO_CATEGORIES);
	for (const struct wbxml_node *x = wbxml_child(cats, WB_CO_CATEGORY); x;
	     x = wbxml_next(x))
		if (x->text && *x->text)
			vcard_add_text(c, "CATEGORIES", x->text);
	const char *pic = txt(ad, WB_CO_PICTURE);
	if (pic) {
		struct buf img;
		struct b64_stream st;
		buf_init(&img, VCARD_MAX_BYTES);
		b64_stream_init(&st, collect, &img);
		if (!b64_stream_feed(&st, pic, strlen(pic)) &&
		    !b64_stream_finish(&st) && img.len)
			vcard_set_photo(c, img.data, img.len, "image/jpeg");
		buf_free(&img);
	}
	struct buf out;
	buf_init(&out, VCARD_MAX_BYTES);
	if (vcard_write(c, c->version, &out)) {
		snprintf(err, errlen, "contact over the %u byte cap",
			 VCARD_MAX_BYTES);
		buf_free(&out);
		vcard_free(c);
		return NULL;
	}
	vcard_free(c);
	if (len)
		*len = out.len;
	return out.data;
}

/* ---- vCard -> Contacts ---- */

#define CO_FIELDS 64
struct co_fields { unsigned tag[CO_FIELDS]; char *val[CO_FIELDS]; int n; };

static void co_set(struct co_fields *f, unsigned tag, char *val)
{
	if (!val || !*val || f->n == CO_FIELDS) {
		free(val);
		return;
	}
	f->tag[f->n] = tag;
	f->val[f->n++] = val;
}

static bool co_has(const struct co_fields *f, unsigned tag)
{
	for (int i = 0; i < f->n; i++)
		if (f->tag[i] == tag)
			return true;
	return false;
}

/* The phone slot a TEL goes to: the first free entry whose TYPEs it
 * has; a TEL without a known type takes the first free voice slot. */
static int phone_slot(const struct vcard_prop *p, const struct co_fields *f)
{
	bool typed = false;
	for (size_t i = 0; i < N_PHONES; i++) {
		char types[32], *save = NULL;
		snprintf(types, sizeof(types), "%s", phones[i].types);
		bool all = true;
		for (char *t = strtok_r(types, ",", &save); t;
		     t = strtok_r(NULL, ",", &save))
			if (strcmp(t, "VOICE") && !vcard_has_type(p, t))
				all = false;
		bool fax = strstr(phones[i].types, "FAX") != NULL;
		if (!all || (!fax && vcard_has_type(p, "FAX")))
			continue;
		typed = true;
		if (!co_has(f, phones[i].tag))
			return (int)i;
	}
	if (!typed)
		for (size_t i = 7; i < N_PHONES; i++)   /* the voice slots */
			if (!co_has(f, phones[i].tag))
				return (int)i;
	return -1;
}

static void enc_fields(struct wbxml_enc *e, struct co_fields *f,
		       unsigned from, unsigned to)
{
	for (unsigned tag = from; tag <= to; tag++)
		for (int i = 0; i < f->n; i++)
			if (f->tag[i] == tag)
				wbxml_str(e, tag, f->val[i]);
}

/* CATEGORIES values split at unescaped commas. */
static void categories(const struct vcard *c, struct wbxml_enc *e)
{
	const struct vcard_prop *p = vcard_get(c, "CATEGORIES");
	if (!p)
		return;
	wbxml_start(e, WB_CO_CATEGORIES);
	for (; p; p = vcard_next(c, p)) {
		const char *s = p->value;
		while (*s) {
			struct buf b;
			buf_init(&b, 0);
			buf_puts(&b, "");
			for (; *s && *s != ','; s++) {
				if (*s == '\\' && s[1]) {
					s++;
					buf_append(&b, *s == 'n' || *s == 'N' ? "\n" : s, 1);
				} else {
					buf_append(&b, s, 1);
				}
			}
			if (*s == ',')
				s++;
			if (b.len)
				wbxml_str(e, WB_CO_CATEGORY, b.data);
			buf_free(&b);
		}
	}
	wbxml_end(e);
}

int eas_vcard_to_contact(const char *vcf, size_t len, struct wbxml_enc *e,
			 char *err, size_t errlen)
{
	if (vcard_validate(vcf, len, "(the server's)", err, errlen))
		return -1;
	struct vcard *c = vcard_parse(vcf, len, false, err, errlen);
	if (!c)
		return -1;
	struct co_fields f = { .n = 0 };
	int r = -1;
	const struct vcard_prop *n = vcard_get(c, "N");
	char *first = n ? vcard_part(n, 1) : NULL, *middle = n ? vcard_part(n, 2) : NULL,
	     *last = n ? vcard_part(n, 0) : NULL;
	char *fn = vcard_text(vcard_get(c, "FN"));
	char *comp = composed_name(first, middle, last);
	if (strcmp(fn, comp))
		co_set(&f, WB_CO_FILE_AS, xstrdup(fn));
	free(fn);
	free(comp);
	if (n) {
		co_set(&f, WB_CO_LAST_NAME, last);
		co_set(&f, WB_CO_FIRST_NAME, first);
		co_set(&f, WB_CO_MIDDLE_NAME, middle);
		co_set(&f, WB_CO_TITLE, vcard_part(n, 3));
		co_set(&f, WB_CO_SUFFIX, vcard_part(n, 4));
	}
	static const unsigned mails[] = { WB_CO_EMAIL1, WB_CO_EMAIL2, WB_CO_EMAIL3 };
	int nm = 0;
	for (const struct vcard_prop *p = vcard_get(c, "EMAIL"); p;
	     p = vcard_next(c, p)) {
		if (nm == 3) {
			snprintf(err, errlen,
				 "more than 3 EMAIL (ActiveSync keeps 3)");
			goto out;
		}
		co_set(&f, mails[nm++], vcard_text(p));
	}
	for (const struct vcard_prop *p = vcard_get(c, "TEL"); p;
	     p = vcard_next(c, p)) {
		int i = phone_slot(p, &f);
		if (i < 0) {
			char *t = vcard_text(p);
			snprintf(err, errlen,
				 "no ActiveSync field left for TEL %.40s", t);
			free(t);
			goto out;
		}
		co_set(&f, phones[i].tag, vcard_text(p));
	}
	for (const struct vcard_prop *p = vcard_get(c, "ADR"); p;
	     p = vcard_next(c, p)) {
		size_t k = vcard_has_type(p, "WORK") ? 0 :
			   vcard_has_type(p, "HOME") ? 1 : 2;
		if (co_has(&f, addrs[k].f[0]) || co_has(&f, addrs[k].f[1]) ||
		    co_has(&f, addrs[k].f[4])) {
			snprintf(err, errlen,
				 "two ADR of type %s (ActiveSync keeps one)",
				 addrs[k].type);
			goto out;
		}
		/* post office box and extended address go before the street */
		struct buf st;
		buf_init(&st, 0);
		buf_puts(&st, "");
		for (size_t i = 0; i < 3; i++) {
			char *part = vcard_part(p, i);
			if (*part)
				buf_printf(&st, "%s%s", st.len ? "\n" : "", part);
			free(part);
		}
		co_set(&f, addrs[k].f[0], st.data);
		for (size_t i = 1; i < 5; i++)
			co_set(&f, addrs[k].f[i], vcard_part(p, 2 + i));
	}
	const struct vcard_prop *org = vcard_get(c, "ORG");
	if (org) {
		co_set(&f, WB_CO_COMPANY_NAME, vcard_part(org, 0));
		co_set(&f, WB_CO_DEPARTMENT, vcard_part(org, 1));
	}
	const struct vcard_prop *p;
	if ((p = vcard_get(c, "TITLE")))
		co_set(&f, WB_CO_JOB_TITLE, vcard_text(p));
	if ((p = vcard_get(c, "URL")))
		co_set(&f, WB_CO_WEB_PAGE, vcard_text(p));
	if ((p = vcard_get(c, "BDAY"))) {
		int y, m, d;
		if (sscanf(p->value, "%4d-%2d-%2d", &y, &m, &d) == 3 ||
		    sscanf(p->value, "%4d%2d%2d", &y, &m, &d) == 3)
			co_set(&f, WB_CO_BIRTHDAY, xasprintf(
				"%04d-%02d-%02dT00:00:00.000Z", y, m, d));
	}
	unsigned char *img = NULL;
	size_t ilen;
	char mt[64];
	if (!vcard_photo(c, &img, &ilen, mt)) {
		struct buf b;
		buf_init(&b, 0);
		b64_encode(&b, img, ilen);
		buf_puts(&b, "");
		co_set(&f, WB_CO_PICTURE, b.data);
		free(img);
	}
	/* the schema's order: the code page's */
	enc_fields(e, &f, WB_CO_ANNIVERSARY, WB_CO_BIRTHDAY);
	if ((p = vcard_get(c, "NOTE"))) {
		char *t = vcard_text(p);
		wbxml_start(e, WB_ASB_BODY);
		wbxml_uint(e, WB_ASB_TYPE, 1);
		wbxml_str(e, WB_ASB_DATA, t);
		wbxml_end(e);
		free(t);
	}
	enc_fields(e, &f, WB_CO_BODY, WB_CO_CAR_PHONE);
	categories(c, e);
	enc_fields(e, &f, WB_CO_CHILDREN, WB_CO_WEIGHTED_RANK);
	r = 0;
out:
	for (int i = 0; i < f.n; i++)
		free(f.val[i]);
	vcard_free(c);
	return r;
}
