/*
 * vcard.c - vCard 3.0/4.0 parser and writer (see vcard.h).  Lines are
 * unfolded, split into group, name, parameters and value; values are kept
 * as written (escapes included) so writing a card back gives the same
 * text, and are unescaped only when read.
 */
#include "backend/vcard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/utf8.h"
#include "backend/util.h"
#include "backend/xml.h"

void vcard_free(struct vcard *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nprops; i++) {
		struct vcard_prop *p = &c->props[i];
		for (size_t j = 0; j < p->nparams; j++) {
			free(p->params[j].name);
			free(p->params[j].value);
		}
		free(p->params);
		free(p->group);
		free(p->name);
		free(p->value);
	}
	free(c->props);
	free(c);
}

static char *upper_dup(const char *s, size_t n)
{
	char *r = xstrndup(s, n);
	for (char *q = r; *q; q++)
		*q = (char)toupper((unsigned char)*q);
	return r;
}

static bool name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '_';
}

static struct vcard_prop *new_prop(struct vcard *c)
{
	c->props = xrealloc(c->props, (c->nprops + 1) * sizeof(*c->props));
	struct vcard_prop *p = &c->props[c->nprops++];
	memset(p, 0, sizeof(*p));
	return p;
}

void vcard_add_param(struct vcard_prop *p, const char *name,
		     const char *value)
{
	p->params = xrealloc(p->params, (p->nparams + 1) * sizeof(*p->params));
	p->params[p->nparams].name = upper_dup(name, strlen(name));
	p->params[p->nparams].value = xstrdup(value ? value : "");
	p->nparams++;
}

static void drop_param(struct vcard_prop *p, const char *name)
{
	for (size_t i = 0; i < p->nparams;) {
		if (!strcasecmp(p->params[i].name, name)) {
			free(p->params[i].name);
			free(p->params[i].value);
			memmove(&p->params[i], &p->params[i + 1],
				(p->nparams - i - 1) * sizeof(*p->params));
			p->nparams--;
		} else {
			i++;
		}
	}
}

/* Quoted-printable to bytes; newlines in the text become "\n" escapes
 * and backslashes are doubled, so the result is a vCard value. */
static char *qp_value(const char *s)
{
	struct buf b;
	buf_init(&b, 0);
	for (const char *q = s; *q; q++) {
		if (*q == '=' && isxdigit((unsigned char)q[1]) &&
		    isxdigit((unsigned char)q[2])) {
			char hex[3] = { q[1], q[2], 0 };
			char ch = (char)strtol(hex, NULL, 16);
			q += 2;
			if (ch == '\n')
				buf_puts(&b, "\\n");
			else if (ch == '\\')
				buf_puts(&b, "\\\\");
			else if (ch != '\r')
				buf_append(&b, &ch, 1);
		} else if (*q == '=' && !q[1]) {
			break;                  /* a soft break at the end */
		} else {
			buf_append(&b, q, 1);
		}
	}
	return b.data ? b.data : xstrdup("");
}

/* One unfolded line into a property of c.  0, or -1 with err (the caller
 * decides whether that ends the card). */
