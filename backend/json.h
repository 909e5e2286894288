/*
 * json.h - a small, capped reader for the flat JSON objects that sign-in and
 * Autodiscover servers answer with (OAuth2 token and device-code answers,
 * Autodiscover v2), and a writer of JSON strings for the token file.
 *
 * Only the top-level members of one object are kept: strings, numbers,
 * true/false/null.  Nested objects and arrays are checked and skipped
 * (depth at most JSON_MAX_DEPTH).  Everything from the network is
 * untrusted: the input is refused over its cap, at most JSON_MAX_MEMBERS
 * members are kept, and any syntax error gives one line.
 */
#ifndef EXCHANGEFS_JSON_H
#define EXCHANGEFS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define JSON_MAX_DEPTH 32
#define JSON_MAX_MEMBERS 256
#define JSON_MAX_INPUT ((size_t)1 << 20)

enum json_type { JSON_STRING = 1, JSON_NUMBER, JSON_BOOL, JSON_NULL,
		 JSON_NESTED };

struct json_member {
	char *key;          /* owned, decoded UTF-8 */
	char *value;        /* owned: decoded string, the number's text,
			       "true"/"false"/"null", "" for nested */
	enum json_type type;
};

struct json_obj {
	struct json_member *v;  /* owned array of n */
	size_t n;
};

/* Parse one JSON object (whitespace around it allowed, nothing else).
 * Returns 0, or -1 with a one-line reason in err.  Free with json_free
 * in either case. */
int json_parse_object(const char *data, size_t len, struct json_obj *o,
		      char *err, size_t errlen);
void json_free(struct json_obj *o);

/* The string value of a top-level member, or NULL (absent or not a
 * string).  The first member of that name wins. */
const char *json_str(const struct json_obj *o, const char *key);
/* An integer member (a JSON number, or a string of digits as some servers
 * send expires_in): 0, or -1 when absent or not an integer. */
int json_int(const struct json_obj *o, const char *key, int64_t *out);

/* Append s as a JSON string literal (quoted, escaped). */
void json_put_string(struct buf *b, const char *s);

#endif
