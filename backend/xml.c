/*
 * xml.c - libxml2 with the safety catch on (see xml.h): tree parsing of
 * capped answers, a push parser for streamed ones, lookup by namespace URI,
 * and the XML Schema simple types (boolean, long, dateTime, base64Binary).
 */
#include "xml.h"
#include "util.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void)
{
	xmlInitParser();
}

/* libxml2 reports a few errors outside any parser context through a
 * per-thread generic handler that prints to stderr; route them to the
 * debug log instead. */
static void xml_generic_error(void *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
	log_dbg(LC_XML, "libxml2 reported an error outside a parse");
}

void xml_init(void)
{
	pthread_once(&xml_once, xml_init_once);
	xmlSetGenericErrorFunc(NULL, xml_generic_error);
}

/* Keep the first error as "malformed XML at line N: message". */
static void note_error(char *err, size_t errlen, const xmlError *e)
{
	if (!errlen || err[0] || (e && e->level == XML_ERR_WARNING))
		return;
	const char *m = e && e->message ? e->message : "parse error";
	size_t ml = strcspn(m, "\r\n");
	if (ml > 200)
		ml = 200;
	snprintf(err, errlen, "malformed XML at line %d: %.*s",
		 e ? e->line : 0, (int)ml, m);
}

/* ---- Exchange quirk: references to characters XML 1.0 forbids ----
 * Exchange writes a control character in a subject or name (U+0001) as a
 * character reference (&#x1;), which no conforming parser accepts.  The
 * filter below drops such references before libxml2 sees them, so the
 * character is dropped as buf_put_xml_escaped() drops it on the way out.
 * It works on input cut anywhere.  (Inside CDATA or a comment the same
 * text would be dropped too; EWS uses neither.) */