static int parse_line(struct vcard *c, const char *line, bool *qp,
		      char *err, size_t errlen)
{
	const char *s = line, *dot = NULL;
	while (name_char(*s) || *s == '.') {
		if (*s == '.')
			dot = s;
		s++;
	}
	const char *name = dot ? dot + 1 : line;
	size_t nlen = (size_t)(s - name);
	if (!nlen || nlen > VCARD_MAX_NAME || (dot && dot - line > VCARD_MAX_NAME) ||
	    (*s != ';' && *s != ':')) {
		snprintf(err, errlen, "not a property: \"%.40s\"", line);
		return -1;
	}
	struct vcard_prop *p = new_prop(c);
	p->group = dot ? xstrndup(line, (size_t)(dot - line)) : NULL;
	p->name = upper_dup(name, nlen);
	while (*s == ';') {
		const char *pn = ++s;
		while (name_char(*s))
			s++;
		size_t pl = (size_t)(s - pn);
		if (!pl || pl > VCARD_MAX_NAME) {
			snprintf(err, errlen, "%s: a bad parameter", p->name);
			return -1;
		}
		if (p->nparams == VCARD_MAX_PARAMS) {
			snprintf(err, errlen, "%s: over %d parameters", p->name,
				 VCARD_MAX_PARAMS);
			return -1;
		}
		char *pname = xstrndup(pn, pl);
		if (*s != '=') {         /* 2.1: "TEL;WORK;VOICE:" */
			if (!strcasecmp(pname, "QUOTED-PRINTABLE") ||
			    !strcasecmp(pname, "BASE64"))
				vcard_add_param(p, "ENCODING", pname);
			else
				vcard_add_param(p, "TYPE", pname);
			free(pname);
			continue;
		}
		struct buf v;
		buf_init(&v, 0);
		buf_puts(&v, "");
		s++;
		for (;;) {   /* values, comma-separated, maybe quoted */
			if (*s == '"') {
				const char *e = strchr(s + 1, '"');
				if (!e) {
					snprintf(err, errlen,
						 "%s: an unterminated quote",
						 p->name);
					free(pname);
					buf_free(&v);
					return -1;
				}
				buf_append(&v, s + 1, (size_t)(e - s - 1));
				s = e + 1;
			} else {
				size_t l = strcspn(s, ";:,\"");
				buf_append(&v, s, l);
				s += l;
			}
			if (*s != ',')
				break;
			buf_append(&v, ",", 1);
			s++;
		}
		vcard_add_param(p, pname, v.data);
		free(pname);
		buf_free(&v);
	}
	if (*s != ':') {
		snprintf(err, errlen, "%s: no ':' before the value", p->name);
		return -1;
	}
	s++;
	const char *enc = vcard_param(p, "ENCODING");
	const char *cs = vcard_param(p, "CHARSET");
	if (cs && strcasecmp(cs, "UTF-8") && strcasecmp(cs, "US-ASCII")) {
		snprintf(err, errlen, "%s: CHARSET=%.20s (only UTF-8)", p->name,
			 cs);
		return -1;
	}
	drop_param(p, "CHARSET");
	if (qp)
		*qp = enc && !strcasecmp(enc, "QUOTED-PRINTABLE");
	if (enc && !strcasecmp(enc, "QUOTED-PRINTABLE")) {
		p->value = qp_value(s);
		drop_param(p, "ENCODING");
		size_t vl = strlen(p->value);
		if (utf8_valid_prefix(p->value, vl) < vl) {
			snprintf(err, errlen,
				 "%s: invalid UTF-8 in quoted-printable", p->name);
			return -1;
		}
	} else {
		p->value = xstrdup(s);
	}
	return 0;
}

static void drop_last(struct vcard *c)
{
	struct vcard_prop *p = &c->props[c->nprops - 1];
	for (size_t j = 0; j < p->nparams; j++) {
		free(p->params[j].name);
		free(p->params[j].value);
	}
	free(p->params);
	free(p->group);
	free(p->name);
	free(p->value);
	c->nprops--;
}

/* Whether line is a quoted-printable property, read exactly as
 * parse_line() reads it (a looser test joined lines that the writer had
 * written as two: found by fuzz_pim). */
static bool is_qp_start(const char *line)
{
	struct vcard tmp = { .version = 30 };
	char err[8];
	bool qp = false;
	/* the flag is set before the value is decoded, which may fail on a
	 * character the soft break splits */
	if (strcasestr(line, "QUOTED-PRINTABLE"))
		(void)parse_line(&tmp, line, &qp, err, sizeof(err));
	while (tmp.nprops)
		drop_last(&tmp);
	free(tmp.props);
	return qp;
}

