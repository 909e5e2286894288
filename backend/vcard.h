/*
 * vcard.h - vCard 3.0 (RFC 2426) and 4.0 (RFC 6350): a small strict
 * parser with caps into a list of properties, and a writer (3.0 unless
 * asked for 4.0) whose output parses back to the same card.  vCard 2.1
 * leftovers are read: bare parameters ("TEL;WORK:") become TYPE=,
 * QUOTED-PRINTABLE values are decoded; any other CHARSET than UTF-8 is
 * refused.  Contacts for khard and vdirsyncer: one card per file.
 *
 * Memory: a struct vcard and everything in it belong to the caller, who
 * frees it with vcard_free().
 */
#ifndef EXCHANGEFS_VCARD_H
#define EXCHANGEFS_VCARD_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* The caps on one card, named once. */
#define VCARD_MAX_BYTES (4u << 20)   /* the text (a photo is most of it) */
#define VCARD_MAX_PROPS 2000         /* properties */
#define VCARD_MAX_PARAMS 32          /* parameters of one property */
#define VCARD_MAX_NAME 64            /* a property or parameter name */

struct vcard_param {
	char *name;    /* upper case, owned */
	char *value;   /* as written, quotes removed, owned; "" if none */
};

struct vcard_prop {
	char *group;   /* "item1" of "item1.EMAIL", or NULL; owned */
	char *name;    /* upper case ("FN", "X-ABLABEL"), owned */
	struct vcard_param *params;   /* owned */
	size_t nparams;
	/* The value as written, unfolded, escapes kept ("a\,b"): what the
	 * writer writes back.  Read it with vcard_text()/vcard_part(). */
	char *value;   /* owned */
};

struct vcard {
	int version;   /* 30 or 40 (2.1 is read as 30) */
	struct vcard_prop *props;   /* owned, in the order read */
	size_t nprops;
};

/* Parse exactly one BEGIN:VCARD ... END:VCARD.  lenient (for server
 * input): invalid UTF-8 becomes U+FFFD and lines that are not properties
 * are skipped; strict (for what users write): both are refused.  NULL
 * with a one-line reason in err. */
struct vcard *vcard_parse(const char *data, size_t len, bool lenient,
			  char *err, size_t errlen);
void vcard_free(struct vcard *c);

/* Write c as the given version (30 or 40): CRLF lines folded at 75
 * octets (never inside a UTF-8 sequence), VERSION after BEGIN, PHOTO and
 * other binary values in that version's form.  0, or -1 (b's cap). */
int vcard_write(const struct vcard *c, int version, struct buf *b);

/* The first property of that name (case-insensitive), NULL if none. */
const struct vcard_prop *vcard_get(const struct vcard *c, const char *name);
/* The next property after p with the same name. */
const struct vcard_prop *vcard_next(const struct vcard *c,
				    const struct vcard_prop *p);
/* A parameter's value (case-insensitive name), NULL if absent. */
const char *vcard_param(const struct vcard_prop *p, const char *name);
/* Whether TYPE (any of its comma-separated values, any TYPE parameter)
 * includes t, case-insensitively ("HOME", "CELL", "PREF"). */
bool vcard_has_type(const struct vcard_prop *p, const char *t);
/* The value unescaped (\n -> newline, "\," -> ","), owned by the caller. */
char *vcard_text(const struct vcard_prop *p);
/* Component i (0-based) of a structured value (N, ADR: split at unescaped
 * ';'), unescaped, owned by the caller; "" past the end. */
char *vcard_part(const struct vcard_prop *p, size_t i);

/* Add a property with a text value (escaped here); returns it, to add
 * parameters.  A structured value: parts joined by ';' with each part
 * escaped (vcard_add_parts). */
struct vcard_prop *vcard_add_text(struct vcard *c, const char *name,
				  const char *text);
struct vcard_prop *vcard_add_parts(struct vcard *c, const char *name,
				   const char *const *parts, size_t nparts);
void vcard_add_param(struct vcard_prop *p, const char *name,
		     const char *value);

/* PHOTO's image: from "ENCODING=b" (3.0), "ENCODING=BASE64" (2.1) or a
 * data: URI (4.0).  0 with *data (owned by the caller) and the media type
 * ("image/jpeg"; "" if unknown) in mt, or -1 (no photo, a URL, or bad
 * base64). */
int vcard_photo(const struct vcard *c, unsigned char **data, size_t *len,
		char mt[64]);
/* Replace PHOTO with these bytes of media type mt ("image/png"); written
 * in the form of the version vcard_write() is asked for. */
void vcard_set_photo(struct vcard *c, const void *data, size_t len,
		     const char *mt);

/* Check a card a user wrote: parses strictly, FN present and not empty,
 * a UID (or a fallback to give it: may be NULL).  0, or -1 with a
 * one-line reason in err. */
int vcard_validate(const char *data, size_t len, const char *fallback_uid,
		   char *err, size_t errlen);

#endif
