/*
 * json.c - the capped flat-object JSON reader and the string writer (see
 * json.h).  A recursive-descent parser over a (pointer, end) cursor; the
 * recursion is bounded by JSON_MAX_DEPTH.
 */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cur {
	const char *p, *end;
	const char *start;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct cur *c, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "malformed JSON at byte %zu: %s",
			 (size_t)(c->p - c->start), what);
	return -1;
}

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int hex4(struct cur *c, unsigned *out)
{
	unsigned v = 0;
	if (c->end - c->p < 4)
		return fail(c, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char ch = *c->p++;
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return fail(c, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

/* A string at c->p (the opening quote); decoded into out when non-NULL.
 * A decoded NUL (\u0000) is refused: values become C strings. */
static int parse_string(struct cur *c, struct buf *out)
{
	if (c->p >= c->end || *c->p != '"')
		return fail(c, "expected a string");
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (ch == '"') {
			c->p++;
			return 0;
		}
		if (ch < 0x20)
			return fail(c, "control character in a string");
		if (ch != '\\') {
			const char *run = c->p;
			while (c->p < c->end && *c->p != '"' && *c->p != '\\' &&
			       (unsigned char)*c->p >= 0x20)
				c->p++;
			if (out)
				buf_append(out, run, (size_t)(c->p - run));
			continue;
		}
		c->p++;
		if (c->p >= c->end)
			break;
		char e = *c->p++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e && simple) {
			static const char dec[] = "\"\\/\b\f\n\r\t";
			if (out)
				buf_append(out, &dec[simple - "\"\\/bfnrt"], 1);
			continue;
		}
		if (e != 'u')
			return fail(c, "bad escape \\%c", e);
		unsigned cp, lo;
		if (hex4(c, &cp))
			return -1;
		if (cp >= 0xd800 && cp < 0xdc00) {
			if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u')
				return fail(c, "lone surrogate");
			c->p += 2;
			if (hex4(c, &lo))
				return -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail(c, "bad surrogate pair");
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if (cp >= 0xdc00 && cp < 0xe000) {
			return fail(c, "lone surrogate");
		}
		if (cp == 0)
			return fail(c, "NUL in a string");
		if (out)
			put_utf8(out, cp);
	}
	return fail(c, "unterminated string");
}

static int parse_number(struct cur *c)
{
	const char *s = c->p;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p >= c->end || *c->p < '0' || *c->p > '9')
		return fail(c, "bad number");
	if (*c->p == '0')
		c->p++;
	else
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return fail(c, "bad number");
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return fail(c, "bad number");
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	return c->p > s ? 0 : fail(c, "bad number");
}

static int literal(struct cur *c, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n))
		return fail(c, "unexpected character");
	c->p += n;
	return 0;
}

static int parse_value(struct cur *c, int depth, struct buf *out,
		       enum json_type *type);

static int parse_container(struct cur *c, int depth, bool object)
{
	char close = object ? '}' : ']';
	if (depth >= JSON_MAX_DEPTH)
		return fail(c, "nested deeper than %d", JSON_MAX_DEPTH);
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return 0;
	}
	for (;;) {
		enum json_type t;
		skip_ws(c);
		if (object) {
			if (parse_string(c, NULL))
				return -1;
			skip_ws(c);
			if (c->p >= c->end || *c->p != ':')
				return fail(c, "expected ':'");
			c->p++;
			skip_ws(c);
		}
		if (parse_value(c, depth + 1, NULL, &t))
			return -1;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == close) {
			c->p++;
			return 0;
		}
		return fail(c, "expected ',' or '%c'", close);
	}
}

static int parse_value(struct cur *c, int depth, struct buf *out,
		       enum json_type *type)
{
	const char *s = c->p;
	if (c->p >= c->end)
		return fail(c, "value expected");
	switch (*c->p) {
	case '"':
		*type = JSON_STRING;
		return parse_string(c, out);
	case '{':
	case '[':
		*type = JSON_NESTED;
		return parse_container(c, depth, *c->p == '{');
	case 't':
		*type = JSON_BOOL;
		if (literal(c, "true"))
			return -1;
		break;
	case 'f':
		*type = JSON_BOOL;
		if (literal(c, "false"))
			return -1;
		break;
	case 'n':
		*type = JSON_NULL;
		if (literal(c, "null"))
			return -1;
		break;
	default:
		*type = JSON_NUMBER;
		if (parse_number(c))
			return -1;
		break;
	}
	if (out)
		buf_append(out, s, (size_t)(c->p - s));
	return 0;
}

int json_parse_object(const char *data, size_t len, struct json_obj *o,
		      char *err, size_t errlen)
{
	struct cur c = { data, data + len, data, err, errlen };
	struct buf key, val;
	size_t alloc = 0;
	int rc = -1;

	memset(o, 0, sizeof(*o));
	if (err && errlen)
		err[0] = 0;
	if (len > JSON_MAX_INPUT) {
		if (err && errlen)
			snprintf(err, errlen, "JSON answer larger than %zu bytes",
				 JSON_MAX_INPUT);
		return -1;
	}
	buf_init(&key, 0);
	buf_init(&val, 0);
	skip_ws(&c);
	if (c.p >= c.end || *c.p != '{') {
		fail(&c, "expected an object");
		goto out;
	}
	c.p++;
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto end;
	}
	for (;;) {
		enum json_type t;
		skip_ws(&c);
		buf_reset(&key);
		buf_reset(&val);
		if (parse_string(&c, &key))
			goto out;
		skip_ws(&c);
		if (c.p >= c.end || *c.p != ':') {
			fail(&c, "expected ':'");
			goto out;
		}
		c.p++;
		skip_ws(&c);
		if (parse_value(&c, 1, &val, &t))
			goto out;
		if (o->n < JSON_MAX_MEMBERS) {
			if (o->n == alloc) {
				alloc = alloc ? alloc * 2 : 8;
				o->v = xrealloc(o->v, alloc * sizeof(*o->v));
			}
			o->v[o->n].key = xstrdup(key.data ? key.data : "");
			o->v[o->n].value = xstrdup(t == JSON_NESTED || !val.data
						   ? "" : val.data);
			o->v[o->n].type = t;
			o->n++;
		}
		skip_ws(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		fail(&c, "expected ',' or '}'");
		goto out;
	}
end:
	skip_ws(&c);
	if (c.p != c.end) {
		fail(&c, "text after the object");
		goto out;
	}
	rc = 0;
out:
	buf_free(&key);
	buf_free(&val);
	return rc;
}

void json_free(struct json_obj *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].key);
		free(o->v[i].value);
	}
	free(o->v);
	memset(o, 0, sizeof(*o));
}

static const struct json_member *find(const struct json_obj *o,
				      const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i].key, key))
			return &o->v[i];
	return NULL;
}

const char *json_str(const struct json_obj *o, const char *key)
{
	const struct json_member *m = find(o, key);
	return m && m->type == JSON_STRING ? m->value : NULL;
}

int json_int(const struct json_obj *o, const char *key, int64_t *out)
{
	const struct json_member *m = find(o, key);
	char *end;
	if (!m || (m->type != JSON_STRING && m->type != JSON_NUMBER) ||
	    !m->value[0])
		return -1;
	errno = 0;
	long long v = strtoll(m->value, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

void json_put_string(struct buf *b, const char *s)
{
	buf_puts(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			buf_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			buf_printf(b, "\\u%04x", ch);
		else
			buf_append(b, s, 1);
	}
	buf_puts(b, "\"");
}