struct vcard *vcard_parse(const char *data, size_t len, bool lenient,
			  char *err, size_t errlen)
{
	if (len > VCARD_MAX_BYTES) {
		snprintf(err, errlen, "card of %zu bytes, over the %u byte cap",
			 len, VCARD_MAX_BYTES);
		return NULL;
	}
	/* UTF-8 is checked per unfolded line: a fold may split a character
	 * (RFC 6350 3.2).  A NUL ends nothing here: it is invalid. */
	char *text = xmalloc(len + 1);
	memcpy(text, data, len);
	text[len] = 0;

	struct vcard *c = xcalloc(1, sizeof(*c));
	struct buf line;
	buf_init(&line, 0);
	int state = 0;     /* 0 before BEGIN, 1 inside, 2 after END */
	bool qp_soft = false;
	char *s = text, *end = text + len;
	while (s < end || line.len) {
		/* the next physical line */
		char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
		char *le = nl ? nl : end;
		size_t l = (size_t)(le - s);
		if (l && le[-1] == '\r')
			l--;
		bool cont = s < end && line.len && (*s == ' ' || *s == '\t');
		if (s < end && (cont || qp_soft)) {
			if (!cont) {   /* the soft break's '=' goes */
				line.len--;
				line.data[line.len] = 0;
			}
			buf_append(&line, cont ? s + 1 : s, cont ? l - 1 : l);
			qp_soft = qp_soft && l && s[l - 1] == '=';
			s = nl ? nl + 1 : end;
			continue;
		}
		if (line.len) {     /* a whole logical line */
			size_t ok = utf8_valid_prefix(line.data, line.len);
			if (ok < line.len) {
				if (!lenient) {
					snprintf(err, errlen,
						 "invalid UTF-8 in \"%.*s\"",
						 (int)(ok < 40 ? ok : 40),
						 line.data);
					goto fail;
				}
				size_t rl;
				char *fixed = utf8_repair(line.data, line.len, &rl);
				buf_reset(&line);
				buf_append(&line, fixed, rl);
				free(fixed);
			}
			/* a CR that ends no line means nothing (and the
			 * writer could not write it back) */
			char *ln = line.data, *o = ln;
			for (char *q = ln; *q; q++)
				if (*q != '\r')
					*o++ = *q;
			*o = 0;
			line.len = (size_t)(o - ln);
			if (state == 0) {
				if (strcasecmp(ln, "BEGIN:VCARD")) {
					snprintf(err, errlen,
						 "does not start with BEGIN:VCARD");
					goto fail;
				}
				state = 1;
			} else if (state == 2) {
				if (!lenient) {
					snprintf(err, errlen,
						 "text after END:VCARD (one card per file)");
					goto fail;
				}
			} else if (!strcasecmp(ln, "END:VCARD")) {
				state = 2;
			} else if (!strncasecmp(ln, "BEGIN:", 6)) {
				snprintf(err, errlen, "a nested %.30s", ln);
				goto fail;
			} else if (!strncasecmp(ln, "VERSION:", 8)) {
				if (!strcmp(ln + 8, "3.0") || !strcmp(ln + 8, "2.1"))
					c->version = 30;
				else if (!strcmp(ln + 8, "4.0"))
					c->version = 40;
				else if (!lenient) {
					snprintf(err, errlen,
						 "VERSION %.10s (3.0 or 4.0)", ln + 8);
					goto fail;
				}
			} else {
				if (c->nprops == VCARD_MAX_PROPS) {
					snprintf(err, errlen, "over %d properties",
						 VCARD_MAX_PROPS);
					goto fail;
				}
				size_t before = c->nprops;
				if (parse_line(c, ln, NULL, err, errlen)) {
					if (!lenient)
						goto fail;
					if (c->nprops > before)
						drop_last(c);
				} else if (c->nprops > before &&
					   !strcasecmp(c->props[c->nprops - 1].name,
						       "VERSION")) {
					/* VERSION with parameters: the writer
					 * puts its own, so a second one would
					 * not read back */
					if (!lenient) {
						snprintf(err, errlen, "VERSION "
							 "with parameters");
						goto fail;
					}
					drop_last(c);
				}
			}
			buf_reset(&line);
		}
		if (s >= end)
			break;
		buf_append(&line, s, l);
		buf_puts(&line, "");
		qp_soft = is_qp_start(line.data) && l && s[l - 1] == '=';
		s = nl ? nl + 1 : end;
	}
	if (state != 2) {
		snprintf(err, errlen, state ? "no END:VCARD" : "not a vCard");
		goto fail;
	}
	if (!c->version) {
		if (!lenient) {
			snprintf(err, errlen, "no VERSION");
			goto fail;
		}
		c->version = 30;
	}
	buf_free(&line);
	free(text);
	return c;
fail:
	buf_free(&line);
	free(text);
	vcard_free(c);
	return NULL;
}

