/*
 * xml.h - safe use of libxml2 for answers from a server we do not trust,
 * plus the XML Schema simple types the protocols carry (xs:boolean,
 * xs:long, xs:dateTime, xs:base64Binary).
 *
 * Safety, for both the tree and the streaming parser: no network access, no
 * DTD (a document with <!DOCTYPE ...> is refused, so no entity can be
 * declared and none expanded), only the five predefined entities and
 * character references, libxml2's default size limits (XML_PARSE_HUGE is
 * never set), and parser errors are captured into a message instead of
 * being printed.  Elements are always matched by namespace URI and local
 * name, never by prefix.
 *
 * Exchange quirk, handled in both parsers: a character XML 1.0 forbids
 * (U+0001 in a subject) comes as a character reference (&#x1;) that no
 * conforming parser accepts; such references are dropped before parsing.
 */
#ifndef EXCHANGEFS_XML_H
#define EXCHANGEFS_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

/* Call once before any other thread uses libxml2 (idempotent, thread-safe;
 * xml_parse() and xml_push_new() call it themselves). */
void xml_init(void);

/* --- Tree parsing --- */

/* Parse len bytes (refused when len > cap).  Returns the document (free with
 * xmlFreeDoc) or NULL with a one-line reason in err ("malformed XML at line
 * 3: ..."). */
xmlDoc *xml_parse(const char *data, size_t len, size_t cap, char *err,
		  size_t errlen);

/* Whether element n has namespace URI ns (NULL = no namespace) and local
 * name name. */
bool xml_is(const xmlNode *n, const char *ns, const char *name);
/* First element child of parent matching (ns, name); name NULL matches any
 * element.  NULL if none. */
xmlNode *xml_child(const xmlNode *parent, const char *ns, const char *name);
/* Next element sibling after n matching (ns, name) as above. */
xmlNode *xml_next(const xmlNode *n, const char *ns, const char *name);
/* The text content of an element (its text and CDATA children, joined).
 * Returns 0 and *out (owned, never NULL for an element) or -1 if the text
 * is longer than cap bytes (*out NULL). */
int xml_text(const xmlNode *n, size_t cap, char **out);
/* An attribute without namespace.  Returns 0 with *out owned or NULL when
 * absent, -1 if longer than cap (*out NULL). */
int xml_attr(const xmlNode *n, const char *name, size_t cap, char **out);

/* --- Streaming (push) parsing: for answers too large to hold. ---
 * Callbacks get the namespace URI (NULL for none) and local name; text may
 * arrive in any number of pieces (character references such as &#13; and
 * the predefined entities arrive already decoded).  A callback returns 0
 * to go on or -1 to stop the parse (xml_push_feed then returns -1 with
 * xml_push_stopped() true).  The input must be UTF-8 (a byte order mark
 * is skipped, an encoding declaration ignored), and the outcome does not
 * depend on how the input is cut into pieces. */
struct xml_attrs {
	int n;
	const unsigned char **v;  /* libxml2's 5-tuples */
};
struct xml_push_cb {
	int (*start)(void *arg, const char *ns, const char *name,
		     const struct xml_attrs *attrs);
	int (*end)(void *arg, const char *ns, const char *name);
	int (*text)(void *arg, const char *s, size_t len);
};
struct xml_push;

struct xml_push *xml_push_new(const struct xml_push_cb *cb, void *arg);
/* Feed the next bytes; 0 on success, -1 when the document is malformed or
 * a callback stopped it (see xml_push_error / xml_push_stopped). */
int xml_push_feed(struct xml_push *p, const void *data, size_t len);
/* Signal the end of input; 0 if the document was complete and well formed. */
int xml_push_finish(struct xml_push *p);
bool xml_push_stopped(const struct xml_push *p);
/* Why the parse failed ("" if it did not). */
const char *xml_push_error(const struct xml_push *p);
void xml_push_free(struct xml_push *p);
/* Copy attribute name (no namespace) into out (NUL-terminated).  Returns
 * 0, 1 if absent, -1 if longer than outlen - 1. */
int xml_attrs_get(const struct xml_attrs *a, const char *name, char *out,
		  size_t outlen);

/* --- XML Schema simple types.  Leading and trailing XML white space is
 * allowed (xs:whiteSpace collapse); anything else malformed returns -1. */

/* xs:boolean: true, false, 1, 0. */
int xs_boolean(const char *s, bool *out);
/* xs:long restricted to >= 0 (counts and sizes). */
int xs_nonneg_long(const char *s, int64_t *out);
/* xs:dateTime (YYYY-MM-DDThh:mm:ss[.fff...][Z|+hh:mm|-hh:mm]; no zone
 * means UTC) to Unix seconds UTC, fractions dropped (floor). */
int xs_datetime(const char *s, int64_t *out);

/* Unix seconds UTC -> xs:dateTime "YYYY-MM-DDThh:mm:ssZ" (the inverse of
 * xs_datetime for whole seconds); times outside the years 1..9999 are
 * clamped to that range.  out holds at least 21 bytes. */
void xs_datetime_format(int64_t t, char out[32]);

/* xs:base64Binary encoding of len bytes appended to b as one line
 * (standard alphabet, '=' padding), in pieces so that only b grows.
 * 0, or -1 if b's cap would be exceeded (b then holds a prefix). */
struct buf;
int b64_encode(struct buf *b, const void *data, size_t len);

/* xs:base64Binary, decoded incrementally: text may be cut anywhere (inside
 * a group of four, inside white space); white space is skipped.  Decoded
 * bytes go to out() in pieces of up to sizeof(obuf). */
struct b64_stream {
	int (*out)(void *arg, const void *data, size_t len);
	void *arg;
	uint32_t acc;       /* bits of the group being read */
	int nacc;           /* characters in acc (0-3) */
	int pad;            /* '=' seen in the current group */
	bool ended;         /* a padded group ended the data */
	bool failed;        /* bad character, or out() returned -1 */
	size_t olen;
	unsigned char obuf[3072];
};
void b64_stream_init(struct b64_stream *d,
		     int (*out)(void *arg, const void *data, size_t len),
		     void *arg);
/* 0, or -1 on a character outside the alphabet, data after the padding,
 * or when out() returned -1. */
int b64_stream_feed(struct b64_stream *d, const char *s, size_t len);
/* Flush; -1 if the data stopped inside a group (one stray character) or a
 * flush failed. */
int b64_stream_finish(struct b64_stream *d);

#endif