static bool xml_char_ok(uint64_t cp)
{
	return cp == 0x9 || cp == 0xA || cp == 0xD ||
	       (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
	       (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* pend holds what was read of a reference: "&", "&#", "&#x", then digits,
 * 12 characters at most (longer ones go to libxml2 as they are). */
struct charref_filter {
	size_t npend;
	char pend[16];
};

typedef int (*span_fn)(void *arg, const char *d, size_t len);

/* Decide on the pending reference now complete with ';'. */
static int charref_end(struct charref_filter *f, span_fn out, void *arg)
{
	bool hex = f->npend > 2 && f->pend[2] == 'x';
	size_t first = hex ? 3 : 2;
	uint64_t cp = 0;  /* at most 10 digits: no overflow */
	for (size_t i = first; i < f->npend; i++) {
		char c = f->pend[i];
		cp = cp * (hex ? 16 : 10) +
		     (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	size_t n = f->npend;
	f->npend = 0;
	if (n > first && !xml_char_ok(cp))
		return 0;  /* dropped */
	if (out(arg, f->pend, n))
		return -1;
	return out(arg, ";", 1);
}

static int charref_feed(struct charref_filter *f, const char *d, size_t len,
			span_fn out, void *arg)
{
	size_t run = 0;  /* start of bytes passed through unchanged */
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		if (f->npend) {
			bool hex = f->npend > 2 && f->pend[2] == 'x';
			bool digit = (c >= '0' && c <= '9') ||
				     (hex && ((c | 0x20) >= 'a' &&
					      (c | 0x20) <= 'f'));
			if ((f->npend == 1 && c == '#') ||
			    (f->npend == 2 && c == 'x') ||
			    (f->npend >= 2 && digit && f->npend < 12)) {
				f->pend[f->npend++] = c;
				run = i + 1;
				continue;
			}
			if (c == ';' && f->npend > 2 + (size_t)hex) {
				if (charref_end(f, out, arg))
					return -1;
				run = i + 1;
				continue;
			}
			/* not a reference we judge: as it was, and c below */
			if (out(arg, f->pend, f->npend))
				return -1;
			f->npend = 0;
			run = i;
		}
		if (c == '&') {
			if (i > run && out(arg, d + run, i - run))
				return -1;
			f->pend[0] = '&';
			f->npend = 1;
			run = i + 1;
		}
	}
	if (!f->npend && len > run && out(arg, d + run, len - run))
		return -1;
	return 0;
}

static int charref_finish(struct charref_filter *f, span_fn out, void *arg)
{
	size_t n = f->npend;
	f->npend = 0;
	return n ? out(arg, f->pend, n) : 0;
}

static int buf_span(void *arg, const char *d, size_t len)
{
	return buf_append(arg, d, len);
}

/* ---- tree parsing ---- */

struct tree_state {
	char *err;
	size_t errlen;
	bool dtd;
};

static void tree_serror(void *user, xmlErrorPtr e)
{
	xmlParserCtxt *ctxt = user;
	struct tree_state *st = ctxt->_private;
	note_error(st->err, st->errlen, e);
}

static void tree_reject_dtd(void *user, const xmlChar *name,
			    const xmlChar *ext_id, const xmlChar *sys_id)
{
	xmlParserCtxt *ctxt = user;
	struct tree_state *st = ctxt->_private;
	(void)name; (void)ext_id; (void)sys_id;
	st->dtd = true;
	xmlStopParser(ctxt);
}

static void tree_reject_entity(void *user, const xmlChar *name, int type,
			       const xmlChar *pub, const xmlChar *sys,
			       xmlChar *content)
{
	(void)type; (void)pub; (void)sys; (void)content;
	tree_reject_dtd(user, name, NULL, NULL);
}

xmlDoc *xml_parse(const char *data, size_t len, size_t cap, char *err,
		  size_t errlen)
{
	struct tree_state st = { err, errlen, false };
	if (errlen)
		err[0] = 0;
	if (len > cap || len > INT_MAX) {
		snprintf(err, errlen, "XML answer too large (%zu bytes)", len);
		return NULL;
	}
	xml_init();
	struct buf fixed;
	buf_init(&fixed, 0);
	if (memmem(data, len, "&#", 2)) {
		struct charref_filter f = { 0 };
		charref_feed(&f, data, len, buf_span, &fixed);
		charref_finish(&f, buf_span, &fixed);
		if (!fixed.data)
			buf_append(&fixed, "", 0);
		data = fixed.data;
		len = fixed.len;
	}
	xmlParserCtxt *ctxt = xmlNewParserCtxt();
	if (!ctxt) {
		fprintf(stderr, "exchangefs: out of memory (libxml2)\n");
		abort();
	}
	ctxt->_private = &st;
	ctxt->sax->serror = tree_serror;
	ctxt->sax->internalSubset = tree_reject_dtd;
	ctxt->sax->externalSubset = tree_reject_dtd;
	ctxt->sax->entityDecl = tree_reject_entity;
	xmlDoc *doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL,
					XML_PARSE_NONET | XML_PARSE_NOCDATA |
					XML_PARSE_NOERROR |
					XML_PARSE_NOWARNING);
	/* namespace errors (an undeclared prefix) count as malformed */
	bool ok = doc && ctxt->wellFormed && ctxt->nsWellFormed && !st.dtd &&
		  xmlDocGetRootElement(doc);
	if (!ok) {
		if (st.dtd) {
			if (errlen)
				err[0] = 0;
			snprintf(err, errlen,
				 "XML with a document type declaration refused");
		} else if (errlen && !err[0]) {
			snprintf(err, errlen, "malformed XML");
		}
		if (doc)
			xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	buf_free(&fixed);
	return doc;
}

bool xml_is(const xmlNode *n, const char *ns, const char *name)
{
	if (!n || n->type != XML_ELEMENT_NODE)
		return false;
	if (name && strcmp((const char *)n->name, name))
		return false;
	const char *uri = n->ns ? (const char *)n->ns->href : NULL;
	if (!ns)
		return !uri || !*uri;
	return uri && !strcmp(uri, ns);
}

xmlNode *xml_next(const xmlNode *n, const char *ns, const char *name)
{
	for (n = n ? n->next : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE &&
		    (!name || xml_is(n, ns, name)))
			return (xmlNode *)n;
	return NULL;
}

xmlNode *xml_child(const xmlNode *parent, const char *ns, const char *name)
{
	if (!parent)
		return NULL;
	xmlNode *c = parent->children;
	if (!c)
		return NULL;
	if (c->type == XML_ELEMENT_NODE && (!name || xml_is(c, ns, name)))
		return c;
	return xml_next(c, ns, name);
}

int xml_text(const xmlNode *n, size_t cap, char **out)
{
	size_t len = 0;
	*out = NULL;
	for (const xmlNode *c = n->children; c; c = c->next)
		if ((c->type == XML_TEXT_NODE ||
		     c->type == XML_CDATA_SECTION_NODE) && c->content) {
			len += strlen((const char *)c->content);
			if (len > cap)
				return -1;
		}
	char *s = xmalloc(len + 1);
	size_t at = 0;
	for (const xmlNode *c = n->children; c; c = c->next)
		if ((c->type == XML_TEXT_NODE ||
		     c->type == XML_CDATA_SECTION_NODE) && c->content) {
			size_t l = strlen((const char *)c->content);
			memcpy(s + at, c->content, l);
			at += l;
		}
	s[at] = 0;
	*out = s;
	return 0;
}

int xml_attr(const xmlNode *n, const char *name, size_t cap, char **out)
{
	*out = NULL;
	xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
	if (!v)
		return 0;
	int rc = 0;
	if (strlen((const char *)v) > cap)
		rc = -1;
	else
		*out = xstrdup((const char *)v);
	xmlFree(v);
	return rc;
}

/* ---- push parsing ---- */

struct xml_push {
	xmlParserCtxt *ctxt;
	struct xml_push_cb cb;
	void *arg;
	bool stopped;    /* a callback asked to stop */
	bool dtd;        /* a DOCTYPE was seen and refused */
	bool finished;
	size_t nhead;    /* first bytes held back to look for a BOM */
	unsigned char head[3];
	struct charref_filter crf;
	char err[256];
};

static void push_stop(struct xml_push *p)
{
	p->stopped = true;
	xmlStopParser(p->ctxt);
}

static void push_serror(void *user, xmlErrorPtr e)
{
	struct xml_push *p = user;
	if (!p->stopped)
		note_error(p->err, sizeof(p->err), e);
}

static void push_reject_dtd(void *user, const xmlChar *name,
			    const xmlChar *ext_id, const xmlChar *sys_id)
{
	struct xml_push *p = user;
	(void)name; (void)ext_id; (void)sys_id;
	if (!p->dtd)
		snprintf(p->err, sizeof(p->err),
			 "XML with a document type declaration refused");
	p->dtd = true;
	xmlStopParser(p->ctxt);
}

static void push_reject_entity(void *user, const xmlChar *name, int type,
			       const xmlChar *pub, const xmlChar *sys,
			       xmlChar *content)
{
	(void)type; (void)pub; (void)sys; (void)content;
	push_reject_dtd(user, name, NULL, NULL);
}

/* A namespace error (undeclared prefix, bad namespace URI) does not stop
 * libxml2; stop at once so the outcome does not depend on where the input
 * was cut into pieces. */
static bool push_ns_broken(struct xml_push *p)
{
	if (p->ctxt->nsWellFormed)
		return false;
	xmlStopParser(p->ctxt);
	return true;
}

static void push_start(void *user, const xmlChar *local, const xmlChar *prefix,
		       const xmlChar *uri, int nb_ns, const xmlChar **ns,
		       int nb_attrs, int nb_defaulted, const xmlChar **attrs)
{
	struct xml_push *p = user;
	(void)prefix; (void)nb_ns; (void)ns; (void)nb_defaulted;
	if (p->stopped || push_ns_broken(p) || !p->cb.start)
		return;
	struct xml_attrs a = { nb_attrs, attrs };
	if (p->cb.start(p->arg, (const char *)uri, (const char *)local, &a))
		push_stop(p);
}

static void push_end(void *user, const xmlChar *local, const xmlChar *prefix,
		     const xmlChar *uri)
{
	struct xml_push *p = user;
	(void)prefix;
	if (p->stopped || push_ns_broken(p) || !p->cb.end)
		return;
	if (p->cb.end(p->arg, (const char *)uri, (const char *)local))
		push_stop(p);
}

static void push_text(void *user, const xmlChar *s, int len)
{
	struct xml_push *p = user;
	if (p->stopped || push_ns_broken(p) || !p->cb.text || len <= 0)
		return;
	if (p->cb.text(p->arg, (const char *)s, (size_t)len))
		push_stop(p);
}

struct xml_push *xml_push_new(const struct xml_push_cb *cb, void *arg)
{
	xml_init();
	struct xml_push *p = xcalloc(1, sizeof(*p));
	p->cb = *cb;
	p->arg = arg;

	/* Only the callbacks below: no document is built, no entity can be
	 * declared (any DTD stops the parse) and getEntity is absent, so a
	 * reference to anything but the predefined entities is an error. */
	xmlSAXHandler sax;
	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = push_start;
	sax.endElementNs = push_end;
	sax.characters = push_text;
	sax.ignorableWhitespace = push_text;
	sax.cdataBlock = push_text;
	sax.internalSubset = push_reject_dtd;
	sax.externalSubset = push_reject_dtd;
	sax.entityDecl = push_reject_entity;
	sax.serror = push_serror;
	p->ctxt = xmlCreatePushParserCtxt(&sax, p, NULL, 0, NULL);
	if (!p->ctxt) {
		fprintf(stderr, "exchangefs: out of memory (libxml2)\n");
		abort();
	}
	/* UTF-8 only, whatever the declaration says: libxml2 2.9 switching
	 * encodings in the middle of a push parse gives results that depend
	 * on where the input was cut (found by fuzzing).  EWS answers are
	 * UTF-8; a UTF-8 byte order mark is dropped by xml_push_feed. */
	xmlSwitchEncoding(p->ctxt, XML_CHAR_ENCODING_UTF8);
	xmlCtxtUseOptions(p->ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR |
			  XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
	return p;
}

static int push_status(struct xml_push *p)
{
	if (p->stopped || p->dtd || !p->ctxt->wellFormed ||
	    !p->ctxt->nsWellFormed) {
		if (!p->err[0] && !p->stopped)
			snprintf(p->err, sizeof(p->err), "malformed XML");
		return -1;
	}
	return 0;
}

/* Bytes to libxml2 (after the character reference filter). */
static int push_raw(void *arg, const char *d, size_t len)
{
	struct xml_push *p = arg;
	while (len) {
		int n = len > (1u << 20) ? (1 << 20) : (int)len;
		xmlParseChunk(p->ctxt, d, n, 0);
		if (push_status(p))
			return -1;
		d += n;
		len -= (size_t)n;
	}
	return 0;
}

static int push_chunk(struct xml_push *p, const char *d, size_t len)
{
	return charref_feed(&p->crf, d, len, push_raw, p);
}

/* Hand over the held-back first bytes, without a UTF-8 byte order mark. */
static int push_head(struct xml_push *p)
{
	static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
	size_t n = p->nhead;
	p->nhead = SIZE_MAX;
	if (n == 3 && !memcmp(p->head, bom, 3))
		return 0;
	return push_chunk(p, (const char *)p->head, n);
}

int xml_push_feed(struct xml_push *p, const void *data, size_t len)
{
	const char *d = data;
	if (p->finished || push_status(p))
		return -1;
	while (p->nhead < 3 && len) {
		p->head[p->nhead++] = (unsigned char)*d++;
		len--;
		if (p->nhead == 3 && push_head(p))
			return -1;
	}
	return push_chunk(p, d, len);
}

int xml_push_finish(struct xml_push *p)
{
	if (p->finished || push_status(p))
		return -1;
	if (p->nhead < 3 && push_head(p))
		return -1;
	if (charref_finish(&p->crf, push_raw, p))
		return -1;
	p->finished = true;
	xmlParseChunk(p->ctxt, NULL, 0, 1);
	return push_status(p);
}

bool xml_push_stopped(const struct xml_push *p)
{
	return p->stopped;
}

const char *xml_push_error(const struct xml_push *p)
{
	return p->err;
}

void xml_push_free(struct xml_push *p)
{
	if (!p)
		return;
	xmlFreeParserCtxt(p->ctxt);
	free(p);
}

int xml_attrs_get(const struct xml_attrs *a, const char *name, char *out,
		  size_t outlen)
{
	for (int i = 0; i < a->n; i++) {
		const unsigned char **t = a->v + 5 * i;
		if (t[2] || strcmp((const char *)t[0], name))
			continue;
		size_t l = (size_t)(t[4] - t[3]);
		if (l >= outlen)
			return -1;
		memcpy(out, t[3], l);
		out[l] = 0;
		return 0;
	}
	return 1;
}

/* ---- XML Schema simple types ---- */

static bool xs_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trim XML white space: returns the start, sets *len. */
static const char *xs_trim(const char *s, size_t *len)
{
	while (xs_space(*s))
		s++;
	size_t l = strlen(s);
	while (l && xs_space(s[l - 1]))
		l--;
	*len = l;
	return s;
}

int xs_boolean(const char *s, bool *out)
{
	size_t l;
	s = xs_trim(s, &l);
	if ((l == 4 && !memcmp(s, "true", 4)) || (l == 1 && *s == '1'))
		*out = true;
	else if ((l == 5 && !memcmp(s, "false", 5)) || (l == 1 && *s == '0'))
		*out = false;
	else
		return -1;
	return 0;
}

int xs_nonneg_long(const char *s, int64_t *out)
{
	size_t l;
	s = xs_trim(s, &l);
	if (l && *s == '+') {
		s++;
		l--;
	}
	if (!l)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < l; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Exactly n decimal digits at *p; advances *p. */
static int digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	if (end - *p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (plain
 * arithmetic: no time zone, locale or time_t range involved). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int xs_datetime(const char *str, int64_t *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };
	size_t l;
	const char *p = xs_trim(str, &l), *end = p + l;
	int y, mo, d, h, mi, s, tzh = 0, tzm = 0, sign = 0;
	bool frac_nonzero = false;

	if (digits(&p, end, 4, &y) || p == end || *p++ != '-' ||
	    digits(&p, end, 2, &mo) || p == end || *p++ != '-' ||
	    digits(&p, end, 2, &d) || p == end || *p++ != 'T' ||
	    digits(&p, end, 2, &h) || p == end || *p++ != ':' ||
	    digits(&p, end, 2, &mi) || p == end || *p++ != ':' ||
	    digits(&p, end, 2, &s))
		return -1;
	if (p < end && *p == '.') {
		p++;
		if (p == end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			frac_nonzero |= *p++ != '0';
	}
	if (p < end && *p == 'Z') {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, end, 2, &tzh) || p == end || *p++ != ':' ||
		    digits(&p, end, 2, &tzm))
			return -1;
		if (tzh > 14 || tzm > 59 || (tzh == 14 && tzm))
			return -1;
	}
	if (p != end)
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap(y)) || mi > 59 || s > 60)
		return -1;
	/* 24:00:00 is the end of the day, allowed by xs:dateTime. */
	if (h > 24 || (h == 24 && (mi || s || frac_nonzero)))
		return -1;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	t -= (int64_t)sign * (tzh * 3600 + tzm * 60);
	*out = t;
	return 0;
}

/* y-m-d of a day count from 1970-01-01 (the inverse of days_from_civil). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

void xs_datetime_format(int64_t t, char out[32])
{
	const int64_t min = -62135596800LL;  /* 0001-01-01T00:00:00Z */
	const int64_t max = 253402300799LL;  /* 9999-12-31T23:59:59Z */
	if (t < min)
		t = min;
	if (t > max)
		t = max;
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t secs = t - days * 86400, y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	/* every field is in range here; the modulos tell the compiler */
	snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02uZ",
		 (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)d % 100u,
		 (unsigned)(secs / 3600) % 100u, (unsigned)(secs / 60 % 60),
		 (unsigned)(secs % 60));
}

/* ---- xs:base64Binary, incrementally ---- */

int b64_encode(struct buf *b, const void *data, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char out[4096];
	size_t n = 0;
	for (size_t i = 0; i < len; i += 3) {
		size_t k = len - i < 3 ? len - i : 3;
		uint32_t v = (uint32_t)p[i] << 16;
		if (k > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (k > 2)
			v |= p[i + 2];
		out[n++] = alphabet[v >> 18];
		out[n++] = alphabet[v >> 12 & 63];
		out[n++] = k > 1 ? alphabet[v >> 6 & 63] : '=';
		out[n++] = k > 2 ? alphabet[v & 63] : '=';
		if (n == sizeof(out)) {
			if (buf_append(b, out, n))
				return -1;
			n = 0;
		}
	}
	return buf_append(b, out, n);
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void b64_stream_init(struct b64_stream *d,
		     int (*out)(void *arg, const void *data, size_t len),
		     void *arg)
{
	memset(d, 0, offsetof(struct b64_stream, obuf));
	d->out = out;
	d->arg = arg;
}

static int b64_flush(struct b64_stream *d)
{
	if (d->olen && !d->failed && d->out(d->arg, d->obuf, d->olen))
		d->failed = true;
	d->olen = 0;
	return d->failed ? -1 : 0;
}

/* Emit the bytes of the group in acc (nacc characters, 2-4). */
static int b64_emit(struct b64_stream *d)
{
	uint32_t v = d->acc << (6 * (4 - d->nacc));
	int nbytes = d->nacc - 1;
	if (d->olen + 3 > sizeof(d->obuf) && b64_flush(d))
		return -1;
	d->obuf[d->olen++] = (unsigned char)(v >> 16);
	if (nbytes > 1)
		d->obuf[d->olen++] = (unsigned char)(v >> 8);
	if (nbytes > 2)
		d->obuf[d->olen++] = (unsigned char)v;
	d->acc = 0;
	d->nacc = 0;
	d->pad = 0;
	return 0;
}

int b64_stream_feed(struct b64_stream *d, const char *s, size_t len)
{
	if (d->failed)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (xs_space((char)c))
			continue;
		if (d->ended)
			goto bad;
		if (c == '=') {
			/* padding may take the last one or two places */
			if (d->nacc < 2 || d->nacc + d->pad >= 4)
				goto bad;
			if (d->nacc + ++d->pad == 4) {
				if (b64_emit(d))
					return -1;
				d->ended = true;
			}
			continue;
		}
		int v = b64_value(c);
		if (v < 0 || d->pad)
			goto bad;
		d->acc = d->acc << 6 | (uint32_t)v;
		if (++d->nacc == 4 && b64_emit(d))
			return -1;
	}
	return 0;
bad:
	d->failed = true;
	return -1;
}

int b64_stream_finish(struct b64_stream *d)
{
	if (d->failed)
		return -1;
	/* Be liberal: a final group of 2 or 3 characters without (all of)
	 * its padding still carries whole bytes. */
	if (d->nacc == 1) {
		d->failed = true;
		return -1;
	}
	if (d->nacc >= 2 && b64_emit(d))
		return -1;
	return b64_flush(d);
}