/* ---- Reading values ---- */

const struct vcard_prop *vcard_get(const struct vcard *c, const char *name)
{
	for (size_t i = 0; i < c->nprops; i++)
		if (!strcasecmp(c->props[i].name, name))
			return &c->props[i];
	return NULL;
}

const struct vcard_prop *vcard_next(const struct vcard *c,
				    const struct vcard_prop *p)
{
	for (size_t i = (size_t)(p - c->props) + 1; i < c->nprops; i++)
		if (!strcasecmp(c->props[i].name, p->name))
			return &c->props[i];
	return NULL;
}

const char *vcard_param(const struct vcard_prop *p, const char *name)
{
	for (size_t i = 0; i < p->nparams; i++)
		if (!strcasecmp(p->params[i].name, name))
			return p->params[i].value;
	return NULL;
}

bool vcard_has_type(const struct vcard_prop *p, const char *t)
{
	size_t tl = strlen(t);
	for (size_t i = 0; i < p->nparams; i++) {
		if (strcasecmp(p->params[i].name, "TYPE"))
			continue;
		for (const char *v = p->params[i].value; *v;) {
			size_t l = strcspn(v, ",");
			if (l == tl && !strncasecmp(v, t, tl))
				return true;
			v += l + (v[l] == ',');
		}
	}
	return false;
}

static void unescape_into(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			char e = s[++i];
			buf_append(b, e == 'n' || e == 'N' ? "\n" : &s[i], 1);
		} else {
			buf_append(b, &s[i], 1);
		}
	}
	buf_puts(b, "");
}

char *vcard_text(const struct vcard_prop *p)
{
	struct buf b;
	buf_init(&b, 0);
	unescape_into(&b, p->value, strlen(p->value));
	return b.data;
}

char *vcard_part(const struct vcard_prop *p, size_t i)
{
	const char *s = p->value;
	for (size_t k = 0; k < i; k++) {
		while (*s && *s != ';')
			s += (*s == '\\' && s[1]) ? 2 : 1;
		if (!*s)
			return xstrdup("");
		s++;
	}
	const char *e = s;
	while (*e && *e != ';')
		e += (*e == '\\' && e[1]) ? 2 : 1;
	struct buf b;
	buf_init(&b, 0);
	unescape_into(&b, s, (size_t)(e - s));
	return b.data;
}

/* ---- Building ---- */

static void escape_into(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == ',' || *s == ';') {
			buf_append(b, "\\", 1);
			buf_append(b, s, 1);
		} else if (*s == '\n') {
			buf_puts(b, "\\n");
		} else if (*s != '\r') {
			buf_append(b, s, 1);
		}
	}
	buf_puts(b, "");
}

struct vcard_prop *vcard_add_text(struct vcard *c, const char *name,
				  const char *text)
{
	return vcard_add_parts(c, name, &text, 1);
}

struct vcard_prop *vcard_add_parts(struct vcard *c, const char *name,
				   const char *const *parts, size_t nparts)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "");
	for (size_t i = 0; i < nparts; i++) {
		if (i)
			buf_puts(&b, ";");
		escape_into(&b, parts[i] ? parts[i] : "");
	}
	struct vcard_prop *p = new_prop(c);
	p->name = upper_dup(name, strlen(name));
	p->value = b.data;
	return p;
}

/* ---- Photos ---- */

static int collect(void *arg, const void *p, size_t n)
{
	return buf_append(arg, p, n);
}

/* A media type is letters, digits and "-+." around one '/', short; any
 * other TYPE gives "" (unknown), never a cut or odd string. */
static void media_type(const char *s, size_t n, char mt[64])
{
	int slashes = 0;
	mt[0] = 0;
	if (!n || n > 60)
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/')
			slashes++;
		else if (!isalnum((unsigned char)s[i]) && !strchr("-+.", s[i]))
			return;
	}
	if (slashes > 1)
		return;
	snprintf(mt, 64, "%s%.*s", slashes ? "" : "image/", (int)n, s);
	for (char *q = mt; *q; q++)
		*q = (char)tolower((unsigned char)*q);
}

static void media_from_type(const char *type, char mt[64])
{
	media_type(type ? type : "", type ? strlen(type) : 0, mt);
}

int vcard_photo(const struct vcard *c, unsigned char **data, size_t *len,
		char mt[64])
{
	const struct vcard_prop *p = vcard_get(c, "PHOTO");
	if (!p)
		return -1;
	const char *enc = vcard_param(p, "ENCODING");
	const char *b64 = NULL;
	mt[0] = 0;
	if (enc && (!strcasecmp(enc, "b") || !strcasecmp(enc, "BASE64"))) {
		b64 = p->value;
		media_from_type(vcard_param(p, "TYPE"), mt);
	} else if (!strncasecmp(p->value, "data:", 5)) {
		const char *comma = strchr(p->value, ',');
		const char *semi = strchr(p->value, ';');
		if (!comma || !semi || semi > comma ||
		    strncasecmp(semi, ";base64,", 8))
			return -1;
		media_type(p->value + 5, (size_t)(semi - p->value - 5), mt);
		b64 = comma + 1;
	} else {
		return -1;
	}
	struct buf b;
	struct b64_stream d;
	buf_init(&b, VCARD_MAX_BYTES);
	b64_stream_init(&d, collect, &b);
	if (b64_stream_feed(&d, b64, strlen(b64)) || b64_stream_finish(&d) ||
	    !b.len) {
		buf_free(&b);
		return -1;
	}
	*data = (unsigned char *)b.data;
	*len = b.len;
	return 0;
}

void vcard_set_photo(struct vcard *c, const void *data, size_t len,
		     const char *mt)
{
	for (size_t i = 0; i < c->nprops;) {
		if (!strcasecmp(c->props[i].name, "PHOTO")) {
			struct vcard_prop tmp = c->props[i];
			memmove(&c->props[i], &c->props[i + 1],
				(c->nprops - i - 1) * sizeof(*c->props));
			c->props[c->nprops - 1] = tmp;
			drop_last(c);
		} else {
			i++;
		}
	}
	struct buf b;
	buf_init(&b, 0);
	b64_encode(&b, data, len);
	buf_puts(&b, "");
	struct vcard_prop *p = new_prop(c);
	p->name = xstrdup("PHOTO");
	p->value = b.data;
	vcard_add_param(p, "ENCODING", "b");
	const char *sub = mt ? strchr(mt, '/') : NULL;
	if (sub && sub[1]) {
		char *t = upper_dup(sub + 1, strlen(sub + 1));
		vcard_add_param(p, "TYPE", t);
		free(t);
	}
}

/* ---- Writing ---- */

/* One logical line, folded at 75 octets without splitting a character. */
static int put_folded(struct buf *out, const char *s, size_t n)
{
	size_t width = 75;
	int r = 0;
	while (n > width) {
		size_t k = width;
		while (k > 1 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		r |= buf_append(out, s, k);
		r |= buf_puts(out, "\r\n ");
		s += k;
		n -= k;
		width = 74;
	}
	r |= buf_append(out, s, n);
	r |= buf_puts(out, "\r\n");
	return r;
}

static void put_param_value(struct buf *l, const char *v)
{
	bool quote = strpbrk(v, ":;") != NULL;
	if (quote)
		buf_puts(l, "\"");
	for (; *v; v++)
		if (*v != '"' && *v != '\r' && *v != '\n')
			buf_append(l, v, 1);
	if (quote)
		buf_puts(l, "\"");
}

static bool photo_base64(const struct vcard_prop *p)
{
	const char *enc = vcard_param(p, "ENCODING");
	return !strcasecmp(p->name, "PHOTO") && enc &&
	       (!strcasecmp(enc, "b") || !strcasecmp(enc, "BASE64"));
}

static int put_prop(struct buf *out, const struct vcard_prop *p, int version)
{
	struct buf l;
	const char *value = p->value;
	char *conv = NULL;
	bool to_uri = version == 40 && photo_base64(p);
	bool to_b = version == 30 && !strcasecmp(p->name, "PHOTO") &&
		    !strncasecmp(p->value, "data:", 5) &&
		    strstr(p->value, ";base64,");
	char mt[64] = "";
	if (to_b) {   /* only a real media type becomes a TYPE */
		const char *semi = strchr(p->value, ';');
		media_type(p->value + 5, (size_t)(semi - p->value - 5), mt);
		to_b = mt[0] && strchr(mt, '/');
	}
	buf_init(&l, 0);
	if (p->group)
		buf_printf(&l, "%s.", p->group);
	buf_puts(&l, p->name);
	if (to_b) {
		const char *semi = strchr(p->value, ';');
		size_t ml = (size_t)(semi - p->value - 5);
		const char *slash = memchr(p->value + 5, '/', ml);
		buf_puts(&l, ";ENCODING=b");
		if (slash) {
			char *t = upper_dup(slash + 1,
					    (size_t)(semi - slash - 1));
			buf_printf(&l, ";TYPE=%s", t);
			free(t);
		}
		value = strstr(p->value, ";base64,") + 8;
	}
	if (to_uri) {
		media_from_type(vcard_param(p, "TYPE"), mt);
		conv = xasprintf("data:%s;base64,%s",
				 mt[0] ? mt : "application/octet-stream",
				 p->value);
		value = conv;
	}
	for (size_t i = 0; i < p->nparams; i++) {
		const struct vcard_param *pa = &p->params[i];
		if ((to_uri || to_b) && (!strcasecmp(pa->name, "ENCODING") ||
					 !strcasecmp(pa->name, "TYPE")))
			continue;
		/* always NAME=value: a bare name would read back as TYPE */
		buf_printf(&l, ";%s=", pa->name);
		put_param_value(&l, pa->value);
	}
	buf_puts(&l, ":");
	/* a value never carries a raw line break */
	for (const char *v = value; *v; v++)
		if (*v == '\n')
			buf_puts(&l, "\\n");
		else if (*v != '\r')
			buf_append(&l, v, 1);
	int r = put_folded(out, l.data, l.len);
	buf_free(&l);
	free(conv);
	return r;
}

int vcard_write(const struct vcard *c, int version, struct buf *b)
{
	int r = buf_puts(b, "BEGIN:VCARD\r\n");
	r |= buf_puts(b, version == 40 ? "VERSION:4.0\r\n" : "VERSION:3.0\r\n");
	for (size_t i = 0; i < c->nprops; i++)
		r |= put_prop(b, &c->props[i], version);
	r |= buf_puts(b, "END:VCARD\r\n");
	return r ? -1 : 0;
}

int vcard_validate(const char *data, size_t len, const char *fallback_uid,
		   char *err, size_t errlen)
{
	struct vcard *c = vcard_parse(data, len, false, err, errlen);
	if (!c)
		return -1;
	int r = -1;
	const struct vcard_prop *fn = vcard_get(c, "FN");
	const struct vcard_prop *uid = vcard_get(c, "UID");
	char *t = fn ? vcard_text(fn) : NULL;
	if (!t || !*t)
		snprintf(err, errlen, "no FN (a formatted name is required)");
	else if ((!uid || !*uid->value) && (!fallback_uid || !*fallback_uid))
		snprintf(err, errlen, "no UID");
	else if (uid && vcard_next(c, uid))
		snprintf(err, errlen, "more than one UID");
	else
		r = 0;
	free(t);
	vcard_free(c);
	return r;
}
